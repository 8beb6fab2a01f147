//! URL normalisation, crawl scope and spider-trap guards.

use crate::crawl::reasons::SkipReason;
use serde::{Deserialize, Serialize};
use url::Url;

/// Which discovered URLs the crawl follows, relative to the seeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Same origin (scheme, host and port) as a seed.
    Host,
    /// A seed's host or any subdomain of it (a leading `www.` is dropped), any port.
    Domain,
    /// URLs that start with a seed URL (same origin, path prefix).
    Prefix,
}

/// Normalises a URL into the frontier's identity: http(s) only, fragment
/// removed, percent-escapes of unreserved characters decoded and other
/// escapes upper-cased, an empty query dropped. The `url` crate already
/// lower-cases scheme and host, drops default ports and resolves dot segments.
pub fn normalise(url: &Url) -> Option<Url> {
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return None;
    }
    let mut u = url.clone();
    u.set_fragment(None);
    let path = normalise_escapes(u.path());
    u.set_path(&path);
    match u.query() {
        Some("") => u.set_query(None),
        Some(q) => {
            let q = normalise_escapes(q);
            u.set_query(Some(&q));
        }
        None => {}
    }
    Some(u)
}

/// RFC 3986 §6.2.2: decode `%XX` of unreserved characters; upper-case the rest.
fn normalise_escapes(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && b[i + 1].is_ascii_hexdigit()
            && b[i + 2].is_ascii_hexdigit()
        {
            let v = u8::from_str_radix(&s[i + 1..i + 3], 16).expect("two hex digits");
            if v.is_ascii_alphanumeric() || matches!(v, b'-' | b'.' | b'_' | b'~') {
                out.push(v as char);
            } else {
                out.push('%');
                out.push_str(&s[i + 1..i + 3].to_ascii_uppercase());
            }
            i += 3;
        } else {
            out.push(b[i] as char);
            i += 1;
        }
    }
    out
}

/// The origin of a URL: `scheme://host[:port]`.
pub fn origin(url: &Url) -> String {
    url.origin().ascii_serialization()
}

/// `origin(a) == origin(b)` without serialising either (called for every
/// link of every page): tuple origins compare scheme, host and port; any
/// other pair falls back to the serialisations (opaque origins are all
/// `null`).
fn same_origin(a: &Url, b: &Url) -> bool {
    let tuple = |u: &Url| {
        matches!(u.scheme(), "http" | "https" | "ws" | "wss" | "ftp") && u.host().is_some()
    };
    if tuple(a) && tuple(b) {
        a.scheme() == b.scheme()
            && a.host() == b.host()
            && a.port_or_known_default() == b.port_or_known_default()
    } else {
        origin(a) == origin(b)
    }
}

/// The seeds and the scope rule together.
#[derive(Debug, Clone)]
pub struct ScopeRule {
    pub scope: Scope,
    pub seeds: Vec<Url>,
}

impl ScopeRule {
    /// Whether `url` is inside the crawl.
    pub fn contains(&self, url: &Url) -> bool {
        self.seeds.iter().any(|s| match self.scope {
            Scope::Host => same_origin(s, url),
            Scope::Prefix => same_origin(s, url) && url.path().starts_with(s.path()),
            Scope::Domain => {
                let (Some(sh), Some(h)) = (s.host_str(), url.host_str()) else {
                    return false;
                };
                let d = sh.strip_prefix("www.").unwrap_or(sh);
                s.scheme() == url.scheme() && (h == d || h.ends_with(&format!(".{d}")))
            }
        })
    }
}

/// Spider-trap guards on one discovered URL (the per-origin cap is applied
/// where the frontier is written). Returns the stored skip reason.
pub fn trap(url: &Url, depth: u32, max_depth: u32) -> Option<SkipReason> {
    if depth > max_depth {
        return Some(SkipReason::TrapDepth);
    }
    if url.as_str().len() > 2048 {
        return Some(SkipReason::TrapUrlLength);
    }
    // The same path segment three or more times (/a/b/a/b/a/...): relative
    // links resolving into ever deeper paths.
    let segs: Vec<&str> = url
        .path_segments()
        .map(|s| s.filter(|x| !x.is_empty()).collect())
        .unwrap_or_default();
    if segs.len() > 24 {
        return Some(SkipReason::TrapPathDepth);
    }
    for (i, s) in segs.iter().enumerate() {
        if segs[i + 1..].iter().filter(|t| *t == s).count() >= 2 {
            return Some(SkipReason::TrapRepeatedSegment);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_origin_agrees_with_the_serialised_origins() {
        let urls = [
            "http://a.test/x",
            "http://a.test:80/y",
            "http://A.test:8080/",
            "https://a.test/",
            "https://a.test:443/z?q",
            "http://b.test/",
            "http://127.0.0.1:18301/",
            "http://127.0.0.1:18302/",
            "http://[::1]:80/",
            "http://[::1]/",
            "ftp://a.test/",
            "ws://a.test:80/",
            "file:///etc/x",
            "data:text/plain,x",
            "mailto:a@a.test",
            "http://xn--bcher-kva.test/",
            "http://bücher.test/",
        ];
        for a in urls {
            for b in urls {
                let (a, b) = (Url::parse(a).unwrap(), Url::parse(b).unwrap());
                assert_eq!(same_origin(&a, &b), origin(&a) == origin(&b), "{a} {b}");
            }
        }
    }

    fn u(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn normalisation_drops_fragments_default_ports_and_decodes_unreserved_escapes() {
        let n = |s| normalise(&u(s)).unwrap().to_string();
        assert_eq!(
            n("HTTP://Example.COM:80/a/./b/../c#frag"),
            "http://example.com/a/c"
        );
        assert_eq!(
            n("http://x.test/%7euser/%2fa%2Fb?q=%e2%82%ac"),
            "http://x.test/~user/%2Fa%2Fb?q=%E2%82%AC"
        );
        assert_eq!(n("http://x.test/p?"), "http://x.test/p");
        assert!(normalise(&u("mailto:a@b.c")).is_none());
    }

    #[test]
    fn scope_host_domain_and_prefix() {
        let r = |scope| ScopeRule {
            scope,
            seeds: vec![u("http://www.site.test/blog/")],
        };
        assert!(r(Scope::Host).contains(&u("http://www.site.test/other")));
        assert!(!r(Scope::Host).contains(&u("http://cdn.site.test/x")));
        assert!(r(Scope::Domain).contains(&u("http://cdn.site.test/x")));
        assert!(!r(Scope::Domain).contains(&u("http://othersite.test/x")));
        assert!(r(Scope::Prefix).contains(&u("http://www.site.test/blog/post")));
        assert!(!r(Scope::Prefix).contains(&u("http://www.site.test/shop")));
    }

    #[test]
    fn traps_depth_and_repeated_segments() {
        assert_eq!(
            trap(&u("http://x.test/a"), 6, 5),
            Some(SkipReason::TrapDepth)
        );
        assert_eq!(
            trap(&u("http://x.test/a/b/a/b/a/c"), 1, 5),
            Some(SkipReason::TrapRepeatedSegment)
        );
        assert_eq!(trap(&u("http://x.test/2026/11/28"), 1, 5), None);
    }
}
