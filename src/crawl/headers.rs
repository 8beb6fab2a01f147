//! Pure parsers of response header values the crawler times things by
//! (`Retry-After`, `Cache-Control: max-age`). Every result is bounded, so a
//! caller can add it to an `Instant` or a Unix time without overflow,
//! whatever the server sent.

use std::time::Duration;

/// The longest wait a `Retry-After` can ask for (one day): longer values,
/// in seconds or as a far HTTP date, are cut to this.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 60 * 60);

/// The longest `Cache-Control: max-age` kept (RFC 9111 §1.2.2: a cache
/// treats a delta-seconds above 2^31 as 2^31).
pub const MAX_AGE_LIMIT: Duration = Duration::from_secs(1 << 31);

/// Parses `Retry-After` (RFC 9110 §10.2.3): delta-seconds or an HTTP-date,
/// relative to `now`. At most [`MAX_RETRY_AFTER`]; a date in the past is
/// zero. `None` when the value is neither.
pub fn retry_after(value: &str, now: time::OffsetDateTime) -> Option<Duration> {
    let v = value.trim();
    if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) {
        // Any run of digits is a delay; one too long for u64 is just long.
        let secs = v.parse::<u64>().unwrap_or(u64::MAX);
        return Some(Duration::from_secs(secs).min(MAX_RETRY_AFTER));
    }
    let at = time::OffsetDateTime::parse(v, &time::format_description::well_known::Rfc2822).ok()?;
    let secs = (at - now).whole_seconds().max(0);
    let secs = u64::try_from(secs).unwrap_or(u64::MAX);
    Some(Duration::from_secs(secs).min(MAX_RETRY_AFTER))
}

/// `max-age` (or `s-maxage`) of a `Cache-Control` value (RFC 9111 §5.2.2),
/// directive names case-insensitive, at most [`MAX_AGE_LIMIT`]. `None`
/// when there is no such directive with a delta-seconds value.
pub fn max_age(cache_control: &str) -> Option<Duration> {
    cache_control.split(',').find_map(|d| {
        let (name, v) = d.split_once('=')?;
        let name = name.trim();
        if !name.eq_ignore_ascii_case("max-age") && !name.eq_ignore_ascii_case("s-maxage") {
            return None;
        }
        let v = v.trim().trim_matches('"');
        if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let secs = v.parse::<u64>().unwrap_or(u64::MAX);
        Some(Duration::from_secs(secs).min(MAX_AGE_LIMIT))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> time::OffsetDateTime {
        time::macros::datetime!(2026-11-28 12:00:00 UTC)
    }

    #[test]
    fn retry_after_takes_seconds_and_http_dates() {
        assert_eq!(retry_after("120", now()), Some(Duration::from_secs(120)));
        assert_eq!(
            retry_after("Sat, 28 Nov 2026 12:00:30 GMT", now()),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            retry_after("Sat, 28 Nov 2026 11:00:00 GMT", now()),
            Some(Duration::ZERO)
        );
        assert_eq!(retry_after("soon", now()), None);
        assert_eq!(retry_after("-5", now()), None);
        assert_eq!(retry_after("", now()), None);
    }

    /// `Retry-After: 18446744073709551615` used to come back as u64::MAX
    /// seconds, which the crawler added to an `Instant` (overflow panic).
    #[test]
    fn huge_retry_after_is_capped_and_can_be_added_to_an_instant() {
        for v in [
            "18446744073709551615",
            "99999999999999999999999999",
            "86401",
            "Fri, 31 Dec 9999 23:59:59 GMT",
        ] {
            let d = crate::crawl::fetch::parse_retry_after(v, now()).unwrap();
            assert_eq!(d, MAX_RETRY_AFTER, "{v}");
            let _ = std::time::Instant::now() + d;
        }
    }

    #[test]
    fn max_age_is_read_case_insensitively_and_bounded() {
        assert_eq!(max_age("public, max-age=60"), Some(Duration::from_secs(60)));
        assert_eq!(max_age("S-MaxAge=\"7\""), Some(Duration::from_secs(7)));
        assert_eq!(
            max_age("max-age=99999999999999999999999"),
            Some(MAX_AGE_LIMIT)
        );
        assert_eq!(max_age("no-store"), None);
        assert_eq!(
            max_age("max-age=-1, max-age=5"),
            Some(Duration::from_secs(5))
        );
        assert_eq!(max_age("max-age="), None);
    }
}
