//! `byline serve` against slow and faulty clients, and with a faulty worker:
//! the real binary on 127.0.0.1 with the default model, driven over raw TCP
//! where a well-behaved HTTP client would not do.
//!
//! Worker faults are injected through the debug-build-only hook in
//! `cli::serve` (`BYLINE_FAULT_INJECTION=1` and a marker in the question);
//! everything else (model, corpus, HTTP stack) is the real thing.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::serve::{BodyJson, JsonBody, Served, http, metric, sse_events};

const ALLOWED_Q: &str = "Who built the Old Fulling Mill?";
const FAULTS: &[(&str, &str)] = &[("BYLINE_FAULT_INJECTION", "1")];
/// The default `--header-timeout` and `--body-timeout`, in seconds.
const DEFAULT_READ_TIMEOUT: u64 = 10;

/// A client that keeps no idle connections (each request its own).
fn fresh_http() -> reqwest::Client {
    let _ = http();
    reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(600))
        .build()
        .unwrap()
}

/// Reads until the server closes the connection (EOF or reset), at most
/// `limit`; returns what was read and when it ended, or `None` if the
/// connection was still open at the limit.
async fn read_until_closed(
    rd: &mut tokio::net::tcp::OwnedReadHalf,
    limit: Duration,
) -> Option<(Vec<u8>, Instant)> {
    let mut got = Vec::new();
    let res = tokio::time::timeout(limit, async {
        let mut buf = [0u8; 4096];
        loop {
            match rd.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    res.ok().map(|()| (got, Instant::now()))
}

async fn metrics_text(c: &reqwest::Client, s: &Served) -> String {
    c.get(s.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_dripping_its_request_head_is_dropped_within_the_header_timeout() {
    let s = Served::start(&["--max-tokens", "8"]);
    let c = http();
    let slow = TcpStream::connect(s.addr).await.unwrap();
    let (mut rd, mut wr) = slow.into_split();
    let t0 = Instant::now();
    wr.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        .await
        .unwrap();
    // Slowloris: one more header line a second, never the blank line.
    let drip = tokio::spawn(async move {
        for i in 0..120 {
            tokio::time::sleep(Duration::from_secs(1)).await;
            if wr
                .write_all(format!("X-Drip-{i}: a\r\n").as_bytes())
                .await
                .is_err()
            {
                break;
            }
        }
    });
    // Meanwhile a normal client is served.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let r = c.get(s.url("/healthz")).send().await.unwrap();
    assert_eq!(
        r.status(),
        200,
        "a normal client is served during the stall"
    );
    let closed = read_until_closed(&mut rd, Duration::from_secs(DEFAULT_READ_TIMEOUT + 5)).await;
    drip.abort();
    let (got, at) = closed.unwrap_or_else(|| {
        panic!(
            "the dripping client was still connected after {:?}",
            t0.elapsed()
        )
    });
    let took = at.duration_since(t0);
    assert!(
        took >= Duration::from_secs(DEFAULT_READ_TIMEOUT - 1),
        "closed after {took:?}, before the header timeout"
    );
    // Whatever it got (nothing, or an error status), it was not a response
    // to its request.
    assert!(
        !String::from_utf8_lossy(&got).starts_with("HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&got)
    );
    let r = c.get(s.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_dripping_its_body_gets_408_within_the_body_timeout() {
    let s = Served::start(&["--max-tokens", "8"]);
    let c = http();
    let slow = TcpStream::connect(s.addr).await.unwrap();
    let (mut rd, mut wr) = slow.into_split();
    let t0 = Instant::now();
    wr.write_all(
        b"POST /v1/answers HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
          Content-Length: 300\r\n\r\n{\"question\": \"",
    )
    .await
    .unwrap();
    let drip = tokio::spawn(async move {
        for _ in 0..280 {
            tokio::time::sleep(Duration::from_secs(1)).await;
            if wr.write_all(b"a").await.is_err() {
                break;
            }
        }
    });
    tokio::time::sleep(Duration::from_secs(2)).await;
    let r = c.get(s.url("/healthz")).send().await.unwrap();
    assert_eq!(
        r.status(),
        200,
        "a normal client is served during the stall"
    );
    let closed = read_until_closed(&mut rd, Duration::from_secs(DEFAULT_READ_TIMEOUT + 5)).await;
    drip.abort();
    let (got, at) = closed.unwrap_or_else(|| {
        panic!(
            "the dripping client was still connected after {:?}",
            t0.elapsed()
        )
    });
    let took = at.duration_since(t0);
    let got = String::from_utf8_lossy(&got);
    assert!(got.starts_with("HTTP/1.1 408"), "{took:?}: {got}");
    assert!(
        took >= Duration::from_secs(DEFAULT_READ_TIMEOUT - 1),
        "timed out after {took:?}, before the body timeout"
    );
    let m = metrics_text(&c, &s).await;
    assert_eq!(
        metric(
            &m,
            "byline_http_requests_total{route=\"/v1/answers\",status=\"408\"}"
        ),
        Some(1.0),
        "{m}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_its_responses_is_cut_off() {
    let s = Served::start(&["--max-tokens", "8", "--body-timeout", "2"]);
    let c = http();
    let conn = TcpStream::connect(s.addr).await.unwrap();
    let (mut rd, mut wr) = conn.into_split();
    // Far more responses (the ~8 KB page, pipelined) than the socket
    // buffers hold, and nobody reads them for a while.
    const N: usize = 4000;
    let writer = tokio::spawn(async move {
        let req = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".repeat(N);
        let _ = wr.write_all(&req).await;
        wr
    });
    tokio::time::sleep(Duration::from_secs(6)).await;
    let r = c.get(s.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200, "others are served meanwhile");
    let (got, _) = read_until_closed(&mut rd, Duration::from_secs(30))
        .await
        .expect("the connection was closed");
    let _ = writer.await;
    let text = String::from_utf8_lossy(&got);
    let responses = text.matches("HTTP/1.1 200 OK").count();
    assert!(
        responses < N,
        "all {N} responses were delivered: the stalled connection was kept"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_cap_get_503_and_a_freed_slot_serves_again() {
    let s = Served::start(&["--max-tokens", "8", "--max-connections", "2"]);
    let c = fresh_http();
    // Two idle connections take both slots.
    let idle1 = TcpStream::connect(s.addr).await.unwrap();
    let idle2 = TcpStream::connect(s.addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let t0 = Instant::now();
    let r = c.get(s.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 503, "a third connection is turned away");
    assert!(t0.elapsed() < Duration::from_secs(3), "at once");
    assert!(r.headers().get("retry-after").is_some());
    let v: Value = r.body_json().await;
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("connections"),
        "{v}"
    );
    // A closed connection frees its slot.
    drop(idle1);
    let t0 = Instant::now();
    loop {
        let r = c.get(s.url("/healthz")).send().await.unwrap();
        if r.status() == 200 {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "slot not freed: {}",
            r.status()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The connection of that request may not be closed on the server's
    // side yet: retry while the slots are still taken.
    let t0 = Instant::now();
    let m = loop {
        let r = c.get(s.url("/metrics")).send().await.unwrap();
        if r.status() == 200 {
            break r.text().await.unwrap();
        }
        assert!(t0.elapsed() < Duration::from_secs(5), "{}", r.status());
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        metric(&m, "byline_connections_rejected_total").unwrap_or(0.0) >= 1.0,
        "{m}"
    );
    assert_eq!(metric(&m, "byline_connections_max"), Some(2.0), "{m}");
    drop(idle2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_worker_answers_500_with_a_request_id_and_is_replaced() {
    let s = Served::start_logged(&["--max-tokens", "16"], FAULTS);
    let c = http();
    let ask = |q: String| {
        let (c, url) = (c.clone(), s.url("/v1/answers"));
        tokio::spawn(async move {
            let r = c
                .post(url)
                .json_body(&json!({"question": q}))
                .send()
                .await
                .unwrap();
            let id = r
                .headers()
                .get("x-request-id")
                .map(|v| v.to_str().unwrap().to_string());
            (r.status().as_u16(), id, r.text().await.unwrap())
        })
    };
    // The worker is busy for 2 s with the first question while the
    // panicking one and a normal one queue behind it.
    let first = ask(format!("{ALLOWED_Q} [[byline-fault:hang:2]]"));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let bad = ask(format!("{ALLOWED_Q} [[byline-fault:panic]]"));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after = ask(ALLOWED_Q.to_string());

    let within = |h| tokio::time::timeout(Duration::from_secs(120), h);
    let (status, _, body) = within(first).await.expect("first answered").unwrap();
    assert_eq!(status, 200, "{body}");
    let (status, id, body) = within(bad).await.expect("panic answered").unwrap();
    assert_eq!(status, 500, "{body}");
    let (after_status, _, after_body) = within(after)
        .await
        .expect("the request queued behind the panic is answered")
        .unwrap();
    assert_eq!(after_status, 200, "{after_body}");
    let id = id.expect("an x-request-id header");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["error"]["request_id"], id.as_str(), "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains(&id), "{v}");
    for secret in ["injected", "panic", "fault", "worker", ".rs"] {
        assert!(
            !body.to_lowercase().contains(secret),
            "internal text {secret:?} in the body: {body}"
        );
    }

    // The log has the whole story under the same request id.
    let log = s.log();
    let line = log
        .lines()
        .find(|l| l.contains(&id) && l.contains("injected fault"))
        .unwrap_or_else(|| panic!("no log line with {id} and the panic message:\n{log}"));
    assert!(line.contains("ERROR"), "{line}");

    // Streaming: the error event is just as opaque, and the server still
    // answers afterwards.
    let r = c
        .post(s.url("/v1/answers"))
        .json_body(
            &json!({"question": format!("{ALLOWED_Q} [[byline-fault:panic]]"), "stream": true}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body = r.text().await.unwrap();
    let events = sse_events(&body);
    let (event, data) = events.last().expect("an event");
    assert_eq!(event, "error", "{body}");
    let e: Value = serde_json::from_str(data).unwrap();
    assert!(e["error"]["request_id"].is_string(), "{e}");
    assert!(!data.contains("injected"), "{data}");

    let r = c
        .post(s.url("/v1/chat/completions"))
        .json_body(&json!({"messages": [{"role": "user", "content": ALLOWED_Q}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    let m = metrics_text(&c, &s).await;
    assert_eq!(metric(&m, "byline_worker_panics_total"), Some(2.0), "{m}");
    assert_eq!(metric(&m, "byline_workers_serving"), Some(1.0), "{m}");
    let h = c.get(s.url("/healthz")).send().await.unwrap();
    assert_eq!(h.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_is_503_while_no_worker_can_serve_and_requests_keep_their_deadline() {
    let s = Served::start_logged(&["--max-tokens", "8", "--deadline", "2"], FAULTS);
    let c = http();
    let h: Value = c
        .get(s.url("/healthz"))
        .send()
        .await
        .unwrap()
        .body_json()
        .await;
    assert_eq!(h["status"], "ok");
    // The only worker wedges for 14 s, ignoring its 2 s deadline.
    let t0 = Instant::now();
    let wedged = tokio::spawn({
        let (c, url) = (c.clone(), s.url("/v1/answers"));
        async move {
            let r = c
                .post(url)
                .json_body(&json!({"question": format!("{ALLOWED_Q} [[byline-fault:hang:14]]")}))
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), Instant::now())
        }
    });
    let mut saw_503 = None;
    while t0.elapsed() < Duration::from_secs(12) {
        let r = c.get(s.url("/healthz")).send().await.unwrap();
        if r.status() == 503 {
            let v: Value = r.body_json().await;
            saw_503 = Some((t0.elapsed(), v));
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (when, v) = saw_503.expect("/healthz turned 503 while the worker was wedged");
    assert!(when >= Duration::from_secs(2), "503 too early: {when:?}");
    assert_eq!(v["status"], "unhealthy", "{v}");
    assert_eq!(v["workers"]["serving"], 0, "{v}");

    let (status, at) = wedged.await.unwrap();
    assert_eq!(status, 504, "the request is cut at its deadline");
    assert!(
        at.duration_since(t0) < Duration::from_secs(8),
        "the request waited {:?} for a wedged worker",
        at.duration_since(t0)
    );

    // Once the worker is back, so is /healthz.
    loop {
        let r = c.get(s.url("/healthz")).send().await.unwrap();
        if r.status() == 200 {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(90),
            "/healthz never recovered"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_mistakes_are_4xx_with_a_clear_message() {
    let s = Served::start(&["--max-tokens", "16", "--admin-token", "tok"]);
    let c = http();
    let err = |v: &Value| v["error"]["message"].as_str().unwrap_or("").to_string();
    // Within the character limit, but the prompt needs more tokens than
    // the model's budget (each emoji is several tokens, and no search term).
    let long_q = format!("{ALLOWED_Q} {}", "\u{1F642}".repeat(1900));
    let r = c
        .post(s.url("/v1/answers"))
        .json_body(&json!({"question": long_q}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let m = err(&r.body_json().await);
    assert!(m.contains("tokens") && m.contains("shorter"), "{m}");

    let r = c
        .post(s.url("/v1/chat/completions"))
        .json_body(&json!({"messages": [{"role": "user", "content": long_q}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);

    // Streaming reports it before the stream starts.
    let r = c
        .post(s.url("/v1/answers"))
        .json_body(&json!({"question": long_q, "stream": true}))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let body = r.text().await.unwrap();
    let events = sse_events(&body);
    assert!(
        status == 400
            || events
                .last()
                .is_some_and(|(e, d)| e == "error" && d.contains("tokens")),
        "{status}: {body}"
    );

    // A malformed URL for an admin action is the client's mistake.
    let r = c
        .post(s.url("/v1/admin/forget"))
        .header("authorization", "Bearer tok")
        .json_body(&json!({"url": "not a url"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(err(&r.body_json().await).contains("not an absolute URL"));

    let r = c
        .post(s.url("/v1/answers"))
        .header("content-type", "application/json")
        .body(vec![b'{', 0xff, 0xfe, b'}'])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);

    let r = c.get(s.url("/v1/answers")).send().await.unwrap();
    assert_eq!(r.status(), 405);

    let m = metrics_text(&c, &s).await;
    for l in m
        .lines()
        .filter(|l| l.starts_with("byline_http_requests_total"))
    {
        assert!(!l.contains("status=\"5"), "a client mistake got a 5xx: {l}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_star_allows_any_origin_and_a_bad_origin_is_a_startup_error() {
    let s = Served::start(&["--max-tokens", "8", "--cors-origin", "*"]);
    let c = http();
    let r = c
        .get(s.url("/healthz"))
        .header("origin", "http://elsewhere.example")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["access-control-allow-origin"], "*");
    let r = c
        .request(reqwest::Method::OPTIONS, s.url("/v1/answers"))
        .header("origin", "http://elsewhere.example")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type")
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    assert_eq!(r.headers()["access-control-allow-origin"], "*");

    // A listed origin is echoed, others get nothing.
    let s = Served::start(&["--max-tokens", "8", "--cors-origin", "https://ok.example"]);
    let r = c
        .get(s.url("/healthz"))
        .header("origin", "https://ok.example")
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "https://ok.example"
    );
    let r = c
        .get(s.url("/healthz"))
        .header("origin", "https://other.example")
        .send()
        .await
        .unwrap();
    assert!(r.headers().get("access-control-allow-origin").is_none());

    for bad in [
        "not an origin",
        "https://ok.example/path",
        "ftp://x.example",
    ] {
        let dir = crate::support::tempdir();
        let db = crate::support::serve::copy_corpus(dir.path());
        let out = tokio::task::spawn_blocking(move || {
            let mut child = std::process::Command::new(crate::support::byline_bin())
                .arg("--db")
                .arg(&db)
                .args(["serve", "--addr", "127.0.0.1:0", "--cors-origin", bad])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            let t0 = Instant::now();
            while child.try_wait().unwrap().is_none() {
                if t0.elapsed() > Duration::from_secs(60) {
                    let _ = child.kill();
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            child.wait_with_output().unwrap()
        })
        .await
        .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{bad:?}: {stderr}");
        assert!(stderr.contains("--cors-origin"), "{bad:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{bad:?}: {stderr}");
    }
}
