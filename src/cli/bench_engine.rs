//! `byline bench engine`: prompt-processing and generation speed of a GGUF
//! model, measured the way llama.cpp's `llama-bench` does (pp: one batch of
//! `-p` tokens into an empty cache; tg: `-n` single-token steps from an empty
//! cache; fixed pseudo-random token ids; a warm-up run first; mean of `-r` runs).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context as _;
use clap::Args;

use super::Global;
use super::model::resolve_model;
use crate::engine::gguf::GgufFile;
use crate::engine::model::{Model, Outputs};
use crate::engine::{kernels, membw};

#[derive(Debug, Args)]
pub struct BenchEngineArgs {
    /// The GGUF model: a file, or a name registered with `byline model add`
    /// (default: the default model in the model directory).
    #[arg(long, env = "BYLINE_MODEL")]
    pub model: Option<PathBuf>,
    /// Worker threads (default: all cores).
    #[arg(long, short = 't')]
    pub threads: Option<usize>,
    /// Prompt tokens for the pp test (0 skips it).
    #[arg(short = 'p', default_value_t = 512)]
    pub prompt: usize,
    /// Generated tokens for the tg test (0 skips it).
    #[arg(short = 'n', default_value_t = 128)]
    pub n_gen: usize,
    /// Timed repetitions of each test.
    #[arg(short = 'r', long, default_value_t = 3)]
    pub reps: usize,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
    /// MiB of the buffer the read-bandwidth probe streams after the tg test
    /// (default: four times the last-level cache, 256..2048 MiB; 0 skips it).
    #[arg(long)]
    pub bandwidth_mib: Option<usize>,
    /// Also report, per MoE layer, how many tokens each expert received
    /// during the timed runs.
    #[arg(long)]
    pub expert_stats: bool,
}

/// Per-layer summary of expert usage counts.
#[derive(Debug, serde::Serialize)]
struct LayerUsage {
    layer: usize,
    routed: u64,
    experts_used: usize,
    n_expert: usize,
    min: u64,
    max: u64,
    /// max / mean over all experts (1.0 is perfectly balanced).
    imbalance: f64,
    /// The most used experts, (id, count), best first.
    top: Vec<(usize, u64)>,
    counts: Vec<u64>,
}

fn usage_table(total: &[Vec<u64>]) -> Vec<LayerUsage> {
    total
        .iter()
        .enumerate()
        .filter(|(_, c)| !c.is_empty())
        .map(|(layer, c)| {
            let routed: u64 = c.iter().sum();
            let mean = routed as f64 / c.len() as f64;
            let max = c.iter().copied().max().unwrap_or(0);
            let mut order: Vec<usize> = (0..c.len()).collect();
            order.sort_by(|&a, &b| c[b].cmp(&c[a]).then(a.cmp(&b)));
            LayerUsage {
                layer,
                routed,
                experts_used: c.iter().filter(|&&x| x > 0).count(),
                n_expert: c.len(),
                min: c.iter().copied().min().unwrap_or(0),
                max,
                imbalance: if mean > 0.0 { max as f64 / mean } else { 0.0 },
                top: order.iter().take(4).map(|&e| (e, c[e])).collect(),
                counts: c.clone(),
            }
        })
        .collect()
}

/// Current resident set size (VmRSS) in bytes, from /proc/self/status.
pub fn rss() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Mean and sample standard deviation.
fn stats(xs: &[f64]) -> (f64, f64) {
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    let var = if xs.len() > 1 {
        xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)
    } else {
        0.0
    };
    (mean, var.sqrt())
}

/// Peak resident set size (VmHWM) in bytes, from /proc/self/status.
pub fn peak_rss() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Pseudo-random token ids in [1, n_vocab) from a fixed seed (llama-bench uses
/// `std::rand() % n_vocab`).
fn tokens(n: usize, n_vocab: usize, seed: u64) -> Vec<u32> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            1 + (x % (n_vocab as u64 - 1)) as u32
        })
        .collect()
}

