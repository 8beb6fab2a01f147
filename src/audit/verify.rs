//! `byline audit verify`: re-derives the hash chain, every covered row's
//! hash, completeness both ways (each event's rows exist with their logged
//! hash; each row of a logged table is covered by an event), the derived
//! tables (passages re-split from the page text, the FTS index), and
//! optionally an anchored head (`--expect-head`, `--since-export`).
//!
//! Every problem is collected (never only the first); a value of the wrong
//! type or a missing table is a problem, never a panic or an abort.

use std::collections::HashMap;

use serde_json::Value;

use crate::index::PASSAGE_MAX_BYTES;
use crate::index::text::{split_passages, title_without_site};
use crate::store::audit::{AuditReader, GENESIS, LOGGED_TABLES, RefRow, content_hash, event_hash};
use crate::store::{Store, StoreError};

/// What kind of problem: the stable `kind` of `--json` output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The log itself: a gap, a broken link, an event whose fields changed.
    Chain,
    /// A covered row differs from its logged hash.
    Changed,
    /// A covered row is gone.
    Deleted,
    /// A row of a logged table that no event covers.
    Unlogged,
    /// A table verify needs does not exist.
    Missing,
    /// A derived row (passages, the FTS index, `audit_refs`) does not match
    /// what it is derived from.
    Derived,
    /// The log does not extend the anchored head (truncated or rewritten).
    Head,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Chain => "chain",
            Kind::Changed => "changed",
            Kind::Deleted => "deleted",
            Kind::Unlogged => "unlogged",
            Kind::Missing => "missing",
            Kind::Derived => "derived",
            Kind::Head => "head",
        }
    }
}

/// One problem found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub kind: Kind,
    /// The table of the row (`audit_events` for the log itself).
    pub table: String,
    /// Its rowid (`seq` for `audit_events`; 0 for a whole table).
    pub id: i64,
    /// The event that covers it, if any.
    pub seq: Option<i64>,
    pub detail: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.kind, self.seq) {
            (Kind::Unlogged, _) => write!(
                f,
                "UNLOGGED: {} row {}: {}",
                self.table, self.id, self.detail
            ),
            (Kind::Missing, _) => write!(f, "MISSING: table {}: {}", self.table, self.detail),
            (_, Some(seq)) => write!(
                f,
                "{} row {} (audit event {seq}): {}",
                self.table, self.id, self.detail
            ),
            (_, None) => write!(f, "{} row {}: {}", self.table, self.id, self.detail),
        }
    }
}

/// The head a previous run or export anchored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Anchor {
    /// `SEQ:HASH` (`byline audit head`).
    Head { seq: i64, sha256: String },
    /// The hash alone (an export manifest's `audit_head_sha256`).
    Hash(String),
}

impl Anchor {
    /// Parses `SEQ:HASH` (the hash 64 lowercase hex digits).
    pub fn parse(s: &str) -> Result<Anchor, String> {
        let (seq, hash) = s
            .split_once(':')
            .ok_or_else(|| format!("{s:?} is not SEQ:HASH"))?;
        let seq: i64 = seq
            .trim()
            .parse()
            .map_err(|_| format!("{seq:?} is not an event number"))?;
        let hash = hash.trim().to_ascii_lowercase();
        if seq < 1 || !is_hex64(&hash) {
            return Err(format!(
                "{s:?} is not SEQ:HASH (a seq from 1 and 64 hex digits)"
            ));
        }
        Ok(Anchor::Head { seq, sha256: hash })
    }
}

