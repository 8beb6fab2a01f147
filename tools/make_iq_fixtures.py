#!/usr/bin/env python3
# Tiny random-weight llama-architecture GGUFs whose matrices are stored in the IQ types and
# MXFP4, and llama.cpp's logits for them.
#
# Pinned: Python 3.11, gguf==0.19.0, numpy==2.4.6, llama-cpp-python==0.3.36 (llama.cpp
# 0c1e570; its bundled libggml-base.so quantizes through ctypes). Run from the repository root:
#
#   /work/venv/bin/python tools/make_iq_fixtures.py
#
# Writes tests/data/tiny/iq/<type>.gguf (one layer, n_embd 256 so that the 256-wide block
# types fit every matrix; token embeddings Q8_0, norms F32) and <type>.logits.json with the
# logits of every position of a few token-id prompts, computed by llama.cpp with an F32 KV
# cache. The weights are quantized by ggml's own `ggml_quantize_chunk`, with a flat
# importance matrix (all ones) for the types that require one (IQ2_XXS, IQ2_XS, IQ1_S,
# IQ1_M). Same seed for every type, so the fixtures differ only in how the weights are stored.
import ctypes
import glob
import json
import os

import numpy as np
import gguf
import llama_cpp

OUT = "tests/data/tiny/iq"
N_EMBD, N_FF, N_LAYER, N_HEAD, N_HEAD_KV = 256, 512, 1, 4, 2
TYPES = ["IQ4_NL", "IQ4_XS", "MXFP4", "IQ3_XXS", "IQ3_S", "IQ2_XXS", "IQ2_XS", "IQ2_S", "IQ1_S", "IQ1_M"]
PROMPTS = [
    [5, 17, 200, 3, 99, 42, 42, 7, 150, 256, 11, 64],
    [260, 100, 101, 102, 103, 104, 105, 106, 107, 108],
]

LIB = ctypes.CDLL(sorted(glob.glob(os.path.join(os.path.dirname(llama_cpp.__file__), "lib", "libggml-base.so")))[0])
LIB.ggml_quantize_chunk.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64,
                                    ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p]
LIB.ggml_quantize_chunk.restype = ctypes.c_size_t


def byte_tokens():
    # GPT-2's printable mapping of the 256 byte values.
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    table = dict(zip(bs, cs))
    return [chr(table[b]) for b in range(256)]


def vocab():
    toks = byte_tokens() + ["Ġt", "he", "Ġthe", "in"]
    merges = ["Ġ t", "h e", "Ġt he", "i n"]
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    types = [1] * len(toks) + [3] * len(specials)
    return toks + specials, types, merges


def quantize(w, qtype):
    """ggml's quantization of a (rows, cols) f32 matrix into raw bytes."""
    rows, cols = w.shape
    bs, ts = gguf.GGML_QUANT_SIZES[qtype]
    dst = np.zeros(rows * (cols // bs) * ts, dtype=np.uint8)
    src = np.ascontiguousarray(w, dtype=np.float32)
    imatrix = np.ones(cols, dtype=np.float32)
    n = LIB.ggml_quantize_chunk(int(qtype), src.ctypes.data, dst.ctypes.data, 0, rows, cols, imatrix.ctypes.data)
    assert n == dst.size, (qtype, n, dst.size)
    return dst.reshape(rows, -1)


def build(qname, seed, path):
    qtype = gguf.GGMLQuantizationType[qname]
    rng = np.random.default_rng(seed)
    head_dim = N_EMBD // N_HEAD
    toks, types, merges = vocab()
    n_vocab = len(toks)

    def w(rows, cols, scale=None):
        s = scale if scale is not None else 1.0 / np.sqrt(cols)
        return (rng.standard_normal((rows, cols)) * s).astype(np.float32)

    def norm(n):
        return (1.0 + 0.1 * rng.standard_normal(n)).astype(np.float32)

    wr = gguf.GGUFWriter(path, "llama")
    wr.add_name(f"tiny-llama-{qname.lower()}-fixture")
    wr.add_context_length(256)
    wr.add_embedding_length(N_EMBD)
    wr.add_feed_forward_length(N_FF)
    wr.add_block_count(N_LAYER)
    wr.add_head_count(N_HEAD)
    wr.add_head_count_kv(N_HEAD_KV)
    wr.add_rope_dimension_count(head_dim)
    wr.add_layer_norm_rms_eps(1e-5)
    wr.add_rope_freq_base(10000.0)
    wr.add_tokenizer_model("gpt2")
    wr.add_tokenizer_pre("qwen2")
    wr.add_token_list(toks)
    wr.add_token_types(types)
    wr.add_token_merges(merges)
    wr.add_bos_token_id(n_vocab - 3)
    wr.add_eos_token_id(n_vocab - 1)
    wr.add_add_bos_token(False)

    def mat(name, m):
        q = quantize(m, qtype)
        wr.add_tensor(name, q, raw_shape=q.shape, raw_dtype=qtype)

    emb = gguf.quants.quantize(w(n_vocab, N_EMBD, 1.0), gguf.GGMLQuantizationType.Q8_0)
    wr.add_tensor("token_embd.weight", emb, raw_shape=emb.shape, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
    wr.add_tensor("output_norm.weight", norm(N_EMBD))
    for i in range(N_LAYER):
        p = f"blk.{i}."
        wr.add_tensor(p + "attn_norm.weight", norm(N_EMBD))
        mat(p + "attn_q.weight", w(N_HEAD * head_dim, N_EMBD))
        mat(p + "attn_k.weight", w(N_HEAD_KV * head_dim, N_EMBD))
        mat(p + "attn_v.weight", w(N_HEAD_KV * head_dim, N_EMBD))
        mat(p + "attn_output.weight", w(N_EMBD, N_HEAD * head_dim))
        wr.add_tensor(p + "ffn_norm.weight", norm(N_EMBD))
        mat(p + "ffn_gate.weight", w(N_FF, N_EMBD))
        mat(p + "ffn_up.weight", w(N_FF, N_EMBD))
        mat(p + "ffn_down.weight", w(N_EMBD, N_FF))
    wr.write_header_to_file()
    wr.write_kv_data_to_file()
    wr.write_tensors_to_file()
    wr.close()


def reference(path):
    llm = llama_cpp.Llama(
        model_path=path, n_ctx=128, n_batch=64, n_ubatch=64, n_threads=2, logits_all=True,
        type_k=llama_cpp.GGML_TYPE_F32, type_v=llama_cpp.GGML_TYPE_F32, verbose=False,
    )
    cases = []
    for toks in PROMPTS:
        llm.reset()
        llm.eval(toks)
        rows = [[round(float(x), 6) for x in llm.scores[i]] for i in range(len(toks))]
        cases.append({"tokens": toks, "logits": rows})
    return cases


def main():
    os.makedirs(OUT, exist_ok=True)
    for qname in TYPES:
        path = os.path.join(OUT, f"{qname.lower()}.gguf")
        build(qname, 6, path)
        data = {
            "generator": "tools/make_iq_fixtures.py",
            "llama_cpp_python": llama_cpp.__version__,
            "kv_cache_type": "f32",
            "weight_type": qname,
            "cases": reference(path),
        }
        with open(os.path.join(OUT, f"{qname.lower()}.logits.json"), "w") as f:
            json.dump(data, f)
            f.write("\n")
        print(f"wrote {path} ({os.path.getsize(path)} bytes)")


if __name__ == "__main__":
    main()
