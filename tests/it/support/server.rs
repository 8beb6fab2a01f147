//! A flexible HTTP test server on 127.0.0.1:0 (axum). Each test adds routes
//! (path + query → status, headers, body, delay); the server records what
//! was asked: completed requests per path, request start/end times,
//! overlapping requests, User-Agent headers.

#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, Uri};
use axum::response::Response;

/// How a route's body is sent.
#[derive(Clone)]
pub enum Payload {
    Bytes(Vec<u8>),
    /// `chunk` every `every`, `count` times (a tarpit when slow).
    Drip {
        chunk: Vec<u8>,
        every: Duration,
        count: usize,
    },
    /// Computed per request from the path and query.
    Dynamic(Arc<dyn Fn(&str) -> (u16, Vec<(String, String)>, Vec<u8>) + Send + Sync>),
}

/// One route.
#[derive(Clone)]
pub struct Route {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Payload,
    /// Wait this long before answering.
    pub delay: Duration,
}

impl Route {
    pub fn html(body: &str) -> Route {
        Route::with("text/html; charset=utf-8", body.as_bytes().to_vec())
    }
    pub fn text(body: &str) -> Route {
        Route::with("text/plain", body.as_bytes().to_vec())
    }
    pub fn with(content_type: &str, body: Vec<u8>) -> Route {
        Route {
            status: 200,
            headers: vec![("content-type".into(), content_type.into())],
            body: Payload::Bytes(body),
            delay: Duration::ZERO,
        }
    }
    pub fn status(status: u16) -> Route {
        Route {
            status,
            headers: vec![],
            body: Payload::Bytes(vec![]),
            delay: Duration::ZERO,
        }
    }
    pub fn redirect(status: u16, to: &str) -> Route {
        Route::status(status).header("location", to)
    }
    pub fn header(mut self, k: &str, v: &str) -> Route {
        self.headers.push((k.into(), v.into()));
        self
    }
    pub fn delay(mut self, d: Duration) -> Route {
        self.delay = d;
        self
    }
    pub fn code(mut self, s: u16) -> Route {
        self.status = s;
        self
    }
}

/// One request seen by the server.
#[derive(Debug, Clone)]
pub struct Seen {
    pub path: String,
    pub user_agent: String,
    pub start: Instant,
    pub end: Option<Instant>,
}

#[derive(Default)]
struct State {
    routes: Mutex<HashMap<String, Route>>,
    fallback: Mutex<Option<Route>>,
    completed: Mutex<HashMap<String, u64>>,
    seen: Mutex<Vec<Seen>>,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
}

/// A running test server; stops when dropped.
pub struct TestServer {
    pub addr: SocketAddr,
    state: Arc<State>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TestServer {
    /// Starts an empty server (every path 404 until routes are added).
    pub async fn start() -> TestServer {
        TestServer::start_on("127.0.0.1").await
    }

    /// [`TestServer::start`] on another loopback address (e.g. 127.0.0.2).
    pub async fn start_on(ip: &str) -> TestServer {
        let state = Arc::new(State::default());
        let st = state.clone();
        let app = axum::Router::new().fallback(move |uri: Uri, headers: HeaderMap| {
            let st = st.clone();
            async move { handle(st, uri, headers).await }
        });
        let listener = tokio::net::TcpListener::bind((ip, 0))
            .await
            .expect("bind a loopback port");
        let addr = listener.local_addr().expect("local addr");
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("test server runs");
        });
        TestServer { addr, state, task }
    }

    /// Starts a server on its own thread and runtime, for tests that run
    /// the `byline` binary (and so block their own thread).
    pub fn start_in_thread(
        setup: impl FnOnce(&TestServer) + Send + 'static,
    ) -> (Arc<ThreadServer>, std::thread::JoinHandle<()>) {
        let (tx, rx) = std::sync::mpsc::channel();
        let h = std::thread::spawn(move || {
            let rt = tokio::runtime::Runtime::new().expect("runtime");
            rt.block_on(async move {
                let s = TestServer::start().await;
                setup(&s);
                let ts = Arc::new(ThreadServer {
                    addr: s.addr,
                    state: s.state.clone(),
                });
                tx.send(ts).expect("send server");
                // Serve until the process ends.
                std::future::pending::<()>().await;
                drop(s);
            });
        });
        (rx.recv().expect("server started"), h)
    }

    /// `http://127.0.0.1:<port>`.
    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }
    /// `base() + path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base())
    }
    /// Adds or replaces the route for `path` (with query, if any).
    pub fn route(&self, path: &str, r: Route) {
        self.state.routes.lock().unwrap().insert(path.into(), r);
    }
    /// The route for every path without one.
    pub fn fallback(&self, r: Route) {
        *self.state.fallback.lock().unwrap() = Some(r);
    }
    /// Completed responses per path.
    pub fn completed(&self, path: &str) -> u64 {
        self.state
            .completed
            .lock()
            .unwrap()
            .get(path)
            .copied()
            .unwrap_or(0)
    }
    pub fn completed_all(&self) -> HashMap<String, u64> {
        self.state.completed.lock().unwrap().clone()
    }
    pub fn seen(&self) -> Vec<Seen> {
        self.state.seen.lock().unwrap().clone()
    }
    /// The most requests that were ever in flight at once.
    pub fn max_in_flight(&self) -> usize {
        self.state.max_in_flight.load(Ordering::SeqCst)
    }
}