/// Whether `s` is 64 lowercase hex digits.
pub fn is_hex64(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// What verify checked and found.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub events: i64,
    /// Covered rows checked (refs of every event).
    pub rows: i64,
    /// The newest event: `(seq, sha256)`.
    pub head: Option<(i64, String)>,
    /// The log and its covered rows first, in log order; then completeness,
    /// derived tables and the anchor.
    pub problems: Vec<Problem>,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }

    /// The stable `--json` object.
    pub fn to_json(&self) -> Value {
        let problems: Vec<Value> = self
            .problems
            .iter()
            .map(|p| {
                serde_json::json!({
                    "kind": p.kind.as_str(), "table": p.table, "id": p.id,
                    "seq": p.seq, "detail": p.detail,
                })
            })
            .collect();
        serde_json::json!({
            "ok": self.ok(),
            "events": self.events,
            "rows": self.rows,
            "head": self.head.as_ref().map(|(seq, sha)| serde_json::json!({"seq": seq, "sha256": sha})),
            "first_tampered": problems.first(),
            "problems": problems,
        })
    }
}

const PAGE: i64 = 2000;

/// Runs every check. `anchors` are heads the log must extend.
pub async fn verify(store: &Store, anchors: &[Anchor]) -> Result<Report, StoreError> {
    let mut rd = store.audit_reader().await?;
    let mut rep = Report::default();
    let mut tail: Vec<Problem> = Vec::new();
    let mut exists: HashMap<String, bool> = HashMap::new();
    for t in LOGGED_TABLES
        .iter()
        .chain(&["audit_events", "audit_refs", "passages", "passages_fts"])
    {
        let e = rd.table_exists(t).await?;
        if !e {
            tail.push(Problem {
                kind: Kind::Missing,
                table: t.to_string(),
                id: 0,
                seq: None,
                detail: "table does not exist (dropped behind Byline's back)".into(),
            });
        }
        exists.insert(t.to_string(), e);
    }
    let has = |exists: &HashMap<String, bool>, t: &str| exists.get(t).copied().unwrap_or(false);
    if !has(&exists, "audit_events") {
        rep.problems = tail;
        return Ok(rep);
    }
    let refs_ok = has(&exists, "audit_refs");
    let newest = if refs_ok {
        rd.multiply_covered().await?
    } else {
        HashMap::new()
    };

    let mut prev = GENESIS.to_string();
    let mut expect_seq = 1i64;
    let mut after = 0i64;
    let mut refs_lo = i64::MIN;
    let mut diff = RefDiff::default();
    let mut deferred: Vec<RefRow> = Vec::new();
    let mut answer_json: HashMap<i64, (i64, String)> = HashMap::new();
    loop {
        let page = rd.events_after(after, PAGE).await?;
        let full = page.len() as i64 >= PAGE;
        let Some(last) = page.last() else {
            if refs_ok {
                let stored = rd.refs_between(refs_lo, i64::MAX).await?;
                compare_refs(&mut tail, &mut Vec::new(), stored, &[], &mut diff);
            }
            break;
        };
        let page_hi = last.seq;
        let mut logged: Vec<RefRow> = Vec::new();
        let mut unreadable: Vec<i64> = Vec::new();
        for raw in &page {
            rep.events += 1;
            let seq = raw.seq;
            after = seq;
            let log_row = |detail: String| Problem {
                kind: Kind::Chain,
                table: "audit_events".into(),
                id: seq,
                seq: Some(seq),
                detail,
            };
            if seq != expect_seq {
                rep.problems.push(log_row(format!(
                    "sequence gap: expected event {expect_seq}, found {seq} (events deleted)"
                )));
            }
            expect_seq = seq.saturating_add(1);
            rep.head = Some((seq, raw.sha256.clone().unwrap_or_default()));
            let e = match &raw.event {
                Ok(e) => e,
                Err(err) => {
                    rep.problems
                        .push(log_row(format!("unreadable event: {err}")));
                    unreadable.push(seq);
                    prev = raw.sha256.clone().unwrap_or_default();
                    continue;
                }
            };
            if e.prev_sha256 != prev {
                rep.problems.push(log_row(format!(
                    "prev_sha256 {} does not match the previous event's hash {prev}",
                    e.prev_sha256
                )));
            }
            let again = event_hash(
                e.seq,
                e.time,
                &e.kind,
                &e.subject,
                &e.payload,
                &e.content_sha256,
                &e.prev_sha256,
            );
            if again != e.sha256 {
                rep.problems.push(log_row(format!(
                    "event fields changed: hash {again} re-derived, {} stored",
                    e.sha256
                )));
            }
            if content_hash(&e.refs) != e.content_sha256 {
                rep.problems.push(log_row(
                    "refs changed: content_sha256 does not match the refs list".into(),
                ));
            }
            for rf in &e.refs {
                rep.rows += 1;
                logged.push(RefRow {
                    seq,
                    table: rf.table.clone(),
                    id: rf.id,
                    sha256: rf.sha256.clone(),
                });
                if !exists.get(&rf.table).copied().unwrap_or(true) {
                    continue; // reported once as a missing table
                }
                if newest
                    .get(&(rf.table.clone(), rf.id))
                    .is_some_and(|&n| n > seq)
                {
                    // A newer event covers the row as it is now (checked
                    // at the end that the newer ref is the log's, not forged).
                    deferred.push(RefRow {
                        seq,
                        table: rf.table.clone(),
                        id: rf.id,
                        sha256: rf.sha256.clone(),
                    });
                    continue;
                }
                let row = |kind: Kind, detail: String| Problem {
                    kind,
                    table: rf.table.clone(),
                    id: rf.id,
                    seq: Some(seq),
                    detail,
                };
                match rd.row_hash(&rf.table, rf.id).await {
                    Ok(None) => rep.problems.push(row(
                        Kind::Deleted,
                        format!("row deleted (logged by {} {})", e.kind, e.subject),
                    )),
                    Ok(Some(h)) if h != rf.sha256 => rep.problems.push(row(
                        Kind::Changed,
                        format!(
                            "row changed since {} {} was logged: row hash {h}, logged {}",
                            e.kind, e.subject, rf.sha256
                        ),
                    )),
                    Ok(Some(_)) => {}
                    Err(err) => {
                        if !exists.contains_key(&rf.table) {
                            let e2 = rd.table_exists(&rf.table).await.unwrap_or(false);
                            exists.insert(rf.table.clone(), e2);
                            if !e2 {
                                tail.push(Problem {
                                    kind: Kind::Missing,
                                    table: rf.table.clone(),
                                    id: 0,
                                    seq: Some(seq),
                                    detail: "a logged table does not exist".into(),
                                });
                                continue;
                            }
                        }
                        rep.problems
                            .push(row(Kind::Changed, format!("row unreadable: {err}")))
                    }
                }
            }
            // Answers: the JSON shown is re-hashed against the newest event
            // that logged its hash (checked after the log is read).
            note_answer_json(e, &mut answer_json);
            prev = e.sha256.clone();
        }
        // The reference index must equal the refs of these events.
        if refs_ok {
            let hi = if full { page_hi } else { i64::MAX };
            let stored = rd.refs_between(refs_lo, hi).await?;
            compare_refs(&mut tail, &mut logged, stored, &unreadable, &mut diff);
            refs_lo = hi.saturating_add(1);
        }
        if !full {
            break;
        }
    }
    // Superseded refs whose newer refs exist only in a forged index: the
    // log's own newest ref for the row is this one, so the row must match it.
    for d in &deferred {
        let seqs = rd.ref_seqs(&d.table, d.id).await?;
        let by_log = seqs
            .iter()
            .any(|&s| s > d.seq && !diff.extra.contains(&(d.table.clone(), d.id, s)));
        if by_log {
            continue;
        }
        let row = |kind: Kind, detail: &str| Problem {
            kind,
            table: d.table.clone(),
            id: d.id,
            seq: Some(d.seq),
            detail: detail.to_string(),
        };
        match rd.row_hash(&d.table, d.id).await {
            Ok(None) => rep.problems.push(row(Kind::Deleted, "row deleted")),
            Ok(Some(h)) if h != d.sha256 => rep
                .problems
                .push(row(Kind::Changed, "row changed since it was logged")),
            Ok(Some(_)) => {}
            Err(e) => rep
                .problems
                .push(row(Kind::Changed, &format!("row unreadable: {e}"))),
        }
    }
    // Each answer's JSON against the newest hash the log holds for it.
    if has(&exists, "answers") {
        let mut ids: Vec<_> = answer_json.into_iter().collect();
        ids.sort_unstable();
        for (id, (seq, want)) in ids {
            let p = |detail: String| Problem {
                kind: Kind::Changed,
                table: "answers".into(),
                id,
                seq: Some(seq),
                detail,
            };
            match rd.answer_json_sha256(id).await? {
                None => rep.problems.push(Problem {
                    kind: Kind::Deleted,
                    ..p("answer deleted".into())
                }),
                Some(Err(why)) => rep.problems.push(p(why)),
                Some(Ok(h)) if h != want => rep.problems.push(p(format!(
                    "answer json changed: sha256 {h}, logged json_sha256 {want}"
                ))),
                Some(Ok(_)) => {}
            }
        }
    }
    rep.problems.sort_by_key(|p| p.seq.unwrap_or(0));

    // Completeness: every row of every logged table is covered.
    if refs_ok {
        for t in LOGGED_TABLES {
            if !has(&exists, t) {
                continue;
            }
            let mut ids = rd.unlogged(t).await?;
            // Judged by the log, not the index: a row the log covers but the
            // index lacks is covered; a row only a forged index row covers is not.
            ids.retain(|id| !diff.missing.contains(&(t.to_string(), *id)));
            let mut forged: Vec<i64> = diff
                .extra
                .iter()
                .filter(|(tt, _, _)| tt == t)
                .map(|(_, id, _)| *id)
                .collect();
            forged.sort_unstable();
            forged.dedup();
            for id in forged {
                let seqs = rd.ref_seqs(t, id).await?;
                let by_log = seqs
                    .iter()
                    .any(|s| !diff.extra.contains(&(t.to_string(), id, *s)))
                    || diff.missing.contains(&(t.to_string(), id));
                if !by_log && rd.row_hash(t, id).await.ok().flatten().is_some() {
                    ids.push(id);
                }
            }
            ids.sort_unstable();
            ids.dedup();
            for id in ids {
                tail.push(Problem {
                    kind: Kind::Unlogged,
                    table: t.to_string(),
                    id,
                    seq: None,
                    detail: "no audit event covers this row (inserted behind Byline's back, or its event was deleted)".into(),
                });
            }
        }
    }

    // Erasable page text against its digest.
    if has(&exists, "pages") {
        for (id, seq, detail) in rd.page_text_problems().await? {
            tail.push(Problem {
                kind: Kind::Changed,
                table: "pages".into(),
                id,
                seq: (seq > 0).then_some(seq),
                detail,
            });
        }
    }

    // Derived: passages re-split from the page text, the FTS index.
    if has(&exists, "passages") && has(&exists, "pages") {
        check_passages(&mut rd, &mut tail).await?;
        if has(&exists, "passages_fts") {
            if let Some(why) = rd.fts_problem().await? {
                tail.push(Problem {
                    kind: Kind::Derived,
                    table: "passages_fts".into(),
                    id: 0,
                    seq: None,
                    detail: format!("full-text index does not match the passages: {why}"),
                });
            }
        }
    }

    // Anchors: the log must extend every head anchored outside it.
    for a in anchors {
        match a {
            Anchor::Head { seq, sha256 } => match rd.event_sha256(*seq).await? {
                None => tail.push(Problem {
                    kind: Kind::Head,
                    table: "audit_events".into(),
                    id: *seq,
                    seq: Some(*seq),
                    detail: format!(
                        "the anchored head event {seq} is gone: the log was truncated (newest now {})",
                        rep.head.as_ref().map(|h| h.0).unwrap_or(0)
                    ),
                }),
                Some(h) if &h != sha256 => tail.push(Problem {
                    kind: Kind::Head,
                    table: "audit_events".into(),
                    id: *seq,
                    seq: Some(*seq),
                    detail: format!(
                        "event {seq} has hash {h}, the anchor says {sha256}: the log was rewritten from there on"
                    ),
                }),
                Some(_) => {}
            },
            Anchor::Hash(sha) => {
                if rd.event_with_sha256(sha).await?.is_none() {
                    tail.push(Problem {
                        kind: Kind::Head,
                        table: "audit_events".into(),
                        id: 0,
                        seq: None,
                        detail: format!(
                            "no event has the anchored head hash {sha}: the log was truncated or rewritten"
                        ),
                    });
                }
            }
        }
    }
    rep.problems.extend(tail);
    Ok(rep)
}

