#!/usr/bin/env python3
"""Tiny random-weight Mixture-of-Experts reference fixtures for the Byline engine.

For each architecture a tiny model is built from the reference PyTorch implementation in
Hugging Face `transformers` (random init, fixed seed), written to GGUF (all tensors F32) with
the tensor names and metadata keys that llama.cpp's converter (`convert_hf_to_gguf.py`, in
llama.cpp's `conversion/` package) writes for that architecture, and run on a fixed list of
token-id prompts. Outputs in `<out>/<fixture>/`:

    model-f32.gguf      the model (F32), with a minimal gpt2-type byte vocabulary
    ref.json            configuration, prompts, greedy continuations, routing margins, file index
    logits-hf.f32       transformers' logits, raw little-endian float32 (layout in ref.json)

With --dequant-refs (after tools/ref_moe_llamacpp.py --quantize made model-q8_0.gguf and
model-q4_0.gguf): logits-hf-dequant-<type>.f32 and dequant.json, transformers run with the
dequantized weights of each quantized file.

The file format is documented in tests/data/moe/README.md.

Developer tool, never run in CI. Pinned versions (also in tools/requirements-moe-fixtures.txt):
    python 3.11, torch==2.15.0, transformers==5.24.0, gguf==0.19.0, numpy==2.4.6,
    safetensors==0.8.0
Naming and metadata follow the llama.cpp sources vendored in llama-cpp-python==0.3.36
(llama.cpp commit 0c1e57098bba43ac29e6e3b677cdceebdd22334f).

Usage: python tools/gen_moe_fixtures.py --out tests/data/moe [--only qwen3moe,olmoe] [--dequant-refs]
"""
from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
from pathlib import Path

import numpy as np
import torch
import transformers as T
import gguf

FORMAT_VERSION = 1
VOCAB = 320          # 256 byte tokens, 2 control tokens, 1 merged token, 61 filler tokens
BOS, EOS = 256, 257
N_CONTINUE = 8       # greedy continuation length
MIN_MARGIN = 2e-3    # required routing / greedy top-1 margins (seed is bumped until met)
QUANT_REFS = ("q8_0", "q4_0")

# fixed prompts (token ids); every prompt starts with BOS
PROMPTS = [
    [BOS, 72, 101, 108, 108, 111, 44, 32, 119, 111, 114, 108, 100],
    [BOS, 300, 17, 255, 0, 128, 64, 290],
    [BOS] + [(i * 37 + 11) % VOCAB for i in range(23)],
]

COMMON = dict(vocab_size=VOCAB, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
              num_key_value_heads=2, max_position_embeddings=512, bos_token_id=BOS,
              eos_token_id=EOS, pad_token_id=None, tie_word_embeddings=False)