/// A server running on another thread.
pub struct ThreadServer {
    pub addr: SocketAddr,
    state: Arc<State>,
}

impl ThreadServer {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
    pub fn completed_all(&self) -> HashMap<String, u64> {
        self.state.completed.lock().unwrap().clone()
    }
}

struct InFlight(Arc<State>, usize);
impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
        if let Some(s) = self.0.seen.lock().unwrap().get_mut(self.1) {
            s.end = Some(Instant::now());
        }
    }
}

async fn handle(st: Arc<State>, uri: Uri, headers: HeaderMap) -> Response {
    let path = uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".into());
    let n = st.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    st.max_in_flight.fetch_max(n, Ordering::SeqCst);
    let idx = {
        let mut seen = st.seen.lock().unwrap();
        seen.push(Seen {
            path: path.clone(),
            user_agent: headers
                .get("user-agent")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .into(),
            start: Instant::now(),
            end: None,
        });
        seen.len() - 1
    };
    let guard = InFlight(st.clone(), idx);
    let route = st
        .routes
        .lock()
        .unwrap()
        .get(&path)
        .cloned()
        .or_else(|| st.fallback.lock().unwrap().clone());
    let Some(route) = route else {
        *st.completed.lock().unwrap().entry(path).or_default() += 1;
        drop(guard);
        return Response::builder()
            .status(404)
            .body(Body::from("not found"))
            .unwrap();
    };
    tokio::time::sleep(route.delay).await;
    let (status, mut hdrs, body) = match &route.body {
        Payload::Bytes(b) => (route.status, route.headers.clone(), Body::from(b.clone())),
        Payload::Dynamic(f) => {
            let (s, h, b) = f(&path);
            (s, h, Body::from(b))
        }
        Payload::Drip {
            chunk,
            every,
            count,
        } => {
            let (chunk, every, count) = (chunk.clone(), *every, *count);
            let s = futures_util::stream::unfold(0usize, move |i| {
                let chunk = chunk.clone();
                async move {
                    if i >= count {
                        return None;
                    }
                    tokio::time::sleep(every).await;
                    Some((
                        Ok::<_, std::io::Error>(axum::body::Bytes::from(chunk)),
                        i + 1,
                    ))
                }
            });
            (route.status, route.headers.clone(), Body::from_stream(s))
        }
    };
    // Completed: the handler got this far without the client going away.
    *st.completed.lock().unwrap().entry(path).or_default() += 1;
    drop(guard);
    let mut resp = Response::builder().status(StatusCode::from_u16(status).unwrap());
    for (k, v) in hdrs.drain(..) {
        resp = resp.header(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(&v).unwrap(),
        );
    }
    resp.body(body).unwrap()
}

/// A small linked site: `/` links to `/p1`..`/pN`, each page links to the next.
pub fn add_chain_site(s: &TestServer, n: usize) {
    let links: String = (1..=n)
        .map(|i| format!("<a href=\"/p{i}\">page {i}</a> "))
        .collect();
    s.route("/", Route::html(&format!("<html><head><title>Home</title></head><body><nav>{links}</nav><main><p>Welcome home.</p></main></body></html>")));
    for i in 1..=n {
        s.route(
            &format!("/p{i}"),
            Route::html(&format!(
                "<html lang=\"en\"><head><title>Page {i}</title></head><body><main><h1>Page {i}</h1><p>Text of page number {i}, unique.</p><a href=\"/p{}\">next</a></main></body></html>",
                i % n + 1
            )),
        );
    }
}
