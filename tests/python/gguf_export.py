"""Writes a transformers model as a GGUF file in llama.cpp's layout (its tensor names, the Q/K row
permutation of "llama" models, Gemma's 1 + w norms, Llama 3's rope_freqs), with gguf.GGUFWriter,
so tests can check that tandem loads a GGUF of the same model to the same logits."""
from __future__ import annotations

import math

import numpy as np
import torch

import gguf

# family -> GGUF architecture (llama.cpp writes Llama, Mistral and SmolLM as "llama")
ARCH = {"llama2": "llama", "llama3.2": "llama", "mistral": "llama", "qwen2.5": "qwen2", "qwen3": "qwen3"}


def _permute(w: np.ndarray, heads: int) -> np.ndarray:
    return w.reshape(heads, 2, w.shape[0] // heads // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def _llama3_rope_freqs(rs: dict, theta: float, dim: int) -> np.ndarray:
    """llama.cpp's per-frequency divisors for Llama 3.1+ scaling (1 / HF's scale of each frequency)."""
    factor, low, high, orig = rs["factor"], rs["low_freq_factor"], rs["high_freq_factor"], rs["original_max_position_embeddings"]
    out = []
    for i in range(0, dim, 2):
        freq = 1.0 / theta ** (i / dim)
        wavelen = 2 * math.pi / freq
        if wavelen < orig / high:
            out.append(1.0)
        elif wavelen > orig / low:
            out.append(factor)
        else:
            smooth = (orig / wavelen - low) / (high - low)
            out.append(1.0 / ((1 - smooth) / factor + smooth))
    return np.array(out, dtype=np.float32)


def write(model, family: str, path) -> None:
    cfg = model.config
    arch = ARCH[family]
    sd = {k: v.detach().float().numpy() for k, v in model.state_dict().items()}
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    w = gguf.GGUFWriter(str(path), arch)
    w.add_context_length(cfg.max_position_embeddings)
    w.add_embedding_length(cfg.hidden_size)
    w.add_block_count(cfg.num_hidden_layers)
    w.add_feed_forward_length(cfg.intermediate_size)
    w.add_head_count(cfg.num_attention_heads)
    w.add_head_count_kv(cfg.num_key_value_heads)
    w.add_key_length(head_dim)
    w.add_value_length(head_dim)
    w.add_layer_norm_rms_eps(cfg.rms_norm_eps)
    rp = dict(cfg.rope_parameters or {})
    theta = rp.get("rope_theta", getattr(cfg, "rope_theta", 10000.0))
    w.add_rope_freq_base(theta)
    w.add_vocab_size(cfg.vocab_size)
    if getattr(cfg, "sliding_window", None) and family == "mistral":
        w.add_sliding_window(cfg.sliding_window)
    w.add_bos_token_id(cfg.bos_token_id)
    w.add_eos_token_id(cfg.eos_token_id)
    if rp.get("rope_type") == "llama3":
        w.add_tensor("rope_freqs.weight", _llama3_rope_freqs(rp, theta, head_dim))
    w.add_tensor("token_embd.weight", sd["model.embed_tokens.weight"])
    w.add_tensor("output_norm.weight", sd["model.norm.weight"])
    if not cfg.tie_word_embeddings:
        w.add_tensor("output.weight", sd["lm_head.weight"])
    for i in range(cfg.num_hidden_layers):
        h, g = f"model.layers.{i}.", f"blk.{i}."
        q, k = sd[h + "self_attn.q_proj.weight"], sd[h + "self_attn.k_proj.weight"]
        if arch == "llama":
            q, k = _permute(q, cfg.num_attention_heads), _permute(k, cfg.num_key_value_heads)
        names = {"attn_norm.weight": sd[h + "input_layernorm.weight"], "ffn_norm.weight": sd[h + "post_attention_layernorm.weight"],
                 "attn_q.weight": q, "attn_k.weight": k, "attn_v.weight": sd[h + "self_attn.v_proj.weight"],
                 "attn_output.weight": sd[h + "self_attn.o_proj.weight"], "ffn_gate.weight": sd[h + "mlp.gate_proj.weight"],
                 "ffn_up.weight": sd[h + "mlp.up_proj.weight"], "ffn_down.weight": sd[h + "mlp.down_proj.weight"]}
        for b in ("q", "k", "v"):
            if h + f"self_attn.{b}_proj.bias" in sd:
                names[f"attn_{b}.bias"] = sd[h + f"self_attn.{b}_proj.bias"]
        for n in ("q", "k"):
            if h + f"self_attn.{n}_norm.weight" in sd:
                names[f"attn_{n}_norm.weight"] = sd[h + f"self_attn.{n}_norm.weight"]
        for name, t in names.items():
            w.add_tensor(g + name, np.ascontiguousarray(t))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