/// Records the answer JSON hash an event logs: an `answer` event's
/// `json_sha256`; a `forget` event's `answers_redacted` entries (the JSON
/// as rewritten when a cited page was erased), honoured only for an answer
/// an earlier `answer` event logged and whose row the same `forget` event
/// covers, so a forget cannot vouch for an answer it did not rewrite.
fn note_answer_json(e: &crate::store::audit::AuditEvent, seen: &mut HashMap<i64, (i64, String)>) {
    match e.kind.as_str() {
        "answer" => {
            let id = e.payload.get("answer_id").and_then(Value::as_i64);
            let want = e.payload.get("json_sha256").and_then(Value::as_str);
            if let (Some(id), Some(want)) = (id, want) {
                seen.insert(id, (e.seq, want.to_string()));
            }
        }
        "forget" => {
            let list = e
                .payload
                .get("answers_redacted")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            for r in list {
                let id = r.get("answer_id").and_then(Value::as_i64);
                let want = r.get("json_sha256").and_then(Value::as_str);
                let (Some(id), Some(want)) = (id, want) else {
                    continue;
                };
                let covered = e.refs.iter().any(|f| f.table == "answers" && f.id == id);
                if covered && seen.contains_key(&id) {
                    seen.insert(id, (e.seq, want.to_string()));
                }
            }
        }
        _ => {}
    }
}

