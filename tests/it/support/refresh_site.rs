//! A loopback site whose pages change between crawls, for `crawl --refresh`
//! and `audit recheck --bodies`: each page is served with a strong `ETag`
//! (the sha256 of its body) and a fixed `Last-Modified`, a conditional GET
//! whose `If-None-Match` names the current tag gets `304 Not Modified` with
//! no body, and every request is logged with its conditional headers and
//! how many body bytes were sent.

#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::http::{Request, Response};
use sha2::{Digest, Sha256};

/// One request as the server saw it.
#[derive(Debug, Clone)]
pub struct Logged {
    pub method: String,
    pub path: String,
    pub if_none_match: Option<String>,
    pub if_modified_since: Option<String>,
    pub status: u16,
    /// Body bytes sent.
    pub body_bytes: usize,
}

#[derive(Debug, Clone)]
struct Page {
    status: u16,
    content_type: &'static str,
    body: String,
}

#[derive(Default)]
struct State {
    pages: HashMap<String, Page>,
    log: Vec<Logged>,
}

/// The running site.
pub struct ChangingSite {
    pub base: String,
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for ChangingSite {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The strong entity tag the server gives `body`.
pub fn etag(body: &str) -> String {
    let d = Sha256::digest(body.as_bytes());
    let hex: String = d.iter().take(8).map(|b| format!("{b:02x}")).collect();
    format!("\"{hex}\"")
}

pub const LAST_MODIFIED: &str = "Tue, 01 Dec 2026 10:00:00 GMT";

fn respond(state: &Mutex<State>, req: &Request<Body>) -> Response<Body> {
    let path = req.uri().path().to_string();
    let header = |n: &str| {
        req.headers()
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let inm = header("if-none-match");
    let ims = header("if-modified-since");
    let mut st = state.lock().unwrap();
    let page = st.pages.get(&path).cloned();
    let (status, resp) = match page {
        None => (
            404,
            Response::builder()
                .status(404)
                .header("content-type", "text/plain")
                .body(Body::from("not found"))
                .unwrap(),
        ),
        Some(p) if p.status != 200 => (
            p.status,
            Response::builder()
                .status(p.status)
                .header("content-type", "text/plain")
                .body(Body::empty())
                .unwrap(),
        ),
        Some(p) => {
            let tag = etag(&p.body);
            if inm.as_deref() == Some(tag.as_str()) {
                (
                    304,
                    Response::builder()
                        .status(304)
                        .header("etag", &tag)
                        .header("last-modified", LAST_MODIFIED)
                        .body(Body::empty())
                        .unwrap(),
                )
            } else {
                (
                    200,
                    Response::builder()
                        .status(200)
                        .header("content-type", p.content_type)
                        .header("etag", &tag)
                        .header("last-modified", LAST_MODIFIED)
                        .body(Body::from(p.body.clone()))
                        .unwrap(),
                )
            }
        }
    };
    let body_bytes = if status == 200 {
        st.pages.get(&path).map(|p| p.body.len()).unwrap_or(0)
    } else if status == 404 {
        "not found".len()
    } else {
        0
    };
    st.log.push(Logged {
        method: req.method().to_string(),
        path,
        if_none_match: inm,
        if_modified_since: ims,
        status,
        body_bytes: if req.method() == "HEAD" {
            0
        } else {
            body_bytes
        },
    });
    resp
}

impl ChangingSite {
    /// Starts an empty site on `127.0.0.1:0`.
    pub async fn start() -> ChangingSite {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let base = format!("http://{}", listener.local_addr().unwrap());
        let state: Arc<Mutex<State>> = Arc::default();
        let st = state.clone();
        let app = axum::Router::new().fallback(move |req: Request<Body>| {
            let st = st.clone();
            async move { respond(&st, &req) }
        });
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("changing site");
        });
        ChangingSite { base, state, task }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Serves `body` as HTML at `path` (status 200).
    pub fn html(&self, path: &str, body: &str) {
        self.put(path, 200, "text/html; charset=utf-8", body);
    }

    /// Serves plain text at `path`.
    pub fn text(&self, path: &str, body: &str) {
        self.put(path, 200, "text/plain; charset=utf-8", body);
    }

    /// `path` answers `status` with no body.
    pub fn status(&self, path: &str, status: u16) {
        self.put(path, status, "text/plain", "");
    }

    fn put(&self, path: &str, status: u16, ct: &'static str, body: &str) {
        self.state.lock().unwrap().pages.insert(
            path.to_string(),
            Page {
                status,
                content_type: ct,
                body: body.to_string(),
            },
        );
    }

    /// Stops serving: every request from now on fails to connect.
    pub async fn go_down(&self) {
        self.task.abort();
        // Wait until the listener is dropped (the port refuses connections).
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(self.base.trim_start_matches("http://"))
                .await
                .is_err()
            {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        panic!("the site is still accepting connections");
    }

    /// The request log.
    pub fn log(&self) -> Vec<Logged> {
        self.state.lock().unwrap().log.clone()
    }

    /// Forgets the log.
    pub fn clear_log(&self) {
        self.state.lock().unwrap().log.clear();
    }

    /// The logged requests for `path`.
    pub fn requests(&self, path: &str) -> Vec<Logged> {
        self.log().into_iter().filter(|l| l.path == path).collect()
    }
}

/// A page of the test site: a title, a paragraph naming `word`, optional
/// extra head markup, a CC BY licence link unless `licensed` is false, and
/// links to `links`.
pub fn page(word: &str, head: &str, licensed: bool, extra: &str, links: &[&str]) -> String {
    let licence = if licensed {
        "<link rel=\"license\" href=\"https://creativecommons.org/licenses/by/4.0/\">"
    } else {
        ""
    };
    let a: String = links
        .iter()
        .map(|l| format!("<li><a href=\"{l}\">{l}</a></li>"))
        .collect();
    format!(
        "<!doctype html><html lang=en><head><title>All about the {word}</title>{licence}{head}</head>\
         <body><main><h1>The {word}</h1><p>The {word} is the subject of this page. Facts about \
         the {word} are collected here for readers who want to learn about the {word}.</p>\
         <p>{extra}</p><ul>{a}</ul></main></body></html>"
    )
}
