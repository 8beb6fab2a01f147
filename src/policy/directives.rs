//! `X-Robots-Tag` and `<meta name="robots">` rules (signals.md §3, `VENDOR`:
//! Google's "Robots meta tag, data-nosnippet and X-Robots-Tag
//! specifications", MDN, Bing's Sept 2023 `noarchive`/`nocache` meaning,
//! DeviantArt's `noai`/`noimageai`).

use time::format_description::well_known::{Rfc2822, Rfc3339};
use time::{Date, OffsetDateTime, PrimitiveDateTime, UtcOffset};

use super::evidence::{Directives, Scope};

/// Names by which a rule list or meta tag addresses us. `BylineBot` is the
/// product token; `byline` is accepted too because the spec's examples
/// (X7) use it (`OURS`).
pub const OUR_NAMES: [&str; 2] = ["bylinebot", "byline"];

/// Rules that take a value after a colon (signals.md §3.3): a `<name>:` prefix is
/// only a bot name when it is not one of these.
const VALUE_RULES: [&str; 4] = [
    "max-snippet",
    "max-image-preview",
    "max-video-preview",
    "unavailable_after",
];

/// The longest `unavailable_after` value tried as a date (the longest
/// accepted form, RFC 850 with a weekday and a zone name, is about 40 bytes).
const MAX_DATE_LEN: usize = 64;

/// One scoped rule list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScopedDirectives {
    pub scope: Scope,
    pub directives: Directives,
    pub errors: Vec<String>,
}

fn scope_for(name: &str) -> Scope {
    let n = name.trim().to_ascii_lowercase();
    if n == "robots" {
        Scope::Generic
    } else if OUR_NAMES.contains(&n.as_str()) {
        Scope::OurToken
    } else {
        Scope::OtherToken(n)
    }
}

/// Parses one `X-Robots-Tag` header value. Rules before any `<name>:`
/// prefix are generic; after a prefix they belong to that bot (MDN's
/// `noindex, otherbot: nofollow`). Returns one entry per scope seen.
pub fn parse_header(value: &str) -> Vec<ScopedDirectives> {
    parse_list(value, Scope::Generic, true)
}

/// Parses the `content` of a `<meta name=NAME>` tag.
pub fn parse_meta(name: &str, content: &str) -> ScopedDirectives {
    let mut v = parse_list(content, scope_for(name), false);
    v.retain(|s| !s.directives.is_empty() || !s.errors.is_empty());
    v.into_iter().next().unwrap_or(ScopedDirectives {
        scope: scope_for(name),
        directives: Directives::default(),
        errors: Vec::new(),
    })
}