pub async fn run(args: BenchEngineArgs, _global: &Global) -> anyhow::Result<ExitCode> {
    let path = resolve_model(args.model.clone())?;
    let threads = args.threads.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    });
    anyhow::ensure!(threads >= 1, "--threads must be at least 1, got {threads}");
    anyhow::ensure!(args.reps >= 1, "-r must be at least 1, got {}", args.reps);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .context("starting the worker threads")?;
    let file =
        GgufFile::open(&path).with_context(|| format!("opening model {}", path.display()))?;
    let model = Model::load(&file).with_context(|| format!("loading model {}", path.display()))?;
    let hp = model.hp.clone();
    let n_ctx = args.prompt.max(args.n_gen) + 16;
    let mut usage: Vec<Vec<u64>> = Vec::new();
    let mut add_usage = |ctx: &crate::engine::model::Context| {
        let u = ctx.expert_usage();
        if usage.is_empty() {
            usage = u.iter().map(|c| vec![0; c.len()]).collect();
        }
        for (t, c) in usage.iter_mut().zip(u) {
            for (a, b) in t.iter_mut().zip(c) {
                *a += b;
            }
        }
    };
    let (pp, tg) = pool.install(|| -> anyhow::Result<(Vec<f64>, Vec<f64>)> {
        // Warm-up: touches every weight page and spins up the pool.
        let mut ctx = model.context(n_ctx);
        model.forward(
            &mut ctx,
            &tokens(16.min(n_ctx), hp.n_vocab, 1),
            Outputs::Last,
        )?;
        model.forward(&mut ctx, &[1], Outputs::Last)?;
        let mut pp = Vec::new();
        let mut tg = Vec::new();
        for rep in 0..args.reps {
            if args.prompt > 0 {
                let toks = tokens(args.prompt, hp.n_vocab, 100 + rep as u64);
                let mut ctx = model.context(n_ctx);
                let t0 = Instant::now();
                model.forward(&mut ctx, &toks, Outputs::Last)?;
                pp.push(args.prompt as f64 / t0.elapsed().as_secs_f64());
                add_usage(&ctx);
            }
            if args.n_gen > 0 {
                let toks = tokens(args.n_gen, hp.n_vocab, 200 + rep as u64);
                let mut ctx = model.context(n_ctx);
                let t0 = Instant::now();
                for &t in &toks {
                    model.forward(&mut ctx, &[t], Outputs::Last)?;
                }
                tg.push(args.n_gen as f64 / t0.elapsed().as_secs_f64());
                add_usage(&ctx);
            }
        }
        Ok((pp, tg))
    })?;
    let peak = peak_rss();
    // The machine's read bandwidth with the same threads, measured after the
    // timed runs (so its buffer does not evict the weights before them).
    let probe = match args.bandwidth_mib {
        _ if tg.is_empty() => 0,
        Some(m) => m.saturating_mul(1 << 20),
        None => membw::probe_bytes(),
    };
    let bw = (probe > 0).then(|| membw::read_gbps(probe, threads, 3));
    let mut types: Vec<String> = model.linears().map(|l| format!("{:?}", l.ty)).collect();
    let rss_now = rss();
    let file_bytes = std::fs::metadata(&path).map(|m| m.len()).ok();
    let weight_bytes = model.total_bytes();
    for e in model.experts() {
        types.push(format!("{:?}", e.ty));
    }
    types.sort();
    types.dedup();
    let layers = if args.expert_stats {
        usage_table(&usage)
    } else {
        Vec::new()
    };
    let kernel_set = kernels::kernel_set().to_string();
    let bytes_per_token = model.bytes_per_token();
    let (pp_mean, pp_sd) = if pp.is_empty() {
        (0.0, 0.0)
    } else {
        stats(&pp)
    };
    let (tg_mean, tg_sd) = if tg.is_empty() {
        (0.0, 0.0)
    } else {
        stats(&tg)
    };
    let roof = bw.and_then(|b| membw::roofline(tg_mean, bytes_per_token, b.gbps));
    if args.json {
        let v = serde_json::json!({
            "model": path.display().to_string(),
            "arch": hp.arch.name(),
            "weight_types": types,
            "threads": threads,
            "kernel_set": kernel_set,
            "pp_tokens": args.prompt,
            "tg_tokens": args.n_gen,
            "reps": args.reps,
            "pp_tok_s": pp_mean,
            "pp_tok_s_sd": pp_sd,
            "tg_tok_s": tg_mean,
            "tg_tok_s_sd": tg_sd,
            "peak_rss_bytes": peak,
            "weight_bytes_per_token": bytes_per_token,
            "gbps": roof.map(|r| r.gbps),
            "stream_gbps": bw.map(|b| b.gbps),
            "stream_bytes": bw.map(|b| b.bytes),
            "ceiling_tok_s": roof.map(|r| r.ceiling_tok_s),
            "pct_of_ceiling": roof.map(|r| r.pct_of_ceiling),
            "rss_bytes": rss_now,
            "file_bytes": file_bytes,
            "weight_bytes": weight_bytes,
            "n_expert": hp.n_expert,
            "n_expert_used": hp.n_expert_used,
        });
        let mut v = v;
        if args.expert_stats {
            v["expert_stats"] = serde_json::to_value(&layers)?;
        }
        outln!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        outln!(
            "model      {} ({}, weights {})",
            path.display(),
            hp.arch,
            types.join("/")
        );
        outln!("threads    {threads}");
        outln!("kernels    {kernel_set}");
        if !pp.is_empty() {
            outln!(
                "pp{:<6}   {:8.1} ± {:.1} tok/s",
                args.prompt,
                pp_mean,
                pp_sd
            );
        }
        if !tg.is_empty() {
            outln!("tg{:<6}   {:8.1} ± {:.1} tok/s", args.n_gen, tg_mean, tg_sd);
        }
        if let Some(p) = peak {
            outln!("peak RSS   {:.1} MiB (VmHWM)", p as f64 / (1 << 20) as f64);
        }
        outln!(
            "weights    {:.1} MiB read per generated token",
            bytes_per_token as f64 / (1 << 20) as f64
        );
        if let (Some(b), Some(r)) = (bw, roof) {
            outln!(
                "decode     {:.1} GB/s of weights; stream {:.1} GB/s ({} MiB, {} threads): ceiling {:.1} tok/s, {:.0}% of it",
                r.gbps,
                b.gbps,
                b.bytes >> 20,
                b.threads,
                r.ceiling_tok_s,
                r.pct_of_ceiling
            );
        }
        let mib = |b: u64| b as f64 / (1 << 20) as f64;
        if let (Some(r), Some(f)) = (rss_now, file_bytes) {
            outln!(
                "memory     {:.1} MiB resident now, file {:.1} MiB ({:.0}%), weights {:.1} MiB",
                mib(r),
                mib(f),
                100.0 * r as f64 / f as f64,
                mib(weight_bytes as u64)
            );
        }
        if hp.n_expert > 0 {
            outln!(
                "experts    {} per layer, {} used per token",
                hp.n_expert,
                hp.n_expert_used
            );
        }
        if args.expert_stats {
            if layers.is_empty() {
                outln!("expert stats: no MoE layers");
            } else {
                outln!("layer  routed  used/all  min    max    max/mean  top experts (id:count)");
                for l in &layers {
                    let top: Vec<String> = l.top.iter().map(|(e, c)| format!("{e}:{c}")).collect();
                    outln!(
                        "{:<5}  {:<6}  {:>3}/{:<4}  {:<5}  {:<5}  {:<8.2}  {}",
                        l.layer,
                        l.routed,
                        l.experts_used,
                        l.n_expert,
                        l.min,
                        l.max,
                        l.imbalance,
                        top.join(" ")
                    );
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
