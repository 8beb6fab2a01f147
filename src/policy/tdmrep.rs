//! TDM Reservation Protocol (signals.md §4, `CG-FINAL`: W3C TDMRep Community Group
//! final report): `/.well-known/tdmrep.json`, `tdm-reservation` /
//! `tdm-policy` headers and meta tags, and the precedence of §4.4.

use crate::crawl::robots::pattern;

/// One valid rule of tdmrep.json.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TdmRule {
    pub location: String,
    pub reservation: u8,
    pub policy: Option<String>,
}

/// A parsed tdmrep.json: the valid rules, plus what was wrong with the rest.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TdmFile {
    pub rules: Vec<TdmRule>,
    /// `tdmrep.invalid` details; valid rules are kept (signals.md §4.5).
    pub errors: Vec<String>,
}

/// Parses a tdmrep.json body: a JSON array of
/// `{"location", "tdm-reservation", "tdm-policy"?}`. Bad rules are skipped
/// and reported; a body that is not an array yields no rules.
pub fn parse_file(body: &str) -> TdmFile {
    let mut out = TdmFile::default();
    let v: serde_json::Value = match serde_json::from_str(body.trim_start_matches('\u{feff}')) {
        Ok(v) => v,
        Err(e) => {
            out.errors.push(format!("tdmrep.invalid: not JSON: {e}"));
            return out;
        }
    };
    let Some(arr) = v.as_array() else {
        out.errors
            .push("tdmrep.invalid: the top level is not an array (brackets are mandatory)".into());
        return out;
    };
    for (i, item) in arr.iter().enumerate() {
        let Some(obj) = item.as_object() else {
            out.errors
                .push(format!("tdmrep.invalid: rule {i} is not an object"));
            continue;
        };
        let Some(location) = obj.get("location").and_then(|l| l.as_str()) else {
            out.errors
                .push(format!("tdmrep.invalid: rule {i} has no string `location`"));
            continue;
        };
        let (reservation, oddity) = match obj.get("tdm-reservation") {
            Some(r) => reservation_value(r),
            None => {
                out.errors
                    .push(format!("tdmrep.invalid: rule {i} has no `tdm-reservation`"));
                continue;
            }
        };
        if let Some(o) = oddity {
            out.errors.push(format!("rule {i}: {o}"));
        }
        let Some(reservation) = reservation else {
            continue;
        };
        out.rules.push(TdmRule {
            location: location.to_string(),
            reservation,
            policy: obj
                .get("tdm-policy")
                .and_then(|p| p.as_str())
                .map(str::to_string),
        });
    }
    out
}

/// Spec §4.5 (`OURS`): integer 0/1 as specified; `"1"` and `1.0` accepted as
/// reserved (conservative) with a recorded oddity; anything else unset.
fn reservation_value(v: &serde_json::Value) -> (Option<u8>, Option<String>) {
    if let Some(n) = v.as_u64() {
        return match n {
            0 | 1 => (Some(n as u8), None),
            _ => (
                None,
                Some(format!("tdm-reservation {n} is not 0 or 1: unset")),
            ),
        };
    }
    let odd = |s: &str| {
        Some(format!(
            "tdm-reservation {s} is not the integer 1: read as reserved"
        ))
    };
    match v {
        serde_json::Value::String(s) if s.trim() == "1" => (Some(1), odd(&v.to_string())),
        serde_json::Value::Number(n) if n.as_f64() == Some(1.0) => (Some(1), odd(&v.to_string())),
        _ => (
            None,
            Some(format!("tdm-reservation {v} is not 0 or 1: unset")),
        ),
    }
}

impl TdmFile {
    /// The first rule in array order whose `location` matches `path`
    /// (signals.md §4.3: first match, not longest match).
    pub fn first_match(&self, path: &str) -> Option<&TdmRule> {
        self.rules
            .iter()
            .find(|r| pattern::rule_matches(&r.location, path))
    }
}

/// Parses a `tdm-reservation` header or meta value: `0` or `1`; anything else
/// is a protocol error and "MUST" be treated as unset (signals.md §4.1).
pub fn parse_reservation(value: &str) -> Result<u8, String> {
    match value.trim() {
        "1" => Ok(1),
        "0" => Ok(0),
        other => Err(format!(
            "tdm-reservation value `{other}` is not 0 or 1: treated as unset"
        )),
    }
}

/// Spec §4.4: the later technique that *sets* a value overrides the earlier
/// one; a silent source never resets it. Sources in order: file, header, meta.
pub fn combine(sources: &[Option<u8>]) -> Option<u8> {
    sources.iter().fold(None, |acc, s| s.or(acc))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_rules_are_skipped_and_valid_ones_kept() {
        let f = parse_file(
            r#"[{"location":"/a"},{"location":"/b","tdm-reservation":1},{"tdm-reservation":0}]"#,
        );
        assert_eq!(f.rules.len(), 1);
        assert_eq!(f.errors.len(), 2);
        assert!(parse_file("{}").errors[0].contains("not an array"));
        assert!(parse_file("<html>").errors[0].contains("not JSON"));
    }

    #[test]
    fn string_one_is_read_as_reserved_with_an_oddity() {
        let f = parse_file(
            r#"[{"location":"/","tdm-reservation":"1"},{"location":"/x","tdm-reservation":"yes"}]"#,
        );
        assert_eq!(f.rules.len(), 1);
        assert_eq!(f.rules[0].reservation, 1);
        assert_eq!(f.errors.len(), 2);
    }
}
