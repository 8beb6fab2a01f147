//! The engine's command-line surface: `byline model info`, `byline model fetch`
//! (present-and-verified path only: no network in tests), `byline bench engine`
//! and `byline generate` on real files.

use std::process::Command;

use crate::support::model::{data, default_model};
use crate::support::{byline_bin, tempdir};

fn run(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(byline_bin())
        .args(args)
        .env_remove("BYLINE_MODEL")
        .output()
        .expect("byline runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn model_info_reports_architecture_shape_and_quant_mix() {
    let model = default_model();
    let (ok, out, err) = run(&["model", "info", "--model", model.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert!(out.contains("architecture  llama"), "{out}");
    assert!(out.contains("licence       apache-2.0"), "{out}");
    assert!(
        out.contains("30 layers, width 576, 9 heads / 3 kv heads of 64, ffn 1536, vocab 49152"),
        "{out}"
    );
    assert!(out.contains("lm head       tied to token_embd"), "{out}");
    // 210 Q4_1 matrices, 61 F32 norms, the Q8_0 embedding.
    assert!(
        out.lines()
            .any(|l| l.contains("Q4_1") && l.contains(" 210 tensors")),
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.contains("Q8_0") && l.contains("   1 tensors")),
        "{out}"
    );

    let fixture = data("tiny/qwen3.gguf");
    let (ok, out, err) = run(&["model", "info", "--model", fixture.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert!(out.contains("architecture  qwen3"), "{out}");
    assert!(out.contains("4 heads / 2 kv heads of 32"), "{out}");
    assert!(out.contains("Neox"), "{out}");
}

#[test]
fn model_info_on_a_missing_file_says_how_to_fix_it() {
    let dir = tempdir();
    let missing = dir.path().join("nope.gguf");
    let (ok, _, err) = run(&["model", "info", "--model", missing.to_str().unwrap()]);
    assert!(!ok);
    assert!(err.contains("not found"), "{err}");
    assert!(err.contains("byline model fetch"), "{err}");
}

#[test]
fn model_fetch_accepts_a_present_verified_model_without_downloading() {
    let dir = tempdir();
    std::os::unix::fs::symlink(
        default_model(),
        dir.path().join("SmolLM2-135M-Instruct.Q4_1.gguf"),
    )
    .expect("symlink");
    let (ok, out, err) = run(&["model", "fetch", "--dir", dir.path().to_str().unwrap()]);
    assert!(ok, "{err}");
    assert!(out.starts_with("default model present"), "{out}");
}

#[test]
fn bench_engine_prints_json_with_the_agreed_keys() {
    let fixture = data("tiny/qwen2.gguf");
    let (ok, out, err) = run(&[
        "bench",
        "engine",
        "--model",
        fixture.to_str().unwrap(),
        "--threads",
        "2",
        "-p",
        "32",
        "-n",
        "8",
        "-r",
        "1",
        "--bandwidth-mib",
        "16",
        "--json",
    ]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert!(v["pp_tok_s"].as_f64().expect("pp_tok_s") > 0.0);
    assert!(v["tg_tok_s"].as_f64().expect("tg_tok_s") > 0.0);
    assert!(v["peak_rss_bytes"].as_u64().expect("peak") > 0);
    assert!(!v["kernel_set"].as_str().expect("kernel_set").is_empty());
    assert_eq!(v["threads"], 2);
    assert_eq!(v["arch"], "qwen2");
}

/// `bench engine` measures the machine's read bandwidth and reports decode
/// against it: weight GB/s, the ceiling in tokens per second and the share
/// of it reached, consistent with the tg rate and bytes per token.
#[test]
fn bench_engine_reports_decode_against_the_bandwidth_ceiling() {
    let fixture = data("tiny/qwen2.gguf");
    let args = [
        "bench",
        "engine",
        "--model",
        fixture.to_str().unwrap(),
        "--threads",
        "2",
        "-p",
        "0",
        "-n",
        "8",
        "-r",
        "1",
        "--bandwidth-mib",
        "8",
    ];
    let mut json = args.to_vec();
    json.push("--json");
    let (ok, out, err) = run(&json);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    let f = |k: &str| v[k].as_f64().unwrap_or_else(|| panic!("{k} in {v}"));
    let (tg, bytes) = (f("tg_tok_s"), f("weight_bytes_per_token"));
    let (gbps, stream, ceiling, pct) = (
        f("gbps"),
        f("stream_gbps"),
        f("ceiling_tok_s"),
        f("pct_of_ceiling"),
    );
    assert!(tg > 0.0 && bytes > 0.0 && stream > 0.0, "{v}");
    assert_eq!(v["stream_bytes"], 8 << 20);
    let close = |a: f64, b: f64| (a - b).abs() <= 1e-9 * b.abs().max(1.0);
    assert!(close(gbps, tg * bytes / 1e9), "{v}");
    assert!(close(ceiling, stream * 1e9 / bytes), "{v}");
    assert!(close(pct, 100.0 * tg / ceiling), "{v}");
    let (ok, out, err) = run(&args);
    assert!(ok, "{err}");
    assert!(out.contains("GB/s of weights; stream"), "{out}");
    assert!(out.contains("% of it"), "{out}");
    // No tg test, no probe: the fields are null.
    let mut no_tg = json.clone();
    no_tg[9] = "0";
    no_tg[7] = "8";
    let (ok, out, err) = run(&no_tg);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert!(v["stream_gbps"].is_null() && v["gbps"].is_null(), "{v}");
}

/// `BYLINE_KERNELS` chooses the kernel set `bench engine` reports.
#[test]
fn byline_kernels_forces_the_kernel_set() {
    let fixture = data("tiny/qwen2.gguf");
    let model = fixture.to_str().unwrap();
    let set = |want: &str| {
        let out = Command::new(byline_bin())
            .args(["bench", "engine", "--model", model, "-p", "0", "-n", "2"])
            .args(["-r", "1", "--bandwidth-mib", "0", "--json"])
            .env_remove("BYLINE_MODEL")
            .env("BYLINE_KERNELS", want)
            .output()
            .expect("byline runs");
        assert!(out.status.success(), "{want}");
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
        v["kernel_set"].as_str().expect("kernel_set").to_string()
    };
    assert_eq!(set("scalar"), "scalar");
    let best = set("");
    assert_eq!(set("no-such-set"), best);
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") {
            assert_eq!(set("avx2"), "avx2-fma");
        }
        if std::arch::is_x86_feature_detected!("avxvnni")
            && std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("fma")
            && std::arch::is_x86_feature_detected!("f16c")
        {
            assert_eq!(set("avxvnni"), "avx2-vnni");
            assert_eq!(set("avx2-vnni"), "avx2-vnni");
        }
        if std::arch::is_x86_feature_detected!("avx512vnni")
            && std::arch::is_x86_feature_detected!("avx512bw")
            && std::arch::is_x86_feature_detected!("avx512vl")
        {
            assert_eq!(set("avx512"), "avx512-vnni");
            assert_eq!(best, "avx512-vnni");
        }
    }
}

/// `byline bench engine` runs a deepseek2 file (MLA + shared-expert MoE)
/// through the same loader as every command, with per-layer expert usage.
#[test]
fn bench_engine_runs_deepseek2_with_expert_stats() {
    let fixture = data("moe/deepseek2-v3/model-q8_0.gguf");
    let (ok, out, err) = run(&[
        "bench",
        "engine",
        "--model",
        fixture.to_str().unwrap(),
        "--threads",
        "2",
        "-p",
        "8",
        "-n",
        "4",
        "-r",
        "1",
        "--bandwidth-mib",
        "16",
        "--json",
        "--expert-stats",
    ]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(v["arch"], "deepseek2");
    assert!(v["pp_tok_s"].as_f64().expect("pp_tok_s") > 0.0);
    assert!(v["tg_tok_s"].as_f64().expect("tg_tok_s") > 0.0);
    let k = v["n_expert_used"].as_u64().expect("n_expert_used");
    let n_expert = v["n_expert"].as_u64().expect("n_expert");
    assert!(k >= 1 && k < n_expert, "{k} of {n_expert}");
    let file_bytes = v["file_bytes"].as_u64().expect("file_bytes");
    let weight_bytes = v["weight_bytes"].as_u64().expect("weight_bytes");
    assert!(
        weight_bytes > 0 && weight_bytes <= file_bytes,
        "{weight_bytes} of {file_bytes}"
    );
    assert!(v["weight_bytes_per_token"].as_u64().expect("per token") < weight_bytes);
    let layers = v["expert_stats"].as_array().expect("expert_stats");
    assert!(!layers.is_empty(), "{out}");
    // One prompt of 8 and 4 decoded tokens (one rep), k experts each.
    for l in layers {
        let counts: Vec<u64> = l["counts"]
            .as_array()
            .expect("counts")
            .iter()
            .map(|c| c.as_u64().expect("count"))
            .collect();
        assert_eq!(counts.len() as u64, n_expert, "{l}");
        assert_eq!(counts.iter().sum::<u64>(), k * 12, "{l}");
        assert_eq!(l["routed"].as_u64(), Some(k * 12), "{l}");
    }
}
