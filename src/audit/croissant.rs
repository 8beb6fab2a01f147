//! `audit export --format croissant`: `croissant.json`, Croissant 1.1
//! JSON-LD describing the export's `verdicts.jsonl` as a dataset (one
//! FileObject with its sha256, one RecordSet whose fields are the record
//! keys, licence per record as an SPDX id), with PROV-O provenance: the
//! crawled origins (`prov:wasDerivedFrom`) and the crawl runs that generated
//! it (`prov:wasGeneratedBy`: start and end time, byline version, user
//! agent, seeds, the policies used by id and sha256).

use std::collections::BTreeSet;

use sha2::{Digest, Sha256};

use super::AuditError;
use super::export::{ExportCtx, Extra, write_file};
use super::records::iso;
use crate::store::Store;

/// The Croissant file's name in the export directory.
pub const CROISSANT_FILE: &str = "croissant.json";

/// The standard Croissant 1.1 context (as `mlcroissant` writes it: schema.org
/// over `https`, which the validator requires of a Dataset) plus PROV-O.
pub(super) fn context() -> serde_json::Value {
    let mut m = serde_json::Map::new();
    for (k, v) in [
        ("@language", "en"),
        ("@vocab", "https://schema.org/"),
        ("arrayShape", "cr:arrayShape"),
        ("citeAs", "cr:citeAs"),
        ("column", "cr:column"),
        ("conformsTo", "dct:conformsTo"),
        ("containedIn", "cr:containedIn"),
        ("cr", "http://mlcommons.org/croissant/"),
        ("rai", "http://mlcommons.org/croissant/RAI/"),
        ("dct", "http://purl.org/dc/terms/"),
        ("equivalentProperty", "cr:equivalentProperty"),
        ("extract", "cr:extract"),
        ("field", "cr:field"),
        ("fileProperty", "cr:fileProperty"),
        ("fileObject", "cr:fileObject"),
        ("fileSet", "cr:fileSet"),
        ("format", "cr:format"),
        ("includes", "cr:includes"),
        ("isArray", "cr:isArray"),
        ("isLiveDataset", "cr:isLiveDataset"),
        ("jsonPath", "cr:jsonPath"),
        ("key", "cr:key"),
        ("md5", "cr:md5"),
        ("parentField", "cr:parentField"),
        ("path", "cr:path"),
        ("recordSet", "cr:recordSet"),
        ("references", "cr:references"),
        ("regex", "cr:regex"),
        ("repeated", "cr:repeated"),
        ("replace", "cr:replace"),
        ("samplingRate", "cr:samplingRate"),
        ("sc", "https://schema.org/"),
        ("separator", "cr:separator"),
        ("source", "cr:source"),
        ("subField", "cr:subField"),
        ("transform", "cr:transform"),
        ("prov", "http://www.w3.org/ns/prov#"),
    ] {
        m.insert(k.into(), serde_json::Value::from(v));
    }
    m.insert(
        "data".into(),
        serde_json::json!({"@id": "cr:data", "@type": "@json"}),
    );
    m.insert(
        "dataType".into(),
        serde_json::json!({"@id": "cr:dataType", "@type": "@vocab"}),
    );
    m.insert(
        "description".into(),
        serde_json::json!({"@container": "@language"}),
    );
    m.insert(
        "examples".into(),
        serde_json::json!({"@id": "cr:examples", "@type": "@json"}),
    );
    m.insert(
        "name".into(),
        serde_json::json!({"@container": "@language"}),
    );
    serde_json::Value::Object(m)
}

/// (key in the records, dataType, is an array, description)
const FIELDS: [(&str, &str, bool, &str); 12] = [
    (
        "url",
        "sc:URL",
        false,
        "The URL the crawl met (as discovered).",
    ),
    (
        "origin",
        "sc:URL",
        false,
        "scheme://host[:port] of the URL.",
    ),
    (
        "purpose",
        "sc:Text",
        false,
        "search_index, rag_attributed or train.",
    ),
    (
        "decision",
        "sc:Text",
        false,
        "allowed, allowed_with_conditions, excluded or deferred.",
    ),
    (
        "reasons",
        "sc:Text",
        true,
        "Reason codes of the decision (e.g. robots.disallow).",
    ),
    (
        "conditions",
        "sc:Text",
        true,
        "Conditions attached to an allowed_with_conditions decision.",
    ),
    (
        "policy_id",
        "sc:Text",
        false,
        "Id of the policy that decided (null when no verdict was made).",
    ),
    (
        "policy_sha256",
        "sc:Text",
        false,
        "sha256 of the policy file's bytes.",
    ),
    (
        "licence",
        "sc:Text",
        false,
        "The page's licence as an SPDX identifier (null when none was found).",
    ),
    (
        "licence_conditions",
        "sc:Text",
        false,
        "Condition class of the licence (attribution, share-alike, ...; none; unknown).",
    ),
    (
        "decided_at",
        "sc:DateTime",
        false,
        "When the verdict was made (RFC 3339, UTC).",
    ),
    (
        "crawl_state",
        "sc:Text",
        false,
        "The crawler's state for the URL (done, skipped, failed, ...).",
    ),
];

