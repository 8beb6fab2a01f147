//! Serves one origin of `tests/fixtures/consent/` on `127.0.0.1:0`:
//! files as they are, `/` as `index.html`, `<file>.headers` sidecars as
//! extra response headers, `<file>.status` sidecars as the status code,
//! 404 for anything missing. Every request is logged for assertions.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::http::{HeaderName, HeaderValue, Request, Response, StatusCode};

/// A running origin.
pub struct Origin {
    pub name: String,
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    /// Paths requested, in order.
    pub log: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Origin {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Origin {
    /// `base` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// How many times `path` was requested.
    pub fn hits(&self, path: &str) -> usize {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|p| *p == path)
            .count()
    }
}

/// The fixture root.
pub fn fixture_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/consent")
}

fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()) {
        Some("html") | None => "text/html; charset=utf-8",
        Some("txt") => "text/plain; charset=utf-8",
        Some("json") => "application/json",
        Some("xml") => "application/xml",
        _ => "application/octet-stream",
    }
}

fn respond(dir: &Path, path: &str) -> Response<Body> {
    let rel = path.trim_start_matches('/');
    let rel = if rel.is_empty() || rel.ends_with('/') {
        format!("{rel}index.html")
    } else {
        rel.to_string()
    };
    if rel.contains("..") {
        return Response::builder().status(400).body(Body::empty()).unwrap();
    }
    let file = dir.join(&rel);
    let Ok(body) = std::fs::read(&file) else {
        return Response::builder()
            .status(404)
            .header("content-type", "text/plain")
            .body(Body::from("not found"))
            .unwrap();
    };
    let status = std::fs::read_to_string(dir.join(format!("{rel}.status")))
        .ok()
        .and_then(|s| s.trim().parse::<u16>().ok())
        .and_then(|s| StatusCode::from_u16(s).ok())
        .unwrap_or(StatusCode::OK);
    let mut resp = Response::builder()
        .status(status)
        .header("content-type", content_type(&file))
        .body(Body::from(if status.is_success() {
            body
        } else {
            Vec::new()
        }))
        .unwrap();
    if let Ok(h) = std::fs::read_to_string(dir.join(format!("{rel}.headers"))) {
        for line in h.lines() {
            if let Some((k, v)) = line.split_once(':') {
                resp.headers_mut().append(
                    HeaderName::from_bytes(k.trim().as_bytes()).expect("header name in fixture"),
                    HeaderValue::from_str(v.trim()).expect("header value in fixture"),
                );
            }
        }
    }
    resp
}

/// Starts serving `tests/fixtures/consent/<name>/`.
pub async fn serve(name: &str) -> Origin {
    serve_dir(name, fixture_root().join(name)).await
}

/// Starts serving any directory laid out like the fixtures.
pub async fn serve_dir(name: &str, dir: PathBuf) -> Origin {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let base = format!("http://{}", listener.local_addr().unwrap());
    let log: Arc<Mutex<Vec<String>>> = Arc::default();
    let log2 = log.clone();
    let app = axum::Router::new().fallback(move |req: Request<Body>| {
        let dir = dir.clone();
        let log = log2.clone();
        async move {
            let path = req.uri().path().to_string();
            log.lock().unwrap().push(path.clone());
            respond(&dir, &path)
        }
    });
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.expect("fixture server");
    });
    Origin {
        name: name.to_string(),
        base,
        log,
        task,
    }
}