# fixture name -> (gguf arch, HF config class, HF model class, config overrides)
FIXTURES = {
    "qwen3moe": ("qwen3moe", "Qwen3MoeConfig", "Qwen3MoeForCausalLM", dict(
        head_dim=16, intermediate_size=96, moe_intermediate_size=32, num_experts=8,
        num_experts_per_tok=2, norm_topk_prob=True, rms_norm_eps=1e-6, rope_theta=1000000.0)),
    "qwen2moe": ("qwen2moe", "Qwen2MoeConfig", "Qwen2MoeForCausalLM", dict(
        intermediate_size=96, moe_intermediate_size=32, shared_expert_intermediate_size=64,
        num_experts=8, num_experts_per_tok=2, norm_topk_prob=False, rms_norm_eps=1e-6,
        rope_theta=1000000.0)),
    "mixtral": ("llama", "MixtralConfig", "MixtralForCausalLM", dict(
        intermediate_size=32, num_local_experts=8, num_experts_per_tok=2, rms_norm_eps=1e-5,
        rope_theta=1000000.0)),
    # llama.cpp's olmoe graph has no GQA (k_norm spans n_embd), as the real OLMoE-1B-7B
    "olmoe": ("olmoe", "OlmoeConfig", "OlmoeForCausalLM", dict(
        num_key_value_heads=4, intermediate_size=32, num_experts=8, num_experts_per_tok=2, norm_topk_prob=False,
        rms_norm_eps=1e-5, rope_theta=10000.0)),
    "granitemoe": ("granitemoe", "GraniteMoeConfig", "GraniteMoeForCausalLM", dict(
        intermediate_size=32, num_local_experts=8, num_experts_per_tok=2, rms_norm_eps=1e-6,
        rope_theta=10000.0, tie_word_embeddings=True, embedding_multiplier=0.5,
        attention_multiplier=0.125, residual_multiplier=0.5, logits_scaling=0.5)),
    # DeepSeek-V2 style: MLA with q_lora, softmax greedy top-k, routed scaling, 1 shared expert
    "deepseek2": ("deepseek2", "DeepseekV2Config", "DeepseekV2ForCausalLM", dict(
        num_key_value_heads=4, intermediate_size=96, moe_intermediate_size=32,
        n_routed_experts=8, num_experts_per_tok=2, n_shared_experts=1, q_lora_rank=48,
        kv_lora_rank=32, qk_rope_head_dim=16, qk_nope_head_dim=16, v_head_dim=16,
        first_k_dense_replace=1, topk_method="greedy", n_group=None, topk_group=None,
        routed_scaling_factor=1.5, norm_topk_prob=False, rms_norm_eps=1e-6, rope_theta=10000.0,
        scoring_func="softmax")),
    # DeepSeek-V2-Lite style: no q-LoRA (plain attn_q), 2 shared experts, top-3. 26 layers
    # (24 dense) because llama.cpp only treats 26/27-layer deepseek2 files as "lite" (without
    # the q_lora_rank key); n_embd 32 and 8-wide heads keep it small
    "deepseek2-lite": ("deepseek2", "DeepseekV2Config", "DeepseekV2ForCausalLM", dict(
        hidden_size=32, num_hidden_layers=26, num_attention_heads=2, num_key_value_heads=2,
        intermediate_size=16, moe_intermediate_size=32, n_routed_experts=8,
        num_experts_per_tok=3, n_shared_experts=2, q_lora_rank=None, kv_lora_rank=32,
        qk_rope_head_dim=8, qk_nope_head_dim=8, v_head_dim=8, first_k_dense_replace=24,
        topk_method="greedy", n_group=None, topk_group=None, routed_scaling_factor=1.0,
        norm_topk_prob=False, rms_norm_eps=1e-6, rope_theta=10000.0, scoring_func="softmax")),
    # DeepSeek-V3/R1 style: sigmoid scores + e_score_correction_bias, group-limited routing
    # (sum of the top-2 per group), renormalised top-k, routed_scaling_factor
    "deepseek2-v3": ("deepseek2", "DeepseekV3Config", "DeepseekV3ForCausalLM", dict(
        num_key_value_heads=4, intermediate_size=96, moe_intermediate_size=32,
        n_routed_experts=8, num_experts_per_tok=2, n_shared_experts=1, q_lora_rank=48,
        kv_lora_rank=32, qk_rope_head_dim=16, qk_nope_head_dim=16, v_head_dim=16,
        first_k_dense_replace=1, n_group=4, topk_group=2, routed_scaling_factor=2.5,
        norm_topk_prob=True, rms_norm_eps=1e-6, rope_theta=10000.0, rope_interleave=True,
        scoring_func="sigmoid", topk_method="noaux_tc", num_nextn_predict_layers=0)),
}


# ---------------------------------------------------------------------------------------------
# model construction

def build_config(name: str):
    _, cfg_cls, _, over = FIXTURES[name]
    kw = {**COMMON, **over}
    theta = kw.pop("rope_theta")
    kw["rope_parameters"] = {"rope_theta": theta, "rope_type": "default"}
    cfg = getattr(T, cfg_cls)(**kw)
    cfg._attn_implementation = "eager"
    return cfg