/// Where `audit_refs` and the log disagree: refs the index lacks, and
/// index rows the log does not hold.
#[derive(Debug, Default)]
struct RefDiff {
    missing: std::collections::HashSet<(String, i64)>,
    extra: std::collections::HashSet<(String, i64, i64)>,
}

/// Reports the differences between the refs of a page of events and the
/// `audit_refs` rows stored for the same seq range.
fn compare_refs(
    out: &mut Vec<Problem>,
    logged: &mut Vec<RefRow>,
    stored: Vec<RefRow>,
    unreadable: &[i64],
    diff: &mut RefDiff,
) {
    logged.sort();
    logged.dedup();
    let stored: Vec<RefRow> = stored
        .into_iter()
        .filter(|r| !unreadable.contains(&r.seq))
        .collect();
    let (mut i, mut j) = (0, 0);
    while i < logged.len() || j < stored.len() {
        let ord = match (logged.get(i), stored.get(j)) {
            (Some(a), Some(b)) => a.cmp(b),
            (Some(_), None) => std::cmp::Ordering::Less,
            _ => std::cmp::Ordering::Greater,
        };
        match ord {
            std::cmp::Ordering::Equal => {
                i += 1;
                j += 1;
            }
            std::cmp::Ordering::Less => {
                let a = &logged[i];
                diff.missing.insert((a.table.clone(), a.id));
                out.push(Problem {
                    kind: Kind::Derived,
                    table: "audit_refs".into(),
                    id: a.seq,
                    seq: Some(a.seq),
                    detail: format!(
                        "missing the ref {} row {} of event {}",
                        a.table, a.id, a.seq
                    ),
                });
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                let b = &stored[j];
                diff.extra.insert((b.table.clone(), b.id, b.seq));
                out.push(Problem {
                    kind: Kind::Derived,
                    table: "audit_refs".into(),
                    id: b.seq,
                    seq: None,
                    detail: format!(
                        "holds {} row {} for event {}, which the log does not cover (forged)",
                        b.table, b.id, b.seq
                    ),
                });
                j += 1;
            }
        }
    }
}

