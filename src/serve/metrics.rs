//! Service metrics in the Prometheus text exposition format (version 0.0.4),
//! kept in memory: request counts and latency per route, answers by outcome,
//! refusals, tokens and tokens/s, citations per answer, queue depth.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;

/// Upper bounds (seconds) of the request latency histogram.
const LATENCY_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
];
/// Upper bounds of the tokens-per-second histogram.
const TPS_BUCKETS: &[f64] = &[1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0];
/// Upper bounds of the citations-per-answer histogram.
const CITATION_BUCKETS: &[f64] = &[0.0, 1.0, 2.0, 3.0, 5.0, 8.0];

#[derive(Debug, Clone, Default)]
struct Histogram {
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn observe(&mut self, bounds: &[f64], v: f64) {
        if self.counts.len() != bounds.len() {
            self.counts = vec![0; bounds.len()];
        }
        for (c, b) in self.counts.iter_mut().zip(bounds) {
            if v <= *b {
                *c += 1;
            }
        }
        self.sum += v;
        self.count += 1;
    }

    fn write(&self, out: &mut String, name: &str, labels: &str, bounds: &[f64]) {
        let sep = if labels.is_empty() { "" } else { "," };
        for (i, b) in bounds.iter().enumerate() {
            let c = self.counts.get(i).copied().unwrap_or(0);
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{b}\"}} {c}");
        }
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}",
            self.count
        );
        let braces = |s: &str| {
            if s.is_empty() {
                String::new()
            } else {
                format!("{{{s}}}")
            }
        };
        let _ = writeln!(out, "{name}_sum{} {}", braces(labels), self.sum);
        let _ = writeln!(out, "{name}_count{} {}", braces(labels), self.count);
    }
}

#[derive(Debug, Default)]
struct Inner {
    requests: BTreeMap<(String, u16), u64>,
    latency: BTreeMap<String, Histogram>,
    answers: BTreeMap<String, u64>,
    tokens: u64,
    tps: Histogram,
    citations: Histogram,
    rejected_full: u64,
    connections_rejected: u64,
}

/// All counters of one running service.
#[derive(Debug, Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
}

/// Queue, worker and connection figures sampled when metrics are rendered.
#[derive(Debug, Clone, Copy, Default)]
pub struct QueueGauges {
    pub waiting: usize,
    pub running: usize,
    pub capacity: usize,
    /// Answer jobs that panicked (each worker was replaced).
    pub worker_panics: u64,
    /// Worker slots, and those able to take a job soon.
    pub workers: usize,
    pub workers_serving: usize,
    /// Open client connections, and the cap.
    pub connections_open: usize,
    pub connections_max: usize,
}

