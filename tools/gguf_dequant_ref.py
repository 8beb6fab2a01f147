#!/usr/bin/env python3
"""Reference dequantization outputs from the `gguf` Python package.

Pinned: gguf==0.19.0, numpy==2.4.6 (run with /work/venv/bin/python).

For each tensor type, writes into tests/data/quant/:
  <name>.blocks  raw block bytes (a few blocks)
  <name>.f32     gguf's numpy dequantization of them, little-endian f32
Blocks come from a seeded generator: gguf's own `quants.quantize` of random
data where it supports the type, else random block bytes with finite f16
scale fields. The Rust test `quant_matches_gguf_python_bit_for_bit`
compares our scalar dequantization bit for bit.
"""
import sys
from pathlib import Path

import numpy as np
from gguf import quants
from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType as T

OUT = Path(__file__).resolve().parent.parent / "tests" / "data" / "quant"
RNG = np.random.default_rng(20261128)

# Byte offsets of f16 scale fields per block (ggml-common.h layouts).
F16_FIELDS = {
    T.Q4_0: [0], T.Q5_0: [0], T.Q8_0: [0],
    T.Q4_1: [0, 2], T.Q5_1: [0, 2], T.Q4_K: [0, 2], T.Q5_K: [0, 2],
    T.Q2_K: [80, 82], T.Q3_K: [108], T.Q6_K: [208],
}


def random_blocks(qtype, n_blocks):
    _, type_size = GGML_QUANT_SIZES[qtype]
    raw = RNG.integers(0, 256, size=(n_blocks, type_size), dtype=np.uint8)
    for off in F16_FIELDS[qtype]:
        scale = (RNG.standard_normal(n_blocks) * 0.05).astype(np.float16)
        raw[:, off:off + 2] = scale.view(np.uint8).reshape(n_blocks, 2)
    return raw.reshape(-1)


def make(qtype, n_blocks):
    block_size, _ = GGML_QUANT_SIZES[qtype]
    n = block_size * n_blocks
    if qtype == T.F32:
        data = RNG.standard_normal(n).astype(np.float32).view(np.uint8)
    elif qtype == T.F16:
        data = RNG.standard_normal(n).astype(np.float16).view(np.uint8)
    elif qtype == T.BF16:
        data = quants.quantize(RNG.standard_normal((1, n)).astype(np.float32), qtype).reshape(-1)
    else:
        try:
            x = RNG.standard_normal((1, n)).astype(np.float32)
            data = quants.quantize(x, qtype).reshape(-1)
            # Add random blocks too, so every bit pattern region is touched.
            data = np.concatenate([data, random_blocks(qtype, n_blocks)])
        except NotImplementedError:
            data = random_blocks(qtype, 2 * n_blocks)
    data = np.ascontiguousarray(data, dtype=np.uint8)
    if qtype == T.F32:
        deq = data.view(np.float32)
    else:
        deq = quants.dequantize(data.reshape(1, -1), qtype).reshape(-1).astype(np.float32)
    return data, deq


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    types = [T.F32, T.F16, T.BF16, T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q8_0,
             T.Q2_K, T.Q3_K, T.Q4_K, T.Q5_K, T.Q6_K]
    for qtype in types:
        n_blocks = 4 if GGML_QUANT_SIZES[qtype][0] == 256 else (256 if GGML_QUANT_SIZES[qtype][0] == 1 else 16)
        data, deq = make(qtype, n_blocks)
        name = qtype.name.lower()
        (OUT / f"{name}.blocks").write_bytes(data.tobytes())
        (OUT / f"{name}.f32").write_bytes(deq.astype("<f4").tobytes())
        print(f"{name}: {data.size} bytes, {deq.size} values", file=sys.stderr)


if __name__ == "__main__":
    main()