/// Passages are derived: each current passage must be exactly what the
/// splitter makes of its page's text now, and belong to an existing page.
async fn check_passages(rd: &mut AuditReader, out: &mut Vec<Problem>) -> Result<(), StoreError> {
    for (id, page) in rd.orphan_passages().await? {
        out.push(derived(
            id,
            format!("passage of page {page}, which does not exist"),
        ));
    }
    let mut after = 0;
    loop {
        let batch = rd.pages_with_passages(after, 500).await?;
        let Some(last) = batch.last() else { break };
        after = last.page_id;
        for p in &batch {
            if !p.logged {
                for ps in &p.passages {
                    out.push(derived(
                        ps.0,
                        format!("passage of page {}, which no audit event covers", p.page_id),
                    ));
                }
                continue;
            }
            let Some(text) = &p.text else {
                for ps in &p.passages {
                    out.push(derived(
                        ps.0,
                        format!("page {} text is not text", p.page_id),
                    ));
                }
                continue;
            };
            let title = title_without_site(&p.title, p.site_name.as_deref());
            let want = split_passages(text, &p.nosnippet, PASSAGE_MAX_BYTES);
            for (k, ps) in p.passages.iter().enumerate() {
                let (id, ordinal, start, end, ptext, ptitle) = ps;
                let ok = want.get(k).is_some_and(|w| {
                    *ordinal == k as i64
                        && *start == w.start_char as i64
                        && *end == w.end_char as i64
                        && ptext.as_deref() == Some(w.text.as_str())
                });
                if !ok {
                    out.push(derived(
                        *id,
                        format!(
                            "passage {ordinal} of page {} is not what the page text splits into",
                            p.page_id
                        ),
                    ));
                } else if ptitle.as_deref() != Some(title.as_str()) {
                    out.push(derived(
                        *id,
                        format!("passage title is not page {}'s title", p.page_id),
                    ));
                }
            }
            if p.passages.len() < want.len() {
                out.push(derived(
                    p.passages.last().map(|x| x.0).unwrap_or(0),
                    format!(
                        "page {} splits into {} passages, {} stored",
                        p.page_id,
                        want.len(),
                        p.passages.len()
                    ),
                ));
            }
        }
    }
    Ok(())
}

