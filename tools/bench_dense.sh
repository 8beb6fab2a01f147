#!/usr/bin/env bash
# Alternating side-by-side runs: llama-bench vs byline bench engine, 2 threads.
# usage: T=2 tools/bench_dense.sh QUANT [ROUNDS]
#   QUANT: Q4_1 (the default model) or a requantized copy next to it (Q4_0, Q8_0, Q4_K_M,
#   made by `tools/ref_logits.py --quantize` through llama.cpp's quantizer).
# env: T threads (required), MODEL_DIR (default ~/.cache/byline/models), LLAMA_BENCH (path of
#   llama-bench), BY (byline binary, default target/release/byline), BYLINE_KERNELS (byline's
#   kernel set: scalar|avx2|avx2-vnni|avx512; every line names the set each program used).
set -u
q=$1; rounds=${2:-3}
m=${MODEL_DIR:-$HOME/.cache/byline/models}/SmolLM2-135M-Instruct.$q.gguf
LB=${LLAMA_BENCH:-llama-bench}
BY=${BY:-target/release/byline}
for r in $(seq 1 $rounds); do
  $LB -m $m -t $T -p 512 -n 128 -r 3 -o json 2>/dev/null | python3 -c "
import json,sys
for t in json.load(sys.stdin):
    k='pp' if t['n_prompt'] else 'tg'
    print('llama.cpp $q round $r', k, round(t['avg_ts'],1), '+-', round(t['stddev_ts'],1), 'backends', t.get('backends'), 'cpu', t.get('cpu_info'))"
  $BY bench engine --model $m --threads $T -p 512 -n 128 -r 3 --json | python3 -c "
import json,sys
v=json.load(sys.stdin)
print('byline    $q round $r pp', round(v['pp_tok_s'],1), '+-', round(v['pp_tok_s_sd'],1), 'kernels', v['kernel_set'])
print('byline    $q round $r tg', round(v['tg_tok_s'],1), '+-', round(v['tg_tok_s_sd'],1), 'peak', v['peak_rss_bytes']//2**20, 'MiB', 'kernels', v['kernel_set'], 'weights', round(v['gbps'] or 0,1), 'GB/s of stream', round(v['stream_gbps'] or 0,1), '=', round(v['pct_of_ceiling'] or 0), '% of ceiling')"
  uptime
done