def randomise(model: torch.nn.Module, seed: int, embed_std: float = 1.0) -> None:
    """Overwrite every parameter/buffer with seeded values of a scale that keeps activations O(1)
    and makes norms, biases and router biases matter."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in list(model.named_parameters()) + list(model.named_buffers()):
            if not p.is_floating_point() or "inv_freq" in name:
                continue
            if name.endswith("e_score_correction_bias"):
                p.copy_(0.05 * torch.randn(p.shape, generator=g))
            elif "norm" in name:
                p.copy_(1.0 + 0.25 * torch.randn(p.shape, generator=g))
            elif name.endswith(".bias"):
                p.copy_(0.2 * torch.randn(p.shape, generator=g))
            elif "embed_tokens" in name:
                p.copy_(embed_std * torch.randn(p.shape, generator=g))
            elif p.dim() >= 2:
                std = p.shape[-1] ** -0.5
                if re.search(r"(mlp\.gate|router)\.weight$", name):
                    std *= 3.0  # decisive routing: larger gaps between expert scores
                p.copy_(std * torch.randn(p.shape, generator=g))
            else:
                p.copy_(0.2 * torch.randn(p.shape, generator=g))


def build_model(name: str, seed: int):
    cfg = build_config(name)
    model_cls = getattr(T, FIXTURES[name][2])
    torch.manual_seed(seed)
    model = model_cls._from_config(cfg, attn_implementation="eager", experts_implementation="eager",
                                   dtype=torch.float32)
    model.eval()
    # tied embeddings (granite): with O(1) random embeddings the last token's own embedding
    # dominates the logits and every continuation repeats it; small embeddings let the
    # attention and MoE blocks decide
    randomise(model, seed, 0.1 if cfg.tie_word_embeddings else 1.0)
    if cfg.tie_word_embeddings:
        model.tie_weights()
    return cfg, model


# ---------------------------------------------------------------------------------------------
# reference run

def routers(model):
    out = []
    for mname, mod in model.named_modules():
        cls = type(mod).__name__
        if cls.endswith(("TopKRouter", "TopkRouter")):
            out.append((mname, mod))
    return out


def selection_margins(name: str, cfg, logits: np.ndarray, mod) -> tuple[float, float]:
    """(min expert-selection margin, min group-selection margin) for router logits [n_tok, n_exp]."""
    k = cfg.num_experts_per_tok
    gmargin = float("inf")
    if name == "deepseek2-v3":
        bias = mod.e_score_correction_bias.detach().numpy().astype(np.float64)
        s = 1.0 / (1.0 + np.exp(-logits.astype(np.float64))) + bias
        ng, tg = cfg.n_group, cfg.topk_group
        per = s.shape[1] // ng
        grp = np.sort(s.reshape(-1, ng, per), axis=-1)[..., -2:].sum(-1)
        gs = np.sort(grp, axis=-1)[:, ::-1]
        gmargin = float((gs[:, tg - 1] - gs[:, tg]).min())
        keep = np.argsort(-grp, axis=-1)[:, :tg]
        mask = np.full_like(s, -np.inf)
        for t in range(s.shape[0]):
            for gi in keep[t]:
                mask[t, gi * per:(gi + 1) * per] = 0.0
        s = s + mask
    else:
        s = logits.astype(np.float64)  # softmax is monotone: the logit gap decides
    ss = np.sort(s, axis=-1)[:, ::-1]
    return float((ss[:, k - 1] - ss[:, k]).min()), gmargin


@torch.no_grad()
def run_reference(name: str, cfg, model) -> dict:
    captured = {}
    hooks = []
    for mname, mod in routers(model):
        def hook(m, inp, out, mname=mname):
            captured.setdefault(mname, []).append(out[0].detach().float().numpy().reshape(-1, out[0].shape[-1]))
        hooks.append(mod.register_forward_hook(hook))

    results = []
    for ids in PROMPTS:
        seq = list(ids)
        greedy_margin = float("inf")
        for _ in range(N_CONTINUE):
            lg = model(torch.tensor([seq])).logits[0, -1].double().numpy()
            top = np.sort(lg)[::-1]
            greedy_margin = min(greedy_margin, float(top[0] - top[1]))
            seq.append(int(np.argmax(lg)))
        captured.clear()
        logits = model(torch.tensor([seq])).logits[0].float().numpy()
        cont = seq[len(ids):]
        # the full-sequence pass must reproduce the step-by-step greedy choices
        assert [int(x) for x in logits[len(ids) - 1:-1].argmax(-1)] == cont, name
        rmargin, gmargin = float("inf"), float("inf")
        for mname, mod in routers(model):
            for lg in captured.get(mname, []):
                a, b = selection_margins(name, cfg, lg, mod)
                rmargin, gmargin = min(rmargin, a), min(gmargin, b)
        results.append(dict(prompt=list(ids), continuation=cont, logits=logits,
                            greedy_margin=greedy_margin, routing_margin=rmargin,
                            group_margin=gmargin))
    for h in hooks:
        h.remove()
    return results


# ---------------------------------------------------------------------------------------------
# GGUF writing (names and keys as llama.cpp's converter writes them)

def permute_qk(w: np.ndarray, n_head: int) -> np.ndarray:
    """llama.cpp's LlamaModel.permute: HF rotate-half q/k rows -> interleaved-pair order."""
    return (w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:])
            .swapaxes(1, 2).reshape(w.shape))


