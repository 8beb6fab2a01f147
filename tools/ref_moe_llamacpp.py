#!/usr/bin/env python3
"""Run llama.cpp (through llama-cpp-python) on the tiny MoE fixtures made by
tools/gen_moe_fixtures.py and store its logits next to the transformers ones.

For every fixture directory `<dir>/<fixture>/` holding ref.json and model-f32.gguf:
  - optionally quantize model-f32.gguf to Q8_0 / Q4_0 with llama.cpp's quantizer
    (`--quantize`), written as model-q8_0.gguf / model-q4_0.gguf;
  - load each GGUF with logits_all, evaluate every prompt+continuation in one batch, write the
    logits as `logits-llamacpp-<type>.f32` (same layout as logits-hf.f32) and a summary
    `llamacpp.json` (per type: loads?, max abs diff vs transformers, top-1 agreement, greedy
    continuation from llama.cpp's own step-by-step decoding, sha256 of each file).

Developer tool, never run in CI. Pinned versions:
    python 3.11, llama-cpp-python==0.3.36 (llama.cpp 0c1e57098bba43ac29e6e3b677cdceebdd22334f),
    gguf==0.19.0, numpy==2.4.6
Usage: /work/venv/bin/python tools/ref_moe_llamacpp.py --dir tests/data/moe [--quantize]
"""
from __future__ import annotations

import argparse
import ctypes
import hashlib
import json
import re
import sys
from pathlib import Path

import gguf
import numpy as np
import llama_cpp

GGML_TYPE_F32 = 0  # KV cache in F32 (llama.cpp's default F16 cache adds ~1e-3 noise)
QUANTS = {"q8_0": 7, "q4_0": 2}  # LLAMA_FTYPE_MOSTLY_Q8_0, LLAMA_FTYPE_MOSTLY_Q4_0


def dump_json(obj) -> str:
    """Indented JSON with lists of numbers kept on one line."""
    s = json.dumps(obj, indent=1)
    return re.sub(r"\[\s*([-0-9.e+,\s]*?)\s*\]",
                  lambda m: "[" + ", ".join(x.strip() for x in m.group(1).split(",") if x.strip()) + "]", s) + "\n"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def tensor_types(path: Path) -> dict[str, int]:
    """Count of tensors per ggml type name in a GGUF file."""
    counts: dict[str, int] = {}
    for t in gguf.GGUFReader(str(path)).tensors:
        counts[t.tensor_type.name] = counts.get(t.tensor_type.name, 0) + 1
    return dict(sorted(counts.items()))


def quantize(src: Path, dst: Path, ftype: int) -> None:
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = ftype
    params.nthread = 1
    rc = llama_cpp.llama_model_quantize(str(src).encode(), str(dst).encode(), ctypes.byref(params))
    if rc != 0:
        raise RuntimeError(f"quantize {src} -> {dst} failed with {rc}")


def eval_all(llm: "llama_cpp.Llama", tokens: list[int]) -> np.ndarray:
    llm.reset()
    llm.eval(tokens)
    return np.array(llm.scores[: len(tokens)], dtype=np.float32)


def greedy(llm: "llama_cpp.Llama", prompt: list[int], n: int) -> list[int]:
    llm.reset()
    llm.eval(prompt)
    out = []
    for _ in range(n):
        t = int(np.argmax(llm.scores[llm.n_tokens - 1]))
        out.append(t)
        llm.eval([t])
    return out


def run_one(fdir: Path, gguf_path: Path, kind: str, ref: dict, hf: np.ndarray) -> dict:
    res: dict = {"file": gguf_path.name, "sha256": sha256(gguf_path),
                 "tensor_types": tensor_types(gguf_path)}
    try:
        llm = llama_cpp.Llama(model_path=str(gguf_path), n_ctx=128, n_batch=128, n_ubatch=128,
                              n_threads=1, logits_all=True, verbose=False, seed=0,
                              type_k=GGML_TYPE_F32, type_v=GGML_TYPE_F32)
    except Exception as e:  # noqa: BLE001 - report whatever llama.cpp says
        res.update(loads=False, error=str(e))
        return res
    res["loads"] = True
    V = ref["vocab_size"]
    raw = bytearray()
    per = []
    max_diff = 0.0
    for p in ref["prompts"]:
        seq = p["prompt"] + p["continuation"]
        lg = eval_all(llm, seq)
        assert lg.shape == (len(seq), V), lg.shape
        off = p["logits_offset"]
        h = hf[off: off + len(seq) * V].reshape(len(seq), V)
        d = float(np.abs(lg - h).max())
        max_diff = max(max_diff, d)
        top1 = float((lg.argmax(-1) == h.argmax(-1)).mean())
        g = greedy(llm, p["prompt"], len(p["continuation"]))
        per.append(dict(max_abs_diff=d, top1_agreement=top1, greedy=g,
                        greedy_matches=g == p["continuation"]))
        raw += lg.astype("<f4").tobytes()
    out = fdir / f"logits-llamacpp-{kind}.f32"
    out.write_bytes(bytes(raw))
    res.update(max_abs_diff=max_diff, logits_file=out.name, logits_sha256=sha256(out), prompts=per,
               all_greedy_match=all(x["greedy_matches"] for x in per),
               min_top1_agreement=min(x["top1_agreement"] for x in per))
    del llm
    return res


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", default="tests/data/moe")
    ap.add_argument("--only", default="")
    ap.add_argument("--quantize", action="store_true", help="also make and run Q8_0 / Q4_0 files")
    a = ap.parse_args()
    root = Path(a.dir)
    for fdir in sorted(p for p in root.iterdir() if (p / "ref.json").is_file()):
        if a.only and fdir.name not in a.only.split(","):
            continue
        ref = json.loads((fdir / "ref.json").read_text())
        hf = np.fromfile(fdir / ref["logits_file"], dtype="<f4")
        summary = {"llama_cpp_python": llama_cpp.__version__, "fixture": fdir.name, "runs": {}}
        kinds = {"f32": fdir / "model-f32.gguf"}
        if a.quantize:
            for q, ft in QUANTS.items():
                dst = fdir / f"model-{q}.gguf"
                quantize(fdir / "model-f32.gguf", dst, ft)
                kinds[q] = dst
        for kind, path in kinds.items():
            r = run_one(fdir, path, kind, ref, hf)
            summary["runs"][kind] = r
            if r["loads"]:
                print(f"{fdir.name:14s} {kind:5s} loads  max|diff| {r['max_abs_diff']:.3e}  "
                      f"top1 {r['min_top1_agreement']:.3f}  greedy {'same' if r['all_greedy_match'] else 'DIFFERENT'}")
            else:
                print(f"{fdir.name:14s} {kind:5s} does NOT load: {r['error']}")
        (fdir / "llamacpp.json").write_text(dump_json(summary))


if __name__ == "__main__":
    sys.exit(main())
