#!/usr/bin/env python3
# Tiny random-weight GGUF fixtures for the qwen2 and qwen3 forward passes, and llama.cpp's
# logits for them.
#
# Pinned: Python 3.11, gguf==0.19.0, numpy==2.4.6, llama-cpp-python==0.3.36 (llama.cpp 0c1e570).
# Run from the repository root:
#
#   /work/venv/bin/python tools/make_tiny_fixtures.py
#
# Writes tests/data/tiny/{qwen2,qwen3}.gguf (F32 weights, a few hundred KB each, fixed seeds)
# and tests/data/tiny/{qwen2,qwen3}.logits.json: for a few token-id prompts, the logits of
# every position (the vocabulary is 263 entries, so the full rows are stored). llama.cpp runs
# with an F32 KV cache here so the only difference left to the engine is summation order.
#
# The shapes exercise what the real models do differently from llama: qwen2 has q/k/v biases,
# NeoX RoPE and an untied output matrix; qwen3 has per-head q/k RMSNorm, NeoX RoPE, a head
# width (key_length 32) that is not n_embd / n_head, and tied embeddings.
import json
import os

import numpy as np
import gguf
import llama_cpp

OUT = "tests/data/tiny"
N_EMBD, N_FF, N_LAYER, N_HEAD, N_HEAD_KV = 64, 96, 2, 4, 2
PROMPTS = [
    [5, 17, 200, 3, 99, 42, 42, 7, 150, 256, 11, 64],
    [1],
    [260, 100, 101, 102, 103, 104, 105, 106, 107, 108, 109, 110, 111, 112, 113, 114, 115, 116, 117, 118, 119, 120, 121, 122, 123, 124, 125, 126, 127, 128, 129, 130, 131],
]


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


def build(arch, seed, path):
    rng = np.random.default_rng(seed)
    head_dim = 32 if arch == "qwen3" else N_EMBD // N_HEAD
    toks, types, merges = vocab()
    n_vocab = len(toks)

    def w(rows, cols, scale=None):
        s = scale if scale is not None else 1.0 / np.sqrt(cols)
        return (rng.standard_normal((rows, cols)) * s).astype(np.float32)

    def norm(n):
        return (1.0 + 0.1 * rng.standard_normal(n)).astype(np.float32)

    wr = gguf.GGUFWriter(path, arch)
    wr.add_name(f"tiny-{arch}-fixture")
    wr.add_context_length(256)
    wr.add_embedding_length(N_EMBD)
    wr.add_feed_forward_length(N_FF)
    wr.add_block_count(N_LAYER)
    wr.add_head_count(N_HEAD)
    wr.add_head_count_kv(N_HEAD_KV)
    wr.add_layer_norm_rms_eps(1e-6)
    wr.add_rope_freq_base(10000.0)
    if arch == "qwen3":
        wr.add_key_length(head_dim)
        wr.add_value_length(head_dim)
    wr.add_file_type(gguf.LlamaFileType.ALL_F32)
    wr.add_tokenizer_model("gpt2")
    wr.add_tokenizer_pre("qwen2")
    wr.add_token_list(toks)
    wr.add_token_types(types)
    wr.add_token_merges(merges)
    wr.add_bos_token_id(n_vocab - 3)
    wr.add_eos_token_id(n_vocab - 1)
    wr.add_add_bos_token(False)

    wr.add_tensor("token_embd.weight", w(n_vocab, N_EMBD, 1.0))
    wr.add_tensor("output_norm.weight", norm(N_EMBD))
    if arch == "qwen2":
        wr.add_tensor("output.weight", w(n_vocab, N_EMBD))
    for i in range(N_LAYER):
        p = f"blk.{i}."
        wr.add_tensor(p + "attn_norm.weight", norm(N_EMBD))
        wr.add_tensor(p + "attn_q.weight", w(N_HEAD * head_dim, N_EMBD))
        wr.add_tensor(p + "attn_k.weight", w(N_HEAD_KV * head_dim, N_EMBD))
        wr.add_tensor(p + "attn_v.weight", w(N_HEAD_KV * head_dim, N_EMBD))
        if arch == "qwen2":
            wr.add_tensor(p + "attn_q.bias", (0.2 * rng.standard_normal(N_HEAD * head_dim)).astype(np.float32))
            wr.add_tensor(p + "attn_k.bias", (0.2 * rng.standard_normal(N_HEAD_KV * head_dim)).astype(np.float32))
            wr.add_tensor(p + "attn_v.bias", (0.2 * rng.standard_normal(N_HEAD_KV * head_dim)).astype(np.float32))
        if arch == "qwen3":
            wr.add_tensor(p + "attn_q_norm.weight", norm(head_dim))
            wr.add_tensor(p + "attn_k_norm.weight", norm(head_dim))
        wr.add_tensor(p + "attn_output.weight", w(N_EMBD, N_HEAD * head_dim))
        wr.add_tensor(p + "ffn_norm.weight", norm(N_EMBD))
        wr.add_tensor(p + "ffn_gate.weight", w(N_FF, N_EMBD))
        wr.add_tensor(p + "ffn_up.weight", w(N_FF, N_EMBD))
        wr.add_tensor(p + "ffn_down.weight", w(N_EMBD, N_FF))
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
        rows = [[float(x) for x in llm.scores[i]] for i in range(len(toks))]
        cases.append({"tokens": toks, "logits": rows})
    return cases


def main():
    os.makedirs(OUT, exist_ok=True)
    for arch, seed in [("qwen2", 2), ("qwen3", 3)]:
        path = os.path.join(OUT, f"{arch}.gguf")
        build(arch, seed, path)
        data = {
            "generator": "tools/make_tiny_fixtures.py",
            "llama_cpp_python": llama_cpp.__version__,
            "kv_cache_type": "f32",
            "model_file": os.path.basename(path),
            "cases": reference(path),
        }
        with open(os.path.join(OUT, f"{arch}.logits.json"), "w") as f:
            json.dump(data, f)
            f.write("\n")
        print(f"wrote {path} ({os.path.getsize(path)} bytes)")


if __name__ == "__main__":
    main()
