//! Decoding a page body to text. Order as in the HTML standard's encoding
//! sniffing (§13.2.3.2): a byte-order mark wins, then the `charset` of
//! `Content-Type`, then a `<meta charset>` / `<meta http-equiv>` prescan of
//! the first 1024 bytes, then chardetng's guess.

use encoding_rs::Encoding;

/// A decoded body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    pub text: String,
    /// What the response declared (`bom`, `header:<label>` or `meta:<label>`), if anything.
    pub declared: Option<String>,
    /// The encoding actually used (its WHATWG name, e.g. `Shift_JIS`).
    pub used: &'static str,
}

/// Decodes `body` given the response's `Content-Type`.
pub fn decode(body: &[u8], content_type: Option<&str>) -> Decoded {
    if let Some((enc, bom_len)) = Encoding::for_bom(body) {
        let (text, _) = enc.decode_without_bom_handling(&body[bom_len..]);
        return Decoded {
            text: text.into_owned(),
            declared: Some("bom".into()),
            used: enc.name(),
        };
    }
    let header = content_type.and_then(charset_param);
    let mut declared = header.as_ref().map(|l| format!("header:{l}"));
    let mut enc = header
        .as_deref()
        .and_then(|l| Encoding::for_label(l.as_bytes()));
    if enc.is_none() {
        let meta = prescan_meta(&body[..body.len().min(1024)]);
        if let Some(l) = &meta {
            declared.get_or_insert_with(|| format!("meta:{l}"));
            // HTML §13.2.3.2: a meta-declared UTF-16 means UTF-8.
            enc = Encoding::for_label(l.as_bytes()).map(|e| {
                if e == encoding_rs::UTF_16LE || e == encoding_rs::UTF_16BE {
                    encoding_rs::UTF_8
                } else {
                    e
                }
            });
        }
    }
    let enc = enc.unwrap_or_else(|| {
        let mut det = chardetng::EncodingDetector::new(chardetng::Iso2022JpDetection::Deny);
        det.feed(body, true);
        det.guess(None, chardetng::Utf8Detection::Allow)
    });
    let (text, _) = enc.decode_without_bom_handling(body);
    Decoded {
        text: text.into_owned(),
        declared,
        used: enc.name(),
    }
}

/// The `charset` parameter of a `Content-Type` value.
pub fn charset_param(ct: &str) -> Option<String> {
    ct.split(';')
        .skip(1)
        .find_map(|p| {
            let (k, v) = p.split_once('=')?;
            k.trim()
                .eq_ignore_ascii_case("charset")
                .then(|| v.trim().trim_matches(['"', '\'']).to_string())
        })
        .filter(|s| !s.is_empty())
}

/// Finds `charset=` inside a `<meta ...>` tag in the first bytes of a document.
fn prescan_meta(head: &[u8]) -> Option<String> {
    let lower: Vec<u8> = head.iter().map(u8::to_ascii_lowercase).collect();
    let mut i = 0;
    while let Some(p) = find(&lower[i..], b"<meta") {
        let start = i + p;
        let end = find(&lower[start..], b">").map_or(lower.len(), |e| start + e);
        let tag = &lower[start..end];
        if let Some(c) = find(tag, b"charset") {
            let mut rest = &tag[c + 7..];
            while let [b' ' | b'\t' | b'\n' | b'\r', r @ ..] = rest {
                rest = r;
            }
            if let [b'=', r @ ..] = rest {
                let r = r
                    .iter()
                    .skip_while(|b| b.is_ascii_whitespace() || **b == b'"' || **b == b'\'')
                    .copied();
                let label: Vec<u8> = r
                    .take_while(|b| {
                        !(b.is_ascii_whitespace() || matches!(b, b'"' | b'\'' | b';' | b'/' | b'>'))
                    })
                    .collect();
                if !label.is_empty() {
                    return Some(String::from_utf8_lossy(&label).into_owned());
                }
            }
        }
        i = end.max(start + 5);
        if i >= lower.len() {
            break;
        }
    }
    None
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_charset_decodes_windows_1252() {
        let d = decode(b"caf\xe9", Some("text/html; charset=windows-1252"));
        assert_eq!(d.text, "café");
        assert_eq!(d.used, "windows-1252");
        assert_eq!(d.declared.as_deref(), Some("header:windows-1252"));
    }

    #[test]
    fn meta_charset_is_found_by_the_prescan() {
        let (sjis, _, _) =
            encoding_rs::SHIFT_JIS.encode("<meta charset=\"Shift_JIS\"><p>日本語のテキスト</p>");
        let d = decode(&sjis, Some("text/html"));
        assert!(d.text.contains("日本語のテキスト"), "{}", d.text);
        assert_eq!(d.used, "Shift_JIS");
        let d = decode(
            b"<meta http-equiv=\"Content-Type\" content=\"text/html; charset=iso-8859-1\">\xe9",
            None,
        );
        assert_eq!(d.used, "windows-1252");
    }

    #[test]
    fn bom_beats_the_header_and_undeclared_bodies_are_guessed() {
        let d = decode(
            b"\xef\xbb\xbfh\xc3\xa9",
            Some("text/html; charset=windows-1252"),
        );
        assert_eq!(d.text, "hé");
        assert_eq!(d.declared.as_deref(), Some("bom"));
        let d = decode("plain utf-8 déjà vu".as_bytes(), None);
        assert_eq!(d.used, "UTF-8");
    }
}