def add_vocab(w: gguf.GGUFWriter) -> None:
    byte_chars = _bytes_to_unicode()
    # one real merge (llama.cpp requires a non-empty merges array; an empty one is not written)
    tokens = [byte_chars[b] for b in range(256)] + ["<|bos|>", "<|eos|>", byte_chars[32] + "t"]
    tokens += [f"<|filler_{i}|>" for i in range(len(tokens), VOCAB)]
    types = [gguf.TokenType.NORMAL] * 256 + [gguf.TokenType.CONTROL] * 2
    types += [gguf.TokenType.NORMAL] * (VOCAB - len(types))
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("default")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges([byte_chars[32] + " t"])
    w.add_bos_token_id(BOS)
    w.add_eos_token_id(EOS)
    w.add_add_bos_token(False)


def _bytes_to_unicode() -> dict[int, str]:
    # GPT-2's byte -> printable unicode map
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


def gguf_tensors(name: str, cfg, model) -> list[tuple[str, np.ndarray]]:
    """HF state dict -> [(gguf name, array in HF (row-major, out x in) order)]."""
    arch = FIXTURES[name][0]
    sd = {k: v.detach().float().numpy().copy() for k, v in model.state_dict().items()}
    llama_permute = arch in ("llama", "granitemoe")
    out: list[tuple[str, np.ndarray]] = []
    out.append(("token_embd.weight", sd.pop("model.embed_tokens.weight")))
    out.append(("output_norm.weight", sd.pop("model.norm.weight")))
    lm = sd.pop("lm_head.weight")
    if not cfg.tie_word_embeddings:
        out.append(("output.weight", lm))

    simple = {
        "input_layernorm.weight": "attn_norm.weight",
        "post_attention_layernorm.weight": "ffn_norm.weight",
        "self_attn.q_proj.weight": "attn_q.weight", "self_attn.q_proj.bias": "attn_q.bias",
        "self_attn.k_proj.weight": "attn_k.weight", "self_attn.k_proj.bias": "attn_k.bias",
        "self_attn.v_proj.weight": "attn_v.weight", "self_attn.v_proj.bias": "attn_v.bias",
        "self_attn.o_proj.weight": "attn_output.weight",
        "self_attn.q_norm.weight": "attn_q_norm.weight",
        "self_attn.k_norm.weight": "attn_k_norm.weight",
        # MLA
        "self_attn.q_a_proj.weight": "attn_q_a.weight",
        "self_attn.q_a_layernorm.weight": "attn_q_a_norm.weight",
        "self_attn.q_b_proj.weight": "attn_q_b.weight",
        "self_attn.kv_a_proj_with_mqa.weight": "attn_kv_a_mqa.weight",
        "self_attn.kv_a_layernorm.weight": "attn_kv_a_norm.weight",
        # routers
        "mlp.gate.weight": "ffn_gate_inp.weight",
        "block_sparse_moe.router.weight": "ffn_gate_inp.weight",
        "mlp.gate.e_score_correction_bias": "exp_probs_b.bias",
        # dense FFN (DeepSeek leading layers)
        "mlp.gate_proj.weight": "ffn_gate.weight",
        "mlp.up_proj.weight": "ffn_up.weight",
        "mlp.down_proj.weight": "ffn_down.weight",
        # shared experts
        "mlp.shared_expert.gate_proj.weight": "ffn_gate_shexp.weight",
        "mlp.shared_expert.up_proj.weight": "ffn_up_shexp.weight",
        "mlp.shared_expert.down_proj.weight": "ffn_down_shexp.weight",
        "mlp.shared_expert_gate.weight": "ffn_gate_inp_shexp.weight",
        "mlp.shared_experts.gate_proj.weight": "ffn_gate_shexp.weight",
        "mlp.shared_experts.up_proj.weight": "ffn_up_shexp.weight",
        "mlp.shared_experts.down_proj.weight": "ffn_down_shexp.weight",
    }
    n_head = cfg.num_attention_heads
    n_kv = cfg.num_key_value_heads
    for bid in range(cfg.num_hidden_layers):
        pre = f"model.layers.{bid}."
        keys = sorted(k for k in sd if k.startswith(pre))
        for k in keys:
            rest = k[len(pre):]
            t = sd.pop(k)
            if rest in simple:
                gname = simple[rest]
                if llama_permute and rest.startswith("self_attn.q_proj."):
                    t = permute_qk(t, n_head)
                if llama_permute and rest.startswith("self_attn.k_proj."):
                    t = permute_qk(t, n_kv)
                out.append((f"blk.{bid}.{gname}", t))
            elif rest.endswith("experts.gate_up_proj"):
                # transformers 5 fuses [gate; up] along dim 1: (n_expert, 2*n_ff, n_embd)
                nff = t.shape[1] // 2
                out.append((f"blk.{bid}.ffn_gate_exps.weight", np.ascontiguousarray(t[:, :nff, :])))
                out.append((f"blk.{bid}.ffn_up_exps.weight", np.ascontiguousarray(t[:, nff:, :])))
            elif rest.endswith("experts.down_proj"):
                out.append((f"blk.{bid}.ffn_down_exps.weight", t))  # (n_expert, n_embd, n_ff)
            elif rest == "self_attn.kv_b_proj.weight":
                # MLA absorption split, as DeepseekV2Model.modify_tensors: k_b transposed
                nope, vd = cfg.qk_nope_head_dim, cfg.v_head_dim
                kv_b = t.reshape(n_kv, nope + vd, t.shape[-1])
                k_b = np.ascontiguousarray(kv_b[:, :nope, :].transpose(0, 2, 1))
                v_b = np.ascontiguousarray(kv_b[:, nope:, :])
                out.append((f"blk.{bid}.attn_k_b.weight", k_b))
                out.append((f"blk.{bid}.attn_v_b.weight", v_b))
            else:
                raise SystemExit(f"{name}: unmapped tensor {k} {t.shape}")
    if sd:
        raise SystemExit(f"{name}: unmapped tensors {sorted(sd)}")
    return out