/// Writes `croissant.json` describing the records file; returns its
/// manifest entry and section.
pub(super) async fn write(store: &Store, ctx: &ExportCtx<'_>) -> Result<Extra, AuditError> {
    let description = format!(
        "Consent and licence verdicts of a Byline crawl: one record per URL the crawl met and purpose ({} records from {} origin(s)), with the decision, reason codes, policy hash and the page's SPDX licence. Merkle root of the records: {}.",
        ctx.recs.len(),
        ctx.recs
            .iter()
            .map(|r| r.origin.as_str())
            .collect::<BTreeSet<_>>()
            .len(),
        ctx.merkle_root
    );
    let doc = document(store, ctx, description, vec![], vec![]).await?;
    let text = serde_json::to_string_pretty(&doc)?;
    let file = write_file(ctx.out, CROISSANT_FILE, text.as_bytes())?;
    Ok(Extra {
        files: vec![file],
        sections: vec![(
            "croissant".into(),
            serde_json::json!({"file": CROISSANT_FILE, "conforms_to": "http://mlcommons.org/croissant/1.1", "describes": ctx.records_file}),
        )],
    })
}

/// The Croissant document of an export: the dataset's metadata (licences,
/// creator, dates, RAI, PROV-O), the records file as a FileObject with its
/// `verdicts` RecordSet, and `distribution`/`record_sets` added by the caller
/// (a dataset export's text-bearing FileSet and its RecordSet).
pub(super) async fn document(
    store: &Store,
    ctx: &ExportCtx<'_>,
    description: String,
    distribution: Vec<serde_json::Value>,
    record_sets: Vec<serde_json::Value>,
) -> Result<serde_json::Value, AuditError> {
    let runs = store.crawl_runs().await?;
    let name = format!("byline-export-{}", ctx.version);
    let records_sha = hex::encode(Sha256::digest(ctx.records_body));
    let licences: BTreeSet<&str> = ctx
        .recs
        .iter()
        .filter_map(|r| r.licence.as_deref())
        .collect();
    let unknown = ctx.recs.iter().filter(|r| r.licence.is_none()).count();
    let mut license: Vec<serde_json::Value> = licences
        .iter()
        .map(|l| serde_json::json!(format!("https://spdx.org/licenses/{l}.html")))
        .collect();
    if unknown > 0 || license.is_empty() {
        license.push(serde_json::json!({
            "@type": "CreativeWork",
            "name": "unknown",
            "description": format!("{unknown} record(s) have no licence signal; each record's licence field gives the page's SPDX id when one was found"),
        }));
    }
    let origins: BTreeSet<&str> = ctx.recs.iter().map(|r| r.origin.as_str()).collect();
    let policies: BTreeSet<(&str, &str)> = ctx
        .recs
        .iter()
        .filter_map(|r| Some((r.policy_id.as_deref()?, r.policy_sha256.as_deref()?)))
        .collect();
    let policy_entities: Vec<serde_json::Value> = policies
        .iter()
        .map(|(id, sha)| {
            serde_json::json!({
                "@id": format!("urn:sha256:{sha}"),
                "@type": "prov:Entity",
                "prov:label": format!("consent policy {id}"),
                "sha256": sha,
            })
        })
        .collect();
    let activities: Vec<serde_json::Value> = runs
        .iter()
        .map(|r| {
            let seeds: Vec<serde_json::Value> = serde_json::from_str::<Vec<String>>(&r.seeds)
                .unwrap_or_default()
                .into_iter()
                .map(|s| serde_json::json!({"@id": s}))
                .collect();
            let mut used = seeds;
            used.extend(policy_entities.iter().cloned());
            let mut a = serde_json::json!({
                "@id": format!("urn:byline:{name}:crawl-run:{}", r.id),
                "@type": "prov:Activity",
                "prov:label": format!("byline crawl run {}", r.id),
                "prov:startedAtTime": iso(r.started_at),
                "prov:used": used,
                "prov:wasAssociatedWith": {
                    "@type": ["prov:SoftwareAgent", "SoftwareApplication"],
                    "name": "byline",
                    "softwareVersion": r.byline_version,
                    "prov:label": r.user_agent,
                },
                "description": format!("crawl config sha256 {}{}", r.config_sha256, r.policy_sha256.as_ref().map(|p| format!(", --policy sha256 {p}")).unwrap_or_default()),
            });
            if let Some(end) = r.finished_at {
                a["prov:endedAtTime"] = serde_json::json!(iso(end));
            }
            a
        })
        .collect();
    let fields: Vec<serde_json::Value> = FIELDS
        .iter()
        .map(|(k, ty, arr, desc)| {
            let mut f = serde_json::json!({
                "@type": "cr:Field",
                "@id": format!("verdicts/{k}"),
                "name": k,
                "description": desc,
                "dataType": ty,
                "source": {
                    "fileObject": {"@id": ctx.records_file},
                    "extract": {"column": k},
                },
            });
            if *arr {
                f["isArray"] = serde_json::json!(true);
            }
            f
        })
        .collect();
    let first = runs.iter().map(|r| r.started_at).min();
    let last = runs.iter().filter_map(|r| r.finished_at).max();
    let timeframe: Vec<String> = [first, last].into_iter().flatten().map(iso).collect();
    let doc = serde_json::json!({
        "@context": context(),
        "@type": "sc:Dataset",
        "@id": name,
        "name": name,
        "conformsTo": "http://mlcommons.org/croissant/1.1",
        "description": description,
        "license": license,
        "url": url::Url::from_directory_path(ctx.out.canonicalize().map_err(|e| AuditError::io("resolving", ctx.out, e))?).map(|u| u.to_string()).unwrap_or_default(),
        "creator": {
            "@type": "Organization",
            "name": "the operator of this Byline corpus",
            "description": runs.last().map(|r| format!("crawled as {}", r.user_agent)).unwrap_or_default(),
        },
        "datePublished": iso(ctx.now),
        "dateCreated": first.map(iso),
        "dateModified": last.map(iso),
        "version": format!("{}.0.0", ctx.version),
        "citeAs": format!("{name}, Byline {} export {} (merkle root {})", env!("CARGO_PKG_VERSION"), ctx.version, ctx.merkle_root),
        "keywords": ["web crawl", "consent", "TDM opt-out", "provenance", "licence"],
        "rai:dataCollection": format!(
            "Web pages fetched by the Byline crawler{} from {} origin(s), obeying robots.txt (RFC 9309) and reading each site's AI and text-and-data-mining opt-out signals (robots.txt, TDMRep, ai.txt, X-Robots-Tag and meta robots, content-usage and content-signal headers) before use; each page's use per purpose was decided by a consent policy ({}) recorded with its sha256 beside every verdict.",
            runs.last().map(|r| format!(" as {}", r.user_agent)).unwrap_or_default(),
            origins.len(),
            policies.iter().map(|(id, sha)| format!("{id} sha256 {sha}")).collect::<Vec<_>>().join(", "),
        ),
        "rai:dataCollectionType": ["Web Scraping"],
        "rai:dataCollectionRawData": "The main text extracted from each page's HTML is stored; each fetch's status, response headers and the sha256 and size of the body as received are kept (manifest, WARC metadata records).",
        "rai:dataCollectionTimeframe": timeframe,
        "rai:dataPreprocessingProtocol": ["Main-text extraction from HTML (boilerplate removed); pages whose owners opted out for the purpose, or that were forgotten on request, are left out."],
        "rai:dataUseCases": [match ctx.filters.purpose.as_deref() {
            Some(p) => format!("Use for the purpose {p:?}, as the verdicts in force allowed it at export time (conditions per row)."),
            None => "Audit of which uses each page allows (search_index, rag_attributed, train).".to_string(),
        }],
        "rai:dataLimitations": ["Consent and licence are as signalled by the sites when crawled; owners may opt out later (`byline audit recheck` revokes such uses, and later exports list them as removed)."],
        "rai:dataReleaseMaintenancePlan": "Re-export after `byline audit recheck`: each numbered export's manifest lists what was removed since the previous one.",
        "distribution": [{
            "@type": "cr:FileObject",
            "@id": ctx.records_file,
            "name": ctx.records_file,
            "description": "One JSON object per line: the records of this export (their Merkle root is in manifest.json).",
            "contentUrl": ctx.records_file,
            "contentSize": format!("{} B", ctx.records_body.len()),
            "encodingFormat": "application/jsonlines",
            "sha256": records_sha,
        }],
        "recordSet": [{
            "@type": "cr:RecordSet",
            "@id": "verdicts",
            "name": "verdicts",
            "description": "One record per URL and purpose with the verdict in force.",
            "key": [{"@id": "verdicts/url"}, {"@id": "verdicts/purpose"}],
            "field": fields,
        }],
        "prov:wasDerivedFrom": origins.iter().map(|o| serde_json::json!({"@id": o, "@type": "prov:Entity", "prov:label": format!("web site {o}")})).collect::<Vec<_>>(),
        "prov:wasGeneratedBy": activities,
    });
    let mut doc = doc;
    if let Some(d) = doc["distribution"].as_array_mut() {
        d.extend(distribution);
    }
    if let Some(r) = doc["recordSet"].as_array_mut() {
        r.extend(record_sets);
    }
    Ok(doc)
}
