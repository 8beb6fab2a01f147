#!/usr/bin/env python3
"""Reference dequantization of the IQ types and MXFP4, from two independent codes.

Pinned: gguf==0.19.0, numpy==2.4.6, llama-cpp-python==0.3.36 (its bundled
libggml-base.so, llama.cpp 0c1e570). Run with /work/venv/bin/python from the
repository root.

For IQ4_NL, IQ4_XS, IQ3_XXS, IQ3_S, IQ2_XXS, IQ2_XS, IQ2_S, IQ1_S, IQ1_M and
MXFP4 it writes into tests/data/quant/:
  <name>.blocks  raw block bytes: random blocks (finite f16 scales, any other
                 bits) followed by "sweep" blocks whose grid indices run
                 through every row of the type's grid
  <name>.f32     their dequantization, little-endian f32
The values are gguf's numpy dequantizers; the script asserts that they agree
bit for bit with ggml's own `dequantize_row_*` (called through ctypes), so
both references back the committed files. The Rust test `iq_dequant_matches_reference_bit_for_bit`
reads these files.
"""
import ctypes
import glob
import sys
from pathlib import Path

import numpy as np
from gguf import quants
from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType as T

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "data" / "quant"
RNG = np.random.default_rng(20261128 + 6)

LIB = sorted(glob.glob("/work/venv/lib/python3*/site-packages/llama_cpp/lib/libggml-base.so"))[0]
GGML = ctypes.CDLL(LIB)

# (block bytes offset of the f16 d, grid rows, grid indices per block)
TYPES = {
    T.IQ4_NL: (0, 0, 0),
    T.IQ4_XS: (0, 0, 0),
    T.MXFP4: (None, 0, 0),
    T.IQ3_XXS: (0, 256, 64),
    T.IQ3_S: (0, 512, 64),
    T.IQ2_XXS: (0, 256, 32),
    T.IQ2_XS: (0, 512, 32),
    T.IQ2_S: (0, 1024, 32),
    T.IQ1_S: (0, 2048, 32),
    T.IQ1_M: (None, 2048, 32),
}


def f16_bits(n):
    return (RNG.standard_normal(n) * 0.05).astype(np.float16).view(np.uint16)


def set_index(qtype, b, k, idx):
    """Writes grid index `idx` into slot k of block bytes `b` (a uint8 view)."""
    if qtype == T.IQ2_XXS:
        # u32 pairs per 32 weights: 4 index bytes then 4 bytes of scale/signs
        b[2 + 8 * (k // 4) + k % 4] = idx
    elif qtype == T.IQ2_XS:
        # u16 per 8 weights: 9 index bits, 7 sign bits
        q = int(b[2 + 2 * k]) | int(b[3 + 2 * k]) << 8
        q = (q & ~511) | idx
        b[2 + 2 * k], b[3 + 2 * k] = q & 255, q >> 8
    elif qtype == T.IQ2_S:
        # qs[32] low 8 bits, qh[8] 2 bits per index
        b[2 + k] = idx & 255
        qh = 2 + 64 + k // 4
        sh = 2 * (k % 4)
        b[qh] = (int(b[qh]) & ~(3 << sh)) | ((idx >> 8) << sh)
    elif qtype == T.IQ3_XXS:
        b[2 + k] = idx
    elif qtype == T.IQ3_S:
        # qs[64] low 8 bits, qh[8] 1 bit per index
        b[2 + k] = idx & 255
        qh = 2 + 64 + k // 8
        sh = k % 8
        b[qh] = (int(b[qh]) & ~(1 << sh)) | ((idx >> 8) << sh)
    elif qtype == T.IQ1_S:
        # qs[32] low 8 bits, u16 qh[8]: 3 bits per index at 3*(k%4)
        b[2 + k] = idx & 255
        o = 2 + 32 + 2 * (k // 4)
        q = int(b[o]) | int(b[o + 1]) << 8
        sh = 3 * (k % 4)
        q = (q & ~(7 << sh)) | ((idx >> 8) << sh)
        b[o], b[o + 1] = q & 255, q >> 8
    elif qtype == T.IQ1_M:
        # qs[32] low 8 bits, qh[16]: a nibble per index, low 3 bits used
        b[k] = idx & 255
        o = 32 + k // 2
        sh = 4 * (k % 2)
        b[o] = (int(b[o]) & ~(7 << sh)) | ((idx >> 8) << sh)
    else:
        raise ValueError(qtype)


def random_blocks(qtype, n_blocks):
    _, ts = GGML_QUANT_SIZES[qtype]
    raw = RNG.integers(0, 256, size=(n_blocks, ts), dtype=np.uint8)
    if qtype == T.MXFP4:
        # e8m0 exponents around 2^0; the first block takes the extremes.
        raw[:, 0] = RNG.integers(112, 136, size=n_blocks)
        raw[0, 0] = 0
        raw[1, 0] = 1
        raw[2, 0] = 2
        raw[3, 0] = 254
    elif qtype == T.IQ1_M:
        # the f16 d is the top nibble of each of the four u16 scale words
        d = f16_bits(n_blocks)
        sc = raw[:, 48:56].copy().view(np.uint16)
        for j in range(4):
            sc[:, j] = (sc[:, j] & 0x0FFF) | (((d >> (4 * j)) & 0xF) << 12)
        raw[:, 48:56] = sc.view(np.uint8)
    else:
        raw[:, 0:2] = f16_bits(n_blocks).view(np.uint8).reshape(n_blocks, 2)
    return raw


def sweep_blocks(qtype):
    rows, per_block = TYPES[qtype][1:]
    if rows == 0:
        return np.zeros((0, GGML_QUANT_SIZES[qtype][1]), dtype=np.uint8)
    n = rows // per_block
    raw = random_blocks(qtype, n)
    for i in range(rows):
        set_index(qtype, raw[i // per_block], i % per_block, i)
    return raw


def ggml_dequant(qtype, data):
    bs, _ = GGML_QUANT_SIZES[qtype]
    n_blocks = data.size // GGML_QUANT_SIZES[qtype][1]
    out = np.zeros(n_blocks * bs, dtype=np.float32)
    f = getattr(GGML, f"dequantize_row_{qtype.name.lower()}")
    f.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64]
    f.restype = None
    src = np.ascontiguousarray(data)
    f(src.ctypes.data, out.ctypes.data, out.size)
    return out


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    for qtype in TYPES:
        n_random = 64 if GGML_QUANT_SIZES[qtype][0] == 32 else 8
        data = np.concatenate([random_blocks(qtype, n_random), sweep_blocks(qtype)]).reshape(-1)
        data = np.ascontiguousarray(data, dtype=np.uint8)
        with np.errstate(over="ignore"):  # MXFP4 e=254 times 12 is inf in both
            ours = quants.dequantize(data.reshape(1, -1), qtype).reshape(-1).astype(np.float32)
        ref = ggml_dequant(qtype, data)
        same = ours.view(np.uint32) == ref.view(np.uint32)
        assert same.all(), f"{qtype.name}: gguf and ggml differ at {np.flatnonzero(~same)[:5]}"
        out = ours
        name = qtype.name.lower()
        (OUT / f"{name}.blocks").write_bytes(data.tobytes())
        (OUT / f"{name}.f32").write_bytes(out.astype("<f4").tobytes())
        print(f"{name}: {data.size} bytes, {out.size} values, gguf == ggml", file=sys.stderr)


if __name__ == "__main__":
    main()