def write_gguf(name: str, cfg, model, path: Path) -> None:
    arch = FIXTURES[name][0]
    h = cfg
    w = gguf.GGUFWriter(str(path), arch)
    w.add_type(gguf.GGUFType.MODEL)
    w.add_name(f"byline-moe-fixture-{name}")
    # TextModel.set_gguf_parameters
    w.add_block_count(h.num_hidden_layers)
    w.add_context_length(h.max_position_embeddings)
    w.add_embedding_length(h.hidden_size)
    w.add_feed_forward_length(h.intermediate_size)
    w.add_head_count(h.num_attention_heads)
    w.add_head_count_kv(1 if arch == "deepseek2" else h.num_key_value_heads)
    w.add_rope_freq_base(h.rope_parameters["rope_theta"])
    w.add_layer_norm_rms_eps(1e-5 if arch == "olmoe" else h.rms_norm_eps)
    n_exp = getattr(h, "n_routed_experts", None) or getattr(h, "num_local_experts", None) or h.num_experts
    w.add_expert_count(n_exp)
    w.add_expert_used_count(h.num_experts_per_tok)
    if getattr(h, "n_group", None) is not None:
        w.add_expert_group_count(h.n_group)
    if getattr(h, "topk_group", None) is not None:
        w.add_expert_group_used_count(h.topk_group)
    sf = getattr(h, "scoring_func", None)
    if sf is not None:
        w.add_expert_gating_func({"sigmoid": gguf.ExpertGatingFuncType.SIGMOID,
                                  "softmax": gguf.ExpertGatingFuncType.SOFTMAX}[sf])
    if arch != "deepseek2" and arch != "granitemoe" and getattr(h, "head_dim", None) is not None:
        w.add_key_length(h.head_dim)
        w.add_value_length(h.head_dim)
    w.add_file_type(gguf.LlamaFileType.ALL_F32)

    if arch in ("qwen2moe", "qwen3moe"):  # Qwen2MoeModel
        w.add_expert_feed_forward_length(h.moe_intermediate_size)
        if getattr(h, "shared_expert_intermediate_size", None) is not None:
            w.add_expert_shared_feed_forward_length(h.shared_expert_intermediate_size)
    if arch in ("llama", "granitemoe"):  # LlamaModel
        w.add_vocab_size(h.vocab_size)
        w.add_rope_dimension_count(h.hidden_size // h.num_attention_heads)
    if arch == "granitemoe":  # GraniteModel
        w.add_attention_scale(h.attention_multiplier)
        w.add_embedding_scale(h.embedding_multiplier)
        w.add_residual_scale(h.residual_multiplier)
        w.add_logit_scale(h.logits_scaling)
    if arch == "deepseek2":  # DeepseekV2Model
        w.add_leading_dense_block_count(h.first_k_dense_replace)
        w.add_vocab_size(h.vocab_size)
        if h.q_lora_rank is not None:
            w.add_q_lora_rank(h.q_lora_rank)
        w.add_kv_lora_rank(h.kv_lora_rank)
        w.add_key_length(h.kv_lora_rank + h.qk_rope_head_dim)
        w.add_value_length(h.kv_lora_rank)
        w.add_key_length_mla(h.qk_nope_head_dim + h.qk_rope_head_dim)
        w.add_value_length_mla(h.v_head_dim)
        w.add_expert_feed_forward_length(h.moe_intermediate_size)
        w.add_expert_shared_count(h.n_shared_experts)
        w.add_expert_weights_scale(h.routed_scaling_factor)
        if h.norm_topk_prob:
            w.add_expert_weights_norm(True)
        w.add_rope_dimension_count(h.qk_rope_head_dim)
    w.add_quantization_version(gguf.GGML_QUANT_VERSION)
    add_vocab(w)

    for tname, arr in gguf_tensors(name, cfg, model):
        w.add_tensor(tname, np.ascontiguousarray(arr, dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file(progress=False)
    w.close()


# ---------------------------------------------------------------------------------------------

def dump_json(obj) -> str:
    """Indented JSON with lists of numbers kept on one line."""
    s = json.dumps(obj, indent=1)
    return re.sub(r"\[\s*([-0-9.e+,\s]*?)\s*\]",
                  lambda m: "[" + ", ".join(x.strip() for x in m.group(1).split(",") if x.strip()) + "]", s) + "\n"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def make_fixture(name: str, out: Path, seed0: int) -> dict:
    for attempt in range(40):
        seed = seed0 + attempt
        cfg, model = build_model(name, seed)
        res = run_reference(name, cfg, model)
        rm = min(r["routing_margin"] for r in res)
        gm = min(r["greedy_margin"] for r in res)
        grm = min(r["group_margin"] for r in res)
        if rm >= MIN_MARGIN and gm >= MIN_MARGIN and grm >= MIN_MARGIN:
            break
        print(f"{name}: seed {seed} margins routing {rm:.2e} greedy {gm:.2e} group {grm:.2e}, retrying",
              file=sys.stderr)
    else:
        raise SystemExit(f"{name}: no seed with margins >= {MIN_MARGIN}")

    d = out / name
    d.mkdir(parents=True, exist_ok=True)
    gpath = d / "model-f32.gguf"
    write_gguf(name, cfg, model, gpath)
    raw = bytearray()
    prompts = []
    for r in res:
        lg = r["logits"].astype("<f4")
        prompts.append(dict(
            prompt=r["prompt"], continuation=r["continuation"],
            n_positions=int(lg.shape[0]), logits_offset=len(raw) // 4,
            greedy_margin=r["greedy_margin"], routing_margin=r["routing_margin"],
            group_margin=None if r["group_margin"] == float("inf") else r["group_margin"]))
        raw += lg.tobytes()
    (d / "logits-hf.f32").write_bytes(bytes(raw))
    ref = dict(
        format_version=FORMAT_VERSION,
        fixture=name,
        gguf_arch=FIXTURES[name][0],
        hf_class=FIXTURES[name][2],
        seed=seed,
        versions=dict(torch=torch.__version__, transformers=T.__version__,
                      gguf=getattr(gguf, "__version__", "0.19.0"), numpy=np.__version__),
        vocab_size=VOCAB,
        n_continue=N_CONTINUE,
        files={"model-f32.gguf": sha256(gpath), "logits-hf.f32": sha256(d / "logits-hf.f32")},
        logits_file="logits-hf.f32",
        logits_layout="for each prompt: n_positions rows of vocab_size little-endian float32, "
                      "row i = logits after token i of prompt+continuation; rows start at "
                      "logits_offset (in floats)",
        prompts=prompts,
        hf_config={k: v for k, v in cfg.to_dict().items()
                   if k not in ("id2label", "label2id", "transformers_version", "_name_or_path")},
    )
    (d / "ref.json").write_text(dump_json(ref))
    size = gpath.stat().st_size
    print(f"{name}: seed {seed}, gguf {size} bytes, margins routing "
          f"{min(p['routing_margin'] for p in prompts):.3g} greedy {min(p['greedy_margin'] for p in prompts):.3g}")
    return ref


class _IdModel:
    """Stands in for a model in gguf_tensors(): every element holds its own global index, so
    the GGUF tensors it produces say which transformers element each GGUF element came from."""

    def __init__(self, model):
        self.layout = {}
        self.sd = {}
        n = 0
        for k, v in model.state_dict().items():
            self.layout[k] = (n, tuple(v.shape))
            self.sd[k] = torch.arange(n, n + v.numel(), dtype=torch.float64).reshape(v.shape)
            n += v.numel()
        assert n < 2 ** 24, "indices must stay exact in float32"
        self.n = n

    def state_dict(self):
        return self.sd


def dequant_reference(name: str, out: Path) -> None:
    """transformers run with the weights of model-<q>.gguf dequantized (gguf package): the
    exact reference for an engine that dequantizes and computes in F32."""
    from gguf.quants import dequantize
    d = out / name
    ref = json.loads((d / "ref.json").read_text())
    cfg, model = build_model(name, ref["seed"])
    ids = _IdModel(model)
    index = {g: a.astype(np.int64) for g, a in gguf_tensors(name, cfg, ids)}
    summary = {}
    for q in QUANT_REFS:
        gpath = d / f"model-{q}.gguf"
        if not gpath.is_file():
            continue
        flat = np.full(ids.n, np.nan, dtype=np.float32)
        for t in gguf.GGUFReader(str(gpath)).tensors:
            vals = dequantize(np.array(t.data), t.tensor_type).astype(np.float32)
            idx = index[t.name]
            assert vals.size == idx.size, (t.name, vals.shape, idx.shape)
            flat[idx.ravel()] = vals.ravel()
        sd = {}
        for k, (off, shape) in ids.layout.items():
            sd[k] = torch.from_numpy(flat[off: off + int(np.prod(shape))].reshape(shape).copy())
        if cfg.tie_word_embeddings:
            sd["lm_head.weight"] = sd["model.embed_tokens.weight"]
        missing = [k for k, v in sd.items() if torch.isnan(v).any()]
        assert not missing, (name, q, missing)
        model.load_state_dict(sd)
        hf = np.fromfile(d / ref["logits_file"], dtype="<f4")
        lc_path = d / f"logits-llamacpp-{q}.f32"
        lc = np.fromfile(lc_path, dtype="<f4") if lc_path.is_file() else None
        raw = bytearray()
        per = []
        with torch.no_grad():
            for p in ref["prompts"]:
                seq = p["prompt"] + p["continuation"]
                lg = model(torch.tensor([seq])).logits[0].float().numpy()
                V = lg.shape[1]
                off = p["logits_offset"]
                row = dict(max_abs_diff_vs_f32=float(np.abs(lg.ravel() - hf[off: off + lg.size]).max()))
                if lc is not None:
                    l2 = lc[off: off + lg.size].reshape(-1, V)
                    pos = np.abs(lg - l2).max(-1)
                    row["max_abs_diff_vs_llamacpp"] = float(pos.max())
                    row["median_position_max_abs_diff_vs_llamacpp"] = float(np.median(pos))
                    row["top1_agreement_vs_llamacpp"] = float((lg.argmax(-1) == l2.argmax(-1)).mean())
                # own greedy continuation of the dequantized model
                cur = list(p["prompt"])
                for _ in range(len(p["continuation"])):
                    cur.append(int(model(torch.tensor([cur])).logits[0, -1].argmax()))
                row["greedy"] = cur[len(p["prompt"]):]
                per.append(row)
                raw += lg.astype("<f4").tobytes()
        lf = d / f"logits-hf-dequant-{q}.f32"
        lf.write_bytes(bytes(raw))
        summary[q] = dict(gguf=gpath.name, gguf_sha256=sha256(gpath), logits_file=lf.name,
                          logits_sha256=sha256(lf), prompts=per)
        worst = max(r.get("max_abs_diff_vs_llamacpp", float("nan")) for r in per)
        print(f"{name:14s} {q}: dequantized transformers vs llama.cpp max|diff| {worst:.3e}")
    (d / "dequant.json").write_text(dump_json(summary))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="tests/data/moe")
    ap.add_argument("--only", default="", help="comma-separated fixture names")
    ap.add_argument("--seed", type=int, default=20261128)
    ap.add_argument("--dequant-refs", action="store_true",
                    help="after tools/ref_moe_llamacpp.py --quantize: transformers logits with the "
                         "dequantized weights of model-q8_0.gguf / model-q4_0.gguf")
    a = ap.parse_args()
    torch.set_num_threads(1)
    names = [n for n in FIXTURES if not a.only or n in a.only.split(",")]
    for n in names:
        if a.dequant_refs:
            dequant_reference(n, Path(a.out))
        else:
            make_fixture(n, Path(a.out), a.seed)


if __name__ == "__main__":
    main()
