#!/usr/bin/env python3
"""Cross-check the fixture GGUFs of tools/gen_moe_fixtures.py against llama.cpp's own converter.

For each fixture: rebuild the transformers model (same seed as ref.json), save it with
save_pretrained, convert it with llama.cpp's `convert_hf_to_gguf.py` machinery (`--outtype f32`;
only the vocabulary step is replaced by the fixture's minimal byte vocabulary, because the
converter insists on a known real tokenizer), then compare with `model-f32.gguf`: metadata keys,
types and values (except general.* naming), tensor names, shapes, types and bytes.

Developer tool, never run in CI. Same venv and pins as tools/gen_moe_fixtures.py, plus a
llama.cpp source tree (the one vendored in the llama-cpp-python==0.3.36 sdist,
commit 0c1e57098bba43ac29e6e3b677cdceebdd22334f).
Usage: python tools/xcheck_moe_converter.py --llama-cpp <llama.cpp dir> --dir tests/data/moe
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
IGNORED_KEYS = {"general.name", "general.size_label", "general.basename", "general.finetune",
                "general.version", "general.file_type_name"}


def read_gguf(gguf, path: Path):
    r = gguf.GGUFReader(str(path))
    kv = {}
    for name, f in r.fields.items():
        if name.startswith("GGUF."):
            continue
        kv[name] = (f.types[0].name, f.contents())
    tensors = {t.name: (t.tensor_type.name, tuple(int(x) for x in t.shape), np.array(t.data).tobytes())
               for t in r.tensors}
    return kv, tensors


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--llama-cpp", required=True, type=Path)
    ap.add_argument("--dir", default="tests/data/moe", type=Path)
    ap.add_argument("--only", default="")
    a = ap.parse_args()

    sys.path.insert(0, str(HERE))
    sys.path.insert(0, str(a.llama_cpp))
    sys.path.insert(0, str(a.llama_cpp / "gguf-py"))
    import gguf  # the converter's own gguf-py
    import torch
    import conversion
    from conversion.base import ModelBase
    import gen_moe_fixtures as G

    def fixture_vocab(self):
        G.add_vocab(self.gguf_writer)

    ok = True
    for name in G.FIXTURES:
        if a.only and name not in a.only.split(","):
            continue
        fdir = a.dir / name
        ref = json.loads((fdir / "ref.json").read_text())
        cfg, model = G.build_model(name, ref["seed"])
        with tempfile.TemporaryDirectory() as td:
            td = Path(td)
            hf_dir = td / "hf"
            model.save_pretrained(hf_dir, safe_serialization=True)
            out = td / "conv.gguf"
            hparams = ModelBase.load_hparams(hf_dir, False)
            cls = conversion.get_model_class(hparams["architectures"][0])
            cls.set_vocab = fixture_vocab
            with torch.inference_mode():
                inst = cls(hf_dir, gguf.LlamaFileType.ALL_F32, out, eager=True)
                inst.write()
            kv_c, t_c = read_gguf(gguf, out)
            kv_m, t_m = read_gguf(gguf, fdir / "model-f32.gguf")
        problems = []
        for k in sorted(set(kv_c) | set(kv_m)):
            if k in IGNORED_KEYS:
                continue
            if k not in kv_m:
                problems.append(f"key only in converter output: {k} = {kv_c[k]}")
            elif k not in kv_c:
                problems.append(f"key only in fixture: {k} = {kv_m[k]}")
            elif kv_c[k] != kv_m[k]:
                problems.append(f"key {k}: converter {kv_c[k]} fixture {kv_m[k]}")
        for t in sorted(set(t_c) | set(t_m)):
            if t not in t_m:
                problems.append(f"tensor only in converter output: {t} {t_c[t][:2]}")
            elif t not in t_c:
                problems.append(f"tensor only in fixture: {t} {t_m[t][:2]}")
            elif t_c[t][:2] != t_m[t][:2]:
                problems.append(f"tensor {t}: converter {t_c[t][:2]} fixture {t_m[t][:2]}")
            elif t_c[t][2] != t_m[t][2]:
                problems.append(f"tensor {t}: data differs")
        status = "identical" if not problems else f"{len(problems)} difference(s)"
        print(f"{name:14s} {len(kv_m)} keys, {len(t_m)} tensors: {status}")
        for p in problems:
            print("   ", p)
        ok = ok and not problems
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
