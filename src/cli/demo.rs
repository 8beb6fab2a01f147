//! `byline demo`: serves the bundled sample site on 127.0.0.1, crawls it into
//! the corpus under the default policy and prints what happened. The
//! quick-start main job.

use std::net::SocketAddr;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use url::Url;

use super::Global;
use super::crawl::{crawl_with_progress, print_summary};
use crate::crawl::CrawlConfig;
use crate::serve::sample_site::serve_sample_site;
use crate::store::Store;

/// The port `byline demo` serves the sample site on by default, so a
/// second run reuses the first run's origin and its URLs stay valid.
pub const DEMO_PORT: u16 = 8737;

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Port for the sample site on 127.0.0.1 (0 picks a free one). Default:
    /// the port of the corpus's last demo, else 8737; if that port is busy,
    /// a free one (the old origin's pages then stop being retrieved).
    #[arg(long)]
    pub port: Option<u16>,
}

pub async fn run(args: DemoArgs, global: &Global) -> anyhow::Result<ExitCode> {
    let store = Store::open(&global.db)
        .await
        .with_context(|| format!("opening corpus at {}", crate::store::display_db(&global.db)))?;
    let last_port = store
        .demo_origin()
        .await?
        .and_then(|o| Url::parse(&o).ok())
        .and_then(|u| u.port());
    let want = args.port.or(last_port).unwrap_or(DEMO_PORT);
    let at = |port: u16| SocketAddr::from(([127, 0, 0, 1], port));
    let (addr, server) = match serve_sample_site(at(want)).await {
        Ok(x) => x,
        // The default port is busy: any free one (an explicit port is not
        // second-guessed).
        Err(e) if args.port.is_none() => {
            tracing::info!(port = want, error = %e, "demo port busy; picking a free one");
            serve_sample_site(at(0))
                .await
                .context("starting the sample site on 127.0.0.1")?
        }
        Err(e) => {
            return Err(e).with_context(|| format!("starting the sample site on {}", at(want)));
        }
    };
    let seed = Url::parse(&format!("http://{addr}/")).expect("a loopback URL parses");
    outln!("sample site served at {seed}");
    let origin = seed.as_str().trim_end_matches('/').to_string();
    if let Some(old) = crate::index::demo_served_at(&store, &origin).await? {
        outln!("the previous demo origin {old} is gone: its pages are no longer retrieved");
    }
    let summary =
        crawl_with_progress(store.clone(), CrawlConfig::new(vec![seed]), global.verbose).await?;
    print_summary(&summary, &global.db);
    let counts = store.verdict_counts().await?;
    if !counts.is_empty() {
        outln!("verdicts (newest per page and purpose, default policy eu-opt-out):");
        for (purpose, decision, n) in counts {
            outln!("  {purpose:<15} {decision:<24} {n}");
        }
    }
    super::crawl::refresh_index(&store).await?;
    dataset_sample(&store, &global.db, &origin).await?;
    answer_samples(&store, global).await?;
    store.close().await;
    server.abort();
    Ok(ExitCode::SUCCESS)
}

/// Exports the pages of this demo's origin allowed for training as a Parquet
/// dataset beside the corpus (`<corpus>-dataset/`, replaced on every demo)
/// and loads one row back from it.
async fn dataset_sample(store: &Store, db: &std::path::Path, origin: &str) -> anyhow::Result<()> {
    let stem = db
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "byline".into());
    let out = db.with_file_name(format!("{stem}-dataset"));
    let opts = crate::audit::ExportOptions {
        format: crate::audit::ExportFormat::Parquet,
        filters: crate::audit::Filters {
            origin: Some(origin.to_string()),
            ..Default::default()
        },
        force: true,
        shard_size: crate::audit::ShardSize::default(),
    };
    let rep = crate::audit::export(store, &opts, &out).await?;
    let m: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out.join("manifest.json"))
            .with_context(|| format!("reading {}", out.join("manifest.json").display()))?,
    )?;
    let rows = m["dataset"]["rows"].as_u64().unwrap_or(0);
    outln!();
    outln!(
        "dataset written to {} (export {}): {rows} pages allowed for train, Parquet shards under data/, dataset card README.md, croissant.json",
        out.display(),
        rep.version
    );
    let first = m["dataset"]["shards"]
        .as_array()
        .and_then(|a| a.first())
        .and_then(|v| v.as_str())
        .map(|s| out.join(s));
    if let Some(shard) = first
        && let Some(row) = crate::audit::dataset::first_parquet_row(&shard)?
    {
        let preview: String = row.text.chars().take(70).collect();
        outln!(
            "loaded back from {}: {} ({}, licence {}): \"{}…\"",
            shard.display(),
            row.url,
            row.title.as_deref().unwrap_or("untitled"),
            row.licence.as_deref().unwrap_or("none stated"),
            preview.replace(['\n', '\r'], " ")
        );
    }
    Ok(())
}

/// The demo's two questions: one answered from an allowed page, one whose
/// only answer is on a page excluded for `rag_attributed` (so: a refusal or
/// other pages, never that page).
pub const DEMO_QUESTIONS: [&str; 2] = [
    "Who built the Old Fulling Mill?",
    "How many lace bobbins are in the Marlowe collection?",
];

async fn answer_samples(store: &Store, _global: &Global) -> anyhow::Result<()> {
    let path = match std::env::var_os("BYLINE_MODEL") {
        Some(p) => std::path::PathBuf::from(p),
        None => {
            let dir = super::model::model_dir();
            let p = dir.join(super::model::DEFAULT_MODEL);
            if !p.is_file() {
                outln!("default model missing: fetching it into {}", dir.display());
                super::model::fetch(&dir)?;
            }
            p
        }
    };
    let (path, file) = super::ask::open_model(Some(path))?;
    let sha = crate::answer::model_sha256(store, &path).await?;
    let generator = crate::answer::Generator::new(&file, &path, sha)?;
    let opts = super::ask::ask_options(store, None, 64, 2).await?;
    for q in DEMO_QUESTIONS {
        outln!();
        outln!("question: {q}");
        let a = crate::answer::ask(store, &generator, q, &opts, &mut |_| {
            std::ops::ControlFlow::Continue(())
        })
        .await?;
        super::ask::print_answer(&a);
    }
    Ok(())
}