fn derived(id: i64, detail: String) -> Problem {
    Problem {
        kind: Kind::Derived,
        table: "passages".into(),
        id,
        seq: None,
        detail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anchors_parse_only_seq_colon_64_hex() {
        let h = "ab".repeat(32);
        assert_eq!(
            Anchor::parse(&format!("12:{h}")),
            Ok(Anchor::Head {
                seq: 12,
                sha256: h.clone()
            })
        );
        assert_eq!(
            Anchor::parse(&format!(" 3 : {} ", h.to_uppercase())),
            Ok(Anchor::Head {
                seq: 3,
                sha256: h.clone()
            })
        );
        for bad in [
            "nonsense".to_string(),
            format!("0:{h}"),
            format!("-1:{h}"),
            format!("x:{h}"),
            "5:abc".into(),
            format!("5:{}", "zz".repeat(32)),
            format!("99999999999999999999:{h}"),
        ] {
            assert!(Anchor::parse(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn refs_index_differences_are_named_both_ways() {
        let r = |seq, table: &str, id| RefRow {
            seq,
            table: table.into(),
            id,
            sha256: "h".into(),
        };
        let mut out = Vec::new();
        let mut diff = RefDiff::default();
        let mut logged = vec![r(2, "pages", 1), r(1, "fetches", 1)];
        let stored = vec![r(1, "fetches", 1), r(3, "verdicts", 9)];
        compare_refs(&mut out, &mut logged, stored, &[], &mut diff);
        assert_eq!(out.len(), 2, "{out:?}");
        assert!(diff.missing.contains(&("pages".to_string(), 1)));
        assert!(diff.extra.contains(&("verdicts".to_string(), 9, 3)));
        // Refs of an unreadable event are not compared.
        let mut out = Vec::new();
        compare_refs(
            &mut out,
            &mut Vec::new(),
            vec![r(4, "links", 2)],
            &[4],
            &mut diff,
        );
        assert!(out.is_empty());
    }
}