fn parse_list(value: &str, start: Scope, allow_prefix: bool) -> Vec<ScopedDirectives> {
    let mut out: Vec<ScopedDirectives> = vec![ScopedDirectives {
        scope: start,
        directives: Directives::default(),
        errors: Vec::new(),
    }];
    let pieces: Vec<&str> = value.split(',').collect();
    let mut i = 0;
    while i < pieces.len() {
        let mut piece = pieces[i].trim().to_string();
        i += 1;
        if piece.is_empty() {
            continue;
        }
        // A `<bot>:` prefix, then possibly a rule after it.
        if allow_prefix && let Some((name, rest)) = piece.split_once(':') {
            let n = name.trim().to_ascii_lowercase();
            if !VALUE_RULES.contains(&n.as_str()) && !n.is_empty() && !n.contains(' ') {
                out.push(ScopedDirectives {
                    scope: scope_for(&n),
                    directives: Directives::default(),
                    errors: Vec::new(),
                });
                piece = rest.trim().to_string();
                if piece.is_empty() {
                    continue;
                }
            }
        }
        let cur = out.last_mut().expect("one entry at least");
        let (name, arg) = match piece.split_once(':') {
            Some((n, a)) => (n.trim().to_ascii_lowercase(), Some(a.trim().to_string())),
            None => (piece.to_ascii_lowercase(), None),
        };
        let d = &mut cur.directives;
        match (name.as_str(), arg) {
            ("all", None) => d.all = true,
            ("noindex", None) => d.noindex = true,
            ("nofollow", None) => d.nofollow = true,
            ("none", None) => {
                d.noindex = true;
                d.nofollow = true;
            }
            ("nosnippet", None) => d.nosnippet = true,
            ("noarchive", None) => d.noarchive = true,
            ("nocache", None) => d.nocache = true,
            ("noai", None) => d.noai = true,
            ("noimageai", None) => d.noimageai = true,
            ("noimageindex", None) => d.noimageindex = true,
            ("disallowaitraining", None) => d.disallow_ai_training = true,
            ("max-snippet", Some(a)) => match a.parse::<i64>() {
                // the most restrictive snippet cap wins (signals.md §3.3)
                Ok(n) if n >= -1 => {
                    d.max_snippet = Some(match d.max_snippet {
                        Some(old) if old != -1 && (n == -1 || old < n) => old,
                        _ => n,
                    })
                }
                _ => cur
                    .errors
                    .push(format!("max-snippet value `{a}` is not an integer >= -1")),
            },
            ("unavailable_after", Some(a)) => {
                // Dates contain commas: join following pieces until one
                // parses, while the text is short enough to be a date (a
                // header of commas must not cost quadratic time).
                let mut text = a.clone();
                let mut parsed = parse_date(&text);
                let mut j = i;
                while parsed.is_none() && j < pieces.len() && text.len() <= MAX_DATE_LEN {
                    text = format!("{text},{}", pieces[j]);
                    j += 1;
                    parsed = parse_date(text.trim());
                }
                match parsed {
                    Some(t) => {
                        d.unavailable_after = Some(t);
                        i = j;
                    }
                    // The pieces after a bad date are still read as rules:
                    // a malformed date never hides a `noindex` after it.
                    None => cur.errors.push(format!(
                        "unavailable_after date `{}` does not parse",
                        super::evidence::truncate(a.trim(), MAX_DATE_LEN)
                    )),
                }
            }
            (n, a) => d.other.push(match a {
                Some(a) => format!("{n}:{a}"),
                None => n.to_string(),
            }),
        }
    }
    // Drop the empty leading generic entry when the list began with a prefix.
    if out.len() > 1 && out[0].directives.is_empty() && out[0].errors.is_empty() {
        out.remove(0);
    }
    out
}

/// Parses the date forms Google accepts for `unavailable_after`: RFC 822/2822
/// (with obsolete zone names such as `PST`), RFC 850 and ISO 8601 / RFC 3339.
/// Returns Unix seconds.
pub fn parse_date(s: &str) -> Option<i64> {
    let s = s.trim();
    if let Ok(t) = OffsetDateTime::parse(s, &Rfc3339) {
        return Some(t.unix_timestamp());
    }
    if let Ok(t) = OffsetDateTime::parse(s, &Rfc2822) {
        return Some(t.unix_timestamp());
    }
    // Obsolete zone names of RFC 822 §5.1.
    let zones = [
        ("UT", 0),
        ("GMT", 0),
        ("UTC", 0),
        ("Z", 0),
        ("EST", -5),
        ("EDT", -4),
        ("CST", -6),
        ("CDT", -5),
        ("MST", -7),
        ("MDT", -6),
        ("PST", -8),
        ("PDT", -7),
    ];
    let (body, offset_h) = match s.rsplit_once(' ') {
        Some((b, z)) => match zones.iter().find(|(n, _)| n.eq_ignore_ascii_case(z)) {
            Some((_, h)) => (b.trim(), *h),
            None => (s, 0),
        },
        None => (s, 0),
    };
    let offset = UtcOffset::from_hms(offset_h, 0, 0).ok()?;
    // RFC 822: "Wed, 25 Jun 2025 15:00:00"; RFC 850: "Wednesday, 25-Jun-25 15:00:00".
    let formats = [
        time::macros::format_description!(
            "[weekday repr:short], [day padding:none] [month repr:short] [year] [hour]:[minute]:[second]"
        ),
        time::macros::format_description!(
            "[day padding:none] [month repr:short] [year] [hour]:[minute]:[second]"
        ),
        time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]"),
        time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]"),
    ];
    let body = rfc850_to_822(body).unwrap_or_else(|| body.to_string());
    let body = body.as_str();
    for f in formats {
        if let Ok(p) = PrimitiveDateTime::parse(body, f) {
            return Some(p.assume_offset(offset).unix_timestamp());
        }
    }
    if let Ok(d) = Date::parse(
        body,
        time::macros::format_description!("[year]-[month]-[day]"),
    ) {
        return Some(d.midnight().assume_offset(offset).unix_timestamp());
    }
    None
}

