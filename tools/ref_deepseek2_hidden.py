#!/usr/bin/env python3
"""Hidden states after the leading dense blocks of the deepseek2 MoE fixtures (transformers).

Rebuilds each deepseek2 fixture's transformers model from the seed recorded in its ref.json
(with tools/gen_moe_fixtures.py's own build_model, so the weights are the ones in
model-f32.gguf), runs every prompt + continuation in one batch and writes the residual stream
after block 0 and after the last leading dense block (`leading_dense_block_count - 1`): these
blocks are MLA attention + dense FFN only, so they check the engine's MLA without any MoE code.

Output in tests/data/moe/<fixture>/: hidden-hf-dense.f32 (raw little-endian float32): for each
prompt in ref.json order, for each layer in `layers`, n_positions rows of n_embd;
hidden-hf-dense.json: {"layers": [...], "n_embd": .., "offsets": [per prompt, in floats]}.
hidden-hf-dense-dequant-<q>.f32 (same layout): the same with the weights of model-<q>.gguf
dequantized by the gguf package (as gen_moe_fixtures.py --dequant-refs does for the logits).

Developer tool, never run in CI. Pinned versions as tools/gen_moe_fixtures.py:
    python 3.11, torch==2.15.0, transformers==5.24.0, gguf==0.19.0, numpy==2.4.6
Usage: /work/venv-moe/bin/python tools/ref_deepseek2_hidden.py --dir tests/data/moe
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import gen_moe_fixtures as G  # noqa: E402


def hidden(model, ref, layers):
    out, offsets, pos = [], [], 0
    with torch.no_grad():
        for p in ref["prompts"]:
            seq = p["prompt"] + p["continuation"]
            hs = model(torch.tensor([seq]), output_hidden_states=True).hidden_states
            offsets.append(pos)
            for il in layers:
                h = hs[il + 1][0].float().numpy()
                out.append(h.reshape(-1))
                pos += h.size
    return np.concatenate(out).astype("<f4"), offsets


def load_dequantized(name, cfg, model, gpath):
    from gguf.quants import dequantize
    import gguf
    ids = G._IdModel(model)
    index = {g: a.astype(np.int64) for g, a in G.gguf_tensors(name, cfg, ids)}
    flat = np.full(ids.n, np.nan, dtype=np.float32)
    for t in gguf.GGUFReader(str(gpath)).tensors:
        vals = dequantize(np.array(t.data), t.tensor_type).astype(np.float32)
        flat[index[t.name].ravel()] = vals.ravel()
    sd = {k: torch.from_numpy(flat[off: off + int(np.prod(shape))].reshape(shape).copy())
          for k, (off, shape) in ids.layout.items()}
    assert not [k for k, v in sd.items() if torch.isnan(v).any()]
    model.load_state_dict(sd)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", default="tests/data/moe")
    a = ap.parse_args()
    for name in ("deepseek2", "deepseek2-lite", "deepseek2-v3"):
        d = Path(a.dir) / name
        ref = json.loads((d / "ref.json").read_text())
        cfg, model = G.build_model(name, ref["seed"])
        n_dense = cfg.first_k_dense_replace
        layers = sorted({0, n_dense - 1})
        flat, offsets = hidden(model, ref, layers)
        flat.tofile(d / "hidden-hf-dense.f32")
        pos = flat.size
        for q in ("q8_0", "q4_0"):
            load_dequantized(name, cfg, model, d / f"model-{q}.gguf")
            hidden(model, ref, layers)[0].tofile(d / f"hidden-hf-dense-dequant-{q}.f32")
        (d / "hidden-hf-dense.json").write_text(json.dumps(
            {"layers": layers, "n_embd": cfg.hidden_size, "offsets": offsets}, indent=1) + "\n")
        print(name, "layers", layers, "floats", pos)


if __name__ == "__main__":
    main()
