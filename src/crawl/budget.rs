//! Crawl budgets against spider traps beyond depth: URLs of one *shape* per
//! origin (a calendar's `/cal/2026/12`, `/cal/2027/01`, …; a listing's
//! `?page=N&sort=…`) are capped, and query strings that explode (too many
//! parameters, a parameter repeated) are not followed. Pure functions; the
//! counts live in the frontier (`url_shape`), so budgets hold across runs.

use crate::crawl::reasons::SkipReason;
use url::Url;

/// Reason code: the origin already has `max_per_shape` URLs of this shape.
pub const REASON_SHAPE_BUDGET: &str = SkipReason::BudgetUrlShape.as_str();
/// Reason code: the origin already has `max_urls_per_origin` URLs.
pub const REASON_ORIGIN_BUDGET: &str = SkipReason::TrapOriginCap.as_str();
/// Reason code: a query string with too many parameters or a repeated one.
pub const REASON_QUERY_PARAMS: &str = SkipReason::TrapQueryParams.as_str();

/// Default URLs of one shape per origin.
pub const DEFAULT_MAX_PER_SHAPE: u64 = 100;
/// Parameters a followed URL's query may have.
pub const MAX_QUERY_PARAMS: usize = 8;

/// The shape of a URL: path with every run of ASCII digits as `#` and every
/// long segment that mixes letters and digits (ids, hashes) as `*`, then the
/// query's parameter names, sorted and deduplicated, values dropped.
/// Host and scheme are not part of it (budgets are per origin).
pub fn shape(url: &Url) -> String {
    let mut out = String::with_capacity(url.path().len() + 8);
    for (i, seg) in url.path().split('/').enumerate() {
        if i > 0 {
            out.push('/');
        }
        let digits = seg.bytes().filter(u8::is_ascii_digit).count();
        if seg.len() >= 16 && digits > 0 && digits < seg.len() {
            out.push('*');
            continue;
        }
        let mut in_digits = false;
        for c in seg.chars() {
            if c.is_ascii_digit() {
                if !in_digits {
                    out.push('#');
                }
                in_digits = true;
            } else {
                out.push(c);
                in_digits = false;
            }
        }
    }
    if url.query().is_some() {
        let mut names: Vec<String> = url.query_pairs().map(|(k, _)| k.into_owned()).collect();
        names.sort();
        names.dedup();
        out.push('?');
        out.push_str(&names.join("&"));
    }
    out
}

/// Whether a URL's query string is a trap: more than [`MAX_QUERY_PARAMS`]
/// parameters, or one parameter given more than twice.
pub fn query_trap(url: &Url) -> Option<SkipReason> {
    url.query()?;
    let mut names: Vec<String> = url.query_pairs().map(|(k, _)| k.into_owned()).collect();
    if names.len() > MAX_QUERY_PARAMS {
        return Some(SkipReason::TrapQueryParams);
    }
    names.sort();
    if names.windows(3).any(|w| w[0] == w[2]) {
        return Some(SkipReason::TrapQueryParams);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn calendars_listings_and_ids_share_a_shape_and_documents_do_not() {
        assert_eq!(shape(&u("http://x.test/cal/2026/12")), "/cal/#/#");
        assert_eq!(
            shape(&u("http://x.test/cal/2026/12")),
            shape(&u("http://x.test/cal/1999/1"))
        );
        assert_eq!(
            shape(&u("http://x.test/list?sort=asc&page=3")),
            "/list?page&sort"
        );
        assert_eq!(
            shape(&u("http://x.test/list?page=9&sort=desc")),
            shape(&u("http://x.test/list?sort=asc&page=3"))
        );
        assert_eq!(shape(&u("http://x.test/s/a1b2c3d4e5f6a7b8c9/x")), "/s/*/x");
        assert_ne!(
            shape(&u("http://x.test/docs/install.html")),
            shape(&u("http://x.test/docs/intro.html"))
        );
        assert_eq!(shape(&u("http://x.test/")), "/");
    }

    #[test]
    fn exploding_queries_are_traps() {
        assert_eq!(query_trap(&u("http://x.test/a")), None);
        assert_eq!(query_trap(&u("http://x.test/a?b=1&c=2")), None);
        assert_eq!(query_trap(&u("http://x.test/a?f=1&f=2")), None);
        assert_eq!(
            query_trap(&u("http://x.test/a?f=1&f=2&f=3")),
            Some(SkipReason::TrapQueryParams)
        );
        assert_eq!(
            query_trap(&u("http://x.test/a?a=1&b&c&d&e&f&g&h&i")),
            Some(SkipReason::TrapQueryParams)
        );
    }
}
