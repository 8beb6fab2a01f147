#!/usr/bin/env python3
"""Legacy-layout copy of the deepseek2 MoE fixture: the unsplit `attn_kv_b` instead of
`attn_k_b` / `attn_v_b`, as llama.cpp's converter wrote deepseek2 files before the MLA split
(key_length / value_length = decompressed head widths, head_count_kv = head_count, no *_mla
keys).

attn_kv_b rows, per head: the nope key rows (attn_k_b[h] transposed) then the value rows
(attn_v_b[h]). Every other tensor and key is copied unchanged, so the engine must produce the
same logits from both files. Checked: llama.cpp (llama-cpp-python 0.3.36) loads the copy and its
logits agree with logits-hf.f32 to 2e-3 on every prompt (its non-MLA path keeps an F16 KV cache).

Developer tool, never run in CI. Pinned: python 3.11, gguf==0.19.0, numpy==2.4.6.
Usage: /work/venv/bin/python tools/make_deepseek2_kvb.py tests/data/moe/deepseek2/model-f32.gguf \
           tests/data/moe/deepseek2/model-f32-kvb.gguf
"""
import sys

import gguf
import numpy as np


def main() -> None:
    src, dst = sys.argv[1], sys.argv[2]
    r = gguf.GGUFReader(src)
    arch = r.fields["general.architecture"].contents()
    get = lambda k: r.fields[f"{arch}.{k}"].contents()
    n_head, kv_lora = get("attention.head_count"), get("attention.kv_lora_rank")
    k_mla, v_mla, n_rot = get("attention.key_length_mla"), get("attention.value_length_mla"), get("rope.dimension_count")
    nope = k_mla - n_rot
    w = gguf.GGUFWriter(dst, arch)
    skip = {"general.architecture", "GGUF.version", "GGUF.tensor_count", "GGUF.kv_count",
            f"{arch}.attention.key_length_mla", f"{arch}.attention.value_length_mla"}
    for k, f in r.fields.items():
        if k in skip:
            continue
        val = f.contents()
        if k == f"{arch}.attention.key_length":
            val = k_mla
        elif k == f"{arch}.attention.value_length":
            val = v_mla
        elif k == f"{arch}.attention.head_count_kv":
            val = n_head  # multi-head after decompression
        vtype = f.types[0]
        if vtype == gguf.GGUFValueType.ARRAY:
            w.add_key_value(k, val, vtype, sub_type=f.types[-1])
        else:
            w.add_key_value(k, val, vtype)
    tensors = {t.name: t for t in r.tensors}
    for t in r.tensors:
        name = t.name
        if name.endswith("attn_v_b.weight"):
            continue
        data = np.array(t.data)
        if name.endswith("attn_k_b.weight"):
            assert t.tensor_type == gguf.GGMLQuantizationType.F32
            kb = data.reshape(n_head, kv_lora, nope)
            vb = np.array(tensors[name.replace("attn_k_b", "attn_v_b")].data).reshape(n_head, v_mla, kv_lora)
            kvb = np.concatenate([kb.transpose(0, 2, 1), vb], axis=1).reshape(n_head * (nope + v_mla), kv_lora)
            w.add_tensor(name.replace("attn_k_b", "attn_kv_b"), np.ascontiguousarray(kvb, dtype=np.float32))
        else:
            w.add_tensor(name, data.reshape([int(x) for x in reversed(t.shape)]), raw_dtype=t.tensor_type)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


if __name__ == "__main__":
    main()
