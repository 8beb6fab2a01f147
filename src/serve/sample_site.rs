//! The bundled sample site: a small fictional community library and river
//! museum (`tests/fixtures/site/`), embedded in the binary and served on a
//! loopback address for `byline demo` and the tests. No runtime file reads.

use std::net::SocketAddr;

use axum::Router;
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};

/// One embedded file of the sample site.
#[derive(Debug)]
pub struct Page {
    /// URL path, e.g. `/history.html`.
    pub path: &'static str,
    pub content_type: &'static str,
    pub body: &'static str,
    /// Extra response headers (consent signals sent over HTTP).
    pub headers: &'static [(&'static str, &'static str)],
}

const HTML: &str = "text/html; charset=utf-8";
const TEXT: &str = "text/plain; charset=utf-8";
const JSON: &str = "application/json";

macro_rules! page {
    ($path:literal, $ct:expr) => {
        page!($path, $ct, &[])
    };
    ($path:literal, $ct:expr, $headers:expr) => {
        Page {
            path: $path,
            content_type: $ct,
            body: include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/fixtures/site",
                $path
            )),
            headers: $headers,
        }
    };
}

/// Every file of the site. `/` serves `/index.html`.
pub const PAGES: &[Page] = &[
    page!("/robots.txt", TEXT),
    page!("/.well-known/tdmrep.json", JSON),
    page!("/index.html", HTML),
    page!("/about.html", HTML),
    page!("/history.html", HTML),
    page!("/library.html", HTML, &[("content-usage", "train-ai=n")]),
    page!(
        "/faq.html",
        HTML,
        &[("x-robots-tag", "bylinebot: max-snippet:100")]
    ),
    page!("/guestbook.html", HTML),
    page!("/visit/opening-hours.html", HTML),
    page!("/articles/river-ecology.html", HTML),
    page!("/articles/hartwell-weir-fish-pass.html", HTML),
    page!("/recipes/damson-cake.html", HTML),
    page!("/guides/riverside-walk.html", HTML),
    page!("/collections/lace-bobbins.html", HTML),
    page!("/events/winter-lectures.html", HTML),
    page!("/de/willkommen.html", HTML),
    page!("/private/staff-rota.html", HTML),
];

/// Question/answer pairs about the site, one JSON object per line
/// (`id`, `question`, `answer`, `page`), for Q&A benchmarks.
pub const QUESTIONS_JSONL: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/site/questions.jsonl"
));

/// The embedded file served at `path` (`/` is `/index.html`).
pub fn page(path: &str) -> Option<&'static Page> {
    let path = if path == "/" { "/index.html" } else { path };
    PAGES.iter().find(|p| p.path == path)
}

/// Serves the sample site on `addr` (a loopback address; port 0 picks a free
/// port). Returns the bound address and the server task; abort the task to
/// stop serving.
pub async fn serve_sample_site(
    addr: SocketAddr,
) -> Result<(SocketAddr, tokio::task::JoinHandle<()>), std::io::Error> {
    if !addr.ip().is_loopback() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("the sample site only binds loopback addresses, got {addr}"),
        ));
    }
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let app = Router::new().fallback(respond);
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::warn!(error = %e, "sample site server stopped");
        }
    });
    Ok((bound, task))
}

async fn respond(uri: Uri) -> Response {
    match page(uri.path()) {
        Some(p) => {
            let mut r = ([(header::CONTENT_TYPE, p.content_type)], p.body).into_response();
            for (name, value) in p.headers {
                r.headers_mut().insert(
                    header::HeaderName::from_static(name),
                    header::HeaderValue::from_static(value),
                );
            }
            r
        }
        None => (
            StatusCode::NOT_FOUND,
            [(header::CONTENT_TYPE, TEXT)],
            "not found\n",
        )
            .into_response(),
    }
}