impl Metrics {
    fn with<R>(&self, f: impl FnOnce(&mut Inner) -> R) -> R {
        f(&mut self.inner.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// One finished HTTP request on `route` (the route pattern, not the raw
    /// path, so ids don't explode the label set).
    pub fn request(&self, route: &str, status: u16, seconds: f64) {
        self.with(|m| {
            *m.requests.entry((route.to_string(), status)).or_default() += 1;
            m.latency
                .entry(route.to_string())
                .or_default()
                .observe(LATENCY_BUCKETS, seconds);
        });
    }

    /// One answer job ended: `outcome` is `answered`, `refused`,
    /// `cancelled`, `deadline`, `shutdown` or `error`.
    pub fn answer(&self, outcome: &str, tokens: u64, gen_seconds: f64, citations: usize) {
        self.with(|m| {
            *m.answers.entry(outcome.to_string()).or_default() += 1;
            m.tokens += tokens;
            if tokens > 0 && gen_seconds > 0.0 {
                m.tps.observe(TPS_BUCKETS, tokens as f64 / gen_seconds);
            }
            if matches!(outcome, "answered" | "refused") {
                m.citations.observe(CITATION_BUCKETS, citations as f64);
            }
        });
    }

    /// A request turned away because the queue was full.
    pub fn rejected_queue_full(&self) {
        self.with(|m| m.rejected_full += 1);
    }

    /// A connection closed at once with 503 because the cap was reached.
    pub fn rejected_connection(&self) {
        self.with(|m| m.connections_rejected += 1);
    }

    /// The exposition text.
    pub fn render(&self, q: QueueGauges) -> String {
        let mut out = String::new();
        self.with(|m| {
            out.push_str("# HELP byline_http_requests_total HTTP requests by route and status.\n");
            out.push_str("# TYPE byline_http_requests_total counter\n");
            for ((route, status), n) in &m.requests {
                let _ = writeln!(
                    out,
                    "byline_http_requests_total{{route=\"{}\",status=\"{status}\"}} {n}",
                    escape(route)
                );
            }
            out.push_str("# HELP byline_http_request_duration_seconds Request latency by route.\n");
            out.push_str("# TYPE byline_http_request_duration_seconds histogram\n");
            for (route, h) in &m.latency {
                h.write(
                    &mut out,
                    "byline_http_request_duration_seconds",
                    &format!("route=\"{}\"", escape(route)),
                    LATENCY_BUCKETS,
                );
            }
            out.push_str("# HELP byline_answers_total Answer jobs by outcome.\n");
            out.push_str("# TYPE byline_answers_total counter\n");
            for (outcome, n) in &m.answers {
                let _ = writeln!(
                    out,
                    "byline_answers_total{{outcome=\"{}\"}} {n}",
                    escape(outcome)
                );
            }
            out.push_str(
                "# HELP byline_refusals_total Answers refused for lack of allowed support.\n",
            );
            out.push_str("# TYPE byline_refusals_total counter\n");
            let _ = writeln!(
                out,
                "byline_refusals_total {}",
                m.answers.get("refused").copied().unwrap_or(0)
            );
            out.push_str("# HELP byline_generated_tokens_total Tokens generated.\n");
            out.push_str("# TYPE byline_generated_tokens_total counter\n");
            let _ = writeln!(out, "byline_generated_tokens_total {}", m.tokens);
            out.push_str("# HELP byline_tokens_per_second Generation speed per answer.\n");
            out.push_str("# TYPE byline_tokens_per_second histogram\n");
            m.tps
                .write(&mut out, "byline_tokens_per_second", "", TPS_BUCKETS);
            out.push_str("# HELP byline_citations_per_answer Checked citations per answer.\n");
            out.push_str("# TYPE byline_citations_per_answer histogram\n");
            m.citations.write(
                &mut out,
                "byline_citations_per_answer",
                "",
                CITATION_BUCKETS,
            );
            out.push_str(
                "# HELP byline_queue_rejected_total Requests refused with 429 (queue full).\n",
            );
            out.push_str("# TYPE byline_queue_rejected_total counter\n");
            let _ = writeln!(out, "byline_queue_rejected_total {}", m.rejected_full);
        });
        out.push_str("# HELP byline_queue_depth Answer jobs waiting to start.\n");
        out.push_str("# TYPE byline_queue_depth gauge\n");
        let _ = writeln!(out, "byline_queue_depth {}", q.waiting);
        out.push_str("# HELP byline_queue_running Answer jobs being generated.\n");
        out.push_str("# TYPE byline_queue_running gauge\n");
        let _ = writeln!(out, "byline_queue_running {}", q.running);
        out.push_str("# HELP byline_queue_capacity Maximum answer jobs waiting.\n");
        out.push_str("# TYPE byline_queue_capacity gauge\n");
        let _ = writeln!(out, "byline_queue_capacity {}", q.capacity);
        out.push_str(
            "# HELP byline_worker_panics_total Answer jobs that panicked (their worker was replaced).\n",
        );
        out.push_str("# TYPE byline_worker_panics_total counter\n");
        let _ = writeln!(out, "byline_worker_panics_total {}", q.worker_panics);
        out.push_str("# HELP byline_workers Answer worker slots.\n");
        out.push_str("# TYPE byline_workers gauge\n");
        let _ = writeln!(out, "byline_workers {}", q.workers);
        out.push_str(
            "# HELP byline_workers_serving Workers alive and not stuck past a job's deadline.\n",
        );
        out.push_str("# TYPE byline_workers_serving gauge\n");
        let _ = writeln!(out, "byline_workers_serving {}", q.workers_serving);
        out.push_str("# HELP byline_connections_open Open client connections.\n");
        out.push_str("# TYPE byline_connections_open gauge\n");
        let _ = writeln!(out, "byline_connections_open {}", q.connections_open);
        out.push_str("# HELP byline_connections_max Most client connections served at once.\n");
        out.push_str("# TYPE byline_connections_max gauge\n");
        let _ = writeln!(out, "byline_connections_max {}", q.connections_max);
        self.with(|m| {
            out.push_str(
                "# HELP byline_connections_rejected_total Connections refused with 503 (cap reached).\n",
            );
            out.push_str("# TYPE byline_connections_rejected_total counter\n");
            let _ = writeln!(
                out,
                "byline_connections_rejected_total {}",
                m.connections_rejected
            );
        });
        out
    }
}

/// Label value escaping of the text format: backslash, quote, newline.
fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_are_cumulative_and_counters_add_up() {
        let m = Metrics::default();
        m.request("/v1/answers", 200, 0.3);
        m.request("/v1/answers", 200, 7.0);
        m.request("/v1/answers", 429, 0.001);
        m.answer("answered", 40, 2.0, 2);
        m.answer("refused", 0, 0.0, 0);
        m.rejected_queue_full();
        m.rejected_connection();
        let text = m.render(QueueGauges {
            waiting: 3,
            running: 1,
            capacity: 8,
            worker_panics: 2,
            workers: 1,
            workers_serving: 1,
            connections_open: 5,
            connections_max: 256,
        });
        let line = |prefix: &str| {
            text.lines()
                .find(|l| l.starts_with(prefix))
                .unwrap_or_else(|| panic!("no {prefix} in\n{text}"))
                .rsplit(' ')
                .next()
                .unwrap()
                .to_string()
        };
        assert_eq!(
            line("byline_http_requests_total{route=\"/v1/answers\",status=\"200\"}"),
            "2"
        );
        assert_eq!(
            line("byline_http_request_duration_seconds_bucket{route=\"/v1/answers\",le=\"0.5\"}"),
            "2"
        );
        assert_eq!(
            line("byline_http_request_duration_seconds_bucket{route=\"/v1/answers\",le=\"10\"}"),
            "3"
        );
        assert_eq!(
            line("byline_http_request_duration_seconds_bucket{route=\"/v1/answers\",le=\"+Inf\"}"),
            "3"
        );
        assert_eq!(line("byline_refusals_total"), "1");
        assert_eq!(line("byline_tokens_per_second_bucket{le=\"20\"}"), "1");
        assert_eq!(line("byline_tokens_per_second_bucket{le=\"10\"}"), "0");
        assert_eq!(line("byline_citations_per_answer_count"), "2");
        assert_eq!(line("byline_queue_depth"), "3");
        assert_eq!(line("byline_queue_rejected_total"), "1");
        assert_eq!(line("byline_worker_panics_total"), "2");
        assert_eq!(line("byline_connections_rejected_total"), "1");
        assert_eq!(line("byline_connections_open"), "5");
        // Every sample line is `name{labels} value` or `name value`.
        for l in text.lines().filter(|l| !l.starts_with('#')) {
            let (name, value) = l.rsplit_once(' ').unwrap();
            assert!(value.parse::<f64>().is_ok(), "{l}");
            assert!(name.starts_with("byline_"), "{l}");
        }
    }
}
