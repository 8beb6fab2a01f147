#!/usr/bin/env bash
# Issue 6 benchmark: llama.cpp's llama-bench against `byline bench engine` on
# the synthetic qwen3moe files, side by side, alternating the two programs
# (llama, byline, llama, byline, ... per file) so machine noise hits both.
#
# usage: tools/bench_moe.sh [LLAMA_BIN_DIR] [MODEL_DIR]
#   LLAMA_BIN_DIR  directory holding llama-bench (or env LLAMA_BIN)
#   MODEL_DIR      directory holding the GGUF files (or env MODEL_DIR)
# env:
#   MODELS   file names in MODEL_DIR (default: qwen3moe-q4_k_m.gguf
#            qwen3moe-q8_0.gguf qwen3moe-iq4_xs.gguf; missing ones are skipped)
#   THREADS  2      PP 512      TG 128      REPS 3 (repetitions inside each run)
#   ROUNDS   2      (runs of each program per file; the table shows their mean)
#   BYLINE   byline binary (default target/release/byline; must be a release build)
#   BW_GBS   read bandwidth in GB/s for the decode ceiling (default 32:
#            /work/shared/notes/perf-anchors.md, 2 threads)
#   ACTIVE_BYTES  path of active_bytes.py (the project's shared tools), to also
#            print its per-file numbers; run with $PYTHON (needs the `gguf` package)
#   OUT      directory for the raw JSON of every run (default: a new temp dir)
#
# Making the files (once, about 45 minutes on 2 busy cores):
#   python gen_synth_moe.py --arch qwen3moe --tok-src <default model> --out F16.gguf
#   llama-quantize F16.gguf qwen3moe-q4_k_m.gguf Q4_K_M
#   llama-quantize F16.gguf qwen3moe-q8_0.gguf Q8_0
#   llama-quantize F16.gguf qwen3moe-iq4_xs.gguf IQ4_XS 2   (no imatrix needed)
# The last argument of llama-quantize is its thread count: IQ4_XS searches
# scales per block and is slow single-threaded (a pure-Python quantizer did
# not finish in a session). With llama.cpp's own llama-quantize (built next
# to llama-bench, see docs/engine.md) and 2 threads it took 19 minutes wall
# (6.8 min CPU) on 2 shared, busy cores: 917 MiB, 4.38 bits/weight; the
# mix llama.cpp picks for IQ4_XS keeps output.weight Q6_K and attn_v Q5_K,
# every other 2-D weight (experts included) IQ4_XS.
#
# Tested with llama.cpp 0c1e570 (the llama-cpp-python 0.3.36 sdist), gguf 0.19.0.
# Needs python3 (standard library only) to read the JSON.
set -euo pipefail

LLAMA_BIN=${1:-${LLAMA_BIN:-}}
MODEL_DIR=${2:-${MODEL_DIR:-}}
if [[ -z "$LLAMA_BIN" || -z "$MODEL_DIR" ]]; then
    sed -n '2,9p' "$0" >&2
    exit 2
fi
MODELS=${MODELS:-"qwen3moe-q4_k_m.gguf qwen3moe-q8_0.gguf qwen3moe-iq4_xs.gguf"}
THREADS=${THREADS:-2}
PP=${PP:-512}
TG=${TG:-128}
REPS=${REPS:-3}
ROUNDS=${ROUNDS:-2}
BW_GBS=${BW_GBS:-32}
here=$(cd "$(dirname "$0")/.." && pwd)
BYLINE=${BYLINE:-$here/target/release/byline}
OUT=${OUT:-$(mktemp -d -t bench_moe.XXXXXX)}
mkdir -p "$OUT"

[[ -x "$LLAMA_BIN/llama-bench" ]] || { echo "no llama-bench in $LLAMA_BIN" >&2; exit 2; }
[[ -x "$BYLINE" ]] || { echo "no byline binary at $BYLINE (cargo build --release)" >&2; exit 2; }

echo "# bench_moe $(date -u +%FT%TZ)  threads=$THREADS pp=$PP tg=$TG reps=$REPS rounds=$ROUNDS"
echo "# byline $BYLINE ($(cd "$here" && git rev-parse --short HEAD 2>/dev/null || echo '?'))"
echo "# llama-bench $LLAMA_BIN/llama-bench"
echo "# load before: $(uptime)"
echo "# raw JSON: $OUT"