/// RFC 850 `Wednesday, 25-Jun-25 15:00:00` → `25 Jun 2025 15:00:00`
/// (two-digit years below 70 are 20xx, as HTTP date parsers read them).
fn rfc850_to_822(s: &str) -> Option<String> {
    let (_, rest) = s.split_once(", ")?;
    let (date, clock) = rest.split_once(' ')?;
    let mut it = date.split('-');
    let (d, m, y) = (it.next()?, it.next()?, it.next()?);
    if it.next().is_some() || y.len() != 2 {
        return None;
    }
    let y: u32 = y.parse().ok()?;
    let y = if y < 70 { 2000 + y } else { 1900 + y };
    Some(format!("{d} {m} {y} {clock}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_are_case_insensitive_and_unknown_rules_are_kept() {
        let v = parse_header("NoIndex, max-image-preview:large, frobnicate");
        assert_eq!(v.len(), 1);
        assert!(v[0].directives.noindex);
        assert_eq!(
            v[0].directives.other,
            vec!["max-image-preview:large", "frobnicate"]
        );
    }

    #[test]
    fn a_prefix_in_the_middle_scopes_the_rest_of_the_list() {
        let v = parse_header("noindex, otherbot: nofollow");
        assert_eq!(v.len(), 2);
        assert_eq!(v[0].scope, Scope::Generic);
        assert!(v[0].directives.noindex && !v[0].directives.nofollow);
        assert_eq!(v[1].scope, Scope::OtherToken("otherbot".into()));
        assert!(v[1].directives.nofollow);
    }

    #[test]
    fn bad_max_snippet_is_an_error_not_a_crash() {
        let v = parse_header("max-snippet:lots");
        assert_eq!(v[0].directives.max_snippet, None);
        assert_eq!(v[0].errors.len(), 1);
    }

    /// A malformed date used to swallow every rule after it.
    #[test]
    fn a_bad_date_does_not_hide_the_rules_after_it() {
        let v = parse_header("unavailable_after: someday, noindex, nofollow");
        assert_eq!(v.len(), 1);
        assert!(v[0].directives.noindex && v[0].directives.nofollow);
        assert_eq!(v[0].directives.unavailable_after, None);
        assert_eq!(v[0].errors.len(), 1);
        // A long run of commas is cut at a date's length, not joined whole.
        let long = format!("unavailable_after: x{}, noai", ",".repeat(100_000));
        let v = parse_header(&long);
        assert!(v[0].directives.noai);
        assert!(v[0].errors[0].len() < 200);
    }

    #[test]
    fn dates_in_the_forms_google_accepts_parse() {
        assert_eq!(parse_date("2025-06-25T15:00:00Z"), Some(1750863600));
        assert_eq!(
            parse_date("Wed, 25 Jun 2025 15:00:00 GMT"),
            Some(1750863600)
        );
        assert_eq!(
            parse_date("Wed, 25 Jun 2025 07:00:00 PST"),
            Some(1750863600)
        );
        assert_eq!(
            parse_date("Wednesday, 25-Jun-25 15:00:00 GMT"),
            Some(1750863600)
        );
        assert_eq!(parse_date("someday"), None);
    }
}