files=()
for m in $MODELS; do
    f="$MODEL_DIR/$m"
    if [[ ! -f "$f" ]]; then
        echo "# skipping $m: not in $MODEL_DIR" >&2
        continue
    fi
    files+=("$f")
    name=$(basename "$m" .gguf)
    for r in $(seq 1 "$ROUNDS"); do
        echo "# $name round $r: llama-bench" >&2
        "$LLAMA_BIN/llama-bench" -m "$f" -t "$THREADS" -p "$PP" -n "$TG" -r "$REPS" -o json \
            > "$OUT/$name.llama.$r.json" 2> "$OUT/$name.llama.$r.err"
        echo "# $name round $r: byline" >&2
        "$BYLINE" bench engine --model "$f" --threads "$THREADS" -p "$PP" -n "$TG" -r "$REPS" \
            --json --expert-stats > "$OUT/$name.byline.$r.json" 2> "$OUT/$name.byline.$r.err"
    done
done
echo "# load after: $(uptime)"

python3 - "$OUT" "$PP" "$TG" "$ROUNDS" "$BW_GBS" "${files[@]}" <<'EOF'
import json, os, sys
out, pp, tg, rounds, bw = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
files = sys.argv[6:]
def mean(xs):
    return sum(xs) / len(xs) if xs else float("nan")
rows = []
sets = []
for f in files:
    name = os.path.basename(f)[:-len(".gguf")]
    l_pp, l_tg, b_pp, b_tg, b = [], [], [], [], None
    for r in range(1, rounds + 1):
        for t in json.load(open(f"{out}/{name}.llama.{r}.json")):
            if t["n_prompt"] == pp and t["n_gen"] == 0:
                l_pp.append(t["avg_ts"])
            elif t["n_gen"] == tg and t["n_prompt"] == 0:
                l_tg.append(t["avg_ts"])
        b = json.load(open(f"{out}/{name}.byline.{r}.json"))
        b_pp.append(b["pp_tok_s"])
        b_tg.append(b["tg_tok_s"])
        sets.append(f"{name} round {r}: byline kernels {b.get('kernel_set')}; llama.cpp "
                    + ", ".join(f"{k}={t0.get(k)}" for t0 in json.load(open(f"{out}/{name}.llama.{r}.json"))[:1]
                                for k in ("backends", "cpu_info", "n_threads")))
    act = b["weight_bytes_per_token"]
    stats = b.get("expert_stats", [])
    imb = mean([l["imbalance"] for l in stats])
    used = mean([l["experts_used"] / l["n_expert"] for l in stats])
    rows.append((name, mean(l_pp), mean(b_pp), mean(l_tg), mean(b_tg), act, b["rss_bytes"],
                 b["peak_rss_bytes"], b["file_bytes"], imb, used))
print()
print(f"| file | llama.cpp pp{pp} | byline pp{pp} | ratio | llama.cpp tg{tg} | byline tg{tg} | ratio "
      f"| active MB/token | tg ceiling at {bw:g} GB/s | byline RSS / peak / file MB | expert max/mean, share used |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for (name, lpp, bpp, ltg, btg, act, rss, peak, fb, imb, used) in rows:
    print(f"| {name} | {lpp:.1f} | {bpp:.1f} | {bpp / lpp:.2f}x | {ltg:.1f} | {btg:.1f} | {btg / ltg:.2f}x "
          f"| {act / 1e6:.1f} | {bw * 1e9 / act:.0f} | {rss / 2**20:.0f} / {peak / 2**20:.0f} / {fb / 2**20:.0f} "
          f"| {imb:.2f}, {used:.0%} |")
print()
print("kernel sets used (BYLINE_KERNELS forces byline's: scalar|avx2|avx2-vnni|avx512):")
for line in sets:
    print(" ", line)
EOF

if [[ -n "${ACTIVE_BYTES:-}" ]]; then
    echo
    "${PYTHON:-python3}" "$ACTIVE_BYTES" "${files[@]}"
fi
