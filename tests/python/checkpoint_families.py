"""Tiny random checkpoints of every family tandem loads, saved by transformers in the real
directory layouts, with weights at a visible scale (HF's std-0.02 init hides RoPE and bias errors
under 1e-4): Linear weights std 0.15, biases std 0.5, norms around their identity. Each family's
settings put the tested positions past its sliding window and past its RoPE scaling's original
length. Shared by tests/python/test_checkpoint_families.py and benchmarks/checkpoints.py."""
from __future__ import annotations

import json
from pathlib import Path

import torch
import transformers

VOCAB, SEQ = 211, 48  # SEQ > every window (12) and original RoPE length (16, 32) below
COMMON = dict(vocab_size=VOCAB, hidden_size=64, intermediate_size=112, num_hidden_layers=3, num_attention_heads=4,
              num_key_value_heads=2, max_position_embeddings=32, rms_norm_eps=1e-5, initializer_range=0.15,
              bos_token_id=1, eos_token_id=2, pad_token_id=0)


def _llama(**kw):
    return transformers.LlamaForCausalLM(transformers.LlamaConfig(**{**COMMON, **kw}))


def _rope(kind, **kw):
    return {"rope_type": kind, "rope_theta": 10000.0, **kw}


def _gemma3_multimodal():
    text = dict(vocab_size=VOCAB, hidden_size=64, intermediate_size=112, num_hidden_layers=3, num_attention_heads=4,
                num_key_value_heads=2, head_dim=16, max_position_embeddings=64, query_pre_attn_scalar=16,
                sliding_window=12, layer_types=["sliding_attention", "full_attention", "sliding_attention"],
                rope_parameters={"full_attention": {"rope_type": "linear", "factor": 8.0, "rope_theta": 1000000.0},
                                 "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0}},
                initializer_range=0.15)
    vision = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2, image_size=28,
                  patch_size=14)
    cfg = transformers.Gemma3Config(text_config=text, vision_config=vision, mm_tokens_per_image=4, boi_token_index=3,
                                    eoi_token_index=4, image_token_index=5, initializer_range=0.15)
    return transformers.Gemma3ForConditionalGeneration(cfg)


# family -> (what it stands for, builder). Names are the rows of results/models/checkpoints.csv.
FAMILIES = {
    "llama2": ("Llama 2 (SPA's LLaMA-7B layout)", lambda: _llama(tie_word_embeddings=False)),
    "llama3.2": ("Llama 3.1-3.3 (llama3 RoPE scaling, tied head, old rope_scaling layout)", lambda: _llama(
        tie_word_embeddings=True, max_position_embeddings=64,
        rope_parameters=_rope("llama3", rope_theta=500000.0, factor=4.0, low_freq_factor=1.0, high_freq_factor=4.0,
                              original_max_position_embeddings=16))),
    "llama_bias_gelu": ("Llama with attention_bias, mlp_bias, hidden_act gelu", lambda: _llama(
        attention_bias=True, mlp_bias=True, hidden_act="gelu")),
    "llama_linear": ("RoPE linear scaling", lambda: _llama(rope_parameters=_rope("linear", factor=2.0))),
    "llama_dynamic": ("RoPE dynamic NTK scaling", lambda: _llama(rope_parameters=_rope("dynamic", factor=2.0))),
    "llama_yarn": ("RoPE yarn scaling", lambda: _llama(max_position_embeddings=64, rope_parameters=_rope(
        "yarn", factor=4.0, original_max_position_embeddings=16, beta_fast=32.0, beta_slow=1.0))),
    "mistral": ("Mistral (sliding window 12)", lambda: transformers.MistralForCausalLM(
        transformers.MistralConfig(**COMMON, sliding_window=12))),
    "mixtral": ("Mixtral (4 experts, top 2)", lambda: transformers.MixtralForCausalLM(
        transformers.MixtralConfig(**COMMON, num_local_experts=4, num_experts_per_tok=2, sliding_window=None))),
    "qwen2.5": ("Qwen2/2.5 (q/k/v biases)", lambda: transformers.Qwen2ForCausalLM(
        transformers.Qwen2Config(**COMMON, tie_word_embeddings=True))),
    "qwen2_swa": ("Qwen2 with use_sliding_window from layer 1", lambda: transformers.Qwen2ForCausalLM(
        transformers.Qwen2Config(**COMMON, use_sliding_window=True, sliding_window=12, max_window_layers=1))),
    "qwen3": ("Qwen3 (q/k norms, explicit head_dim 24)", lambda: transformers.Qwen3ForCausalLM(
        transformers.Qwen3Config(**COMMON, head_dim=24, tie_word_embeddings=True))),
    "gemma2": ("Gemma 2 (soft-capping, alternating sliding layers)", lambda: transformers.Gemma2ForCausalLM(
        transformers.Gemma2Config(**{**COMMON, "max_position_embeddings": 64}, head_dim=16, query_pre_attn_scalar=20,
                                  sliding_window=12, attn_logit_softcapping=5.0, final_logit_softcapping=3.0))),
    "gemma3": ("Gemma 3 1B/270M text layout", lambda: transformers.Gemma3ForCausalLM(transformers.Gemma3TextConfig(
        **{**COMMON, "max_position_embeddings": 64}, head_dim=16, query_pre_attn_scalar=20, sliding_window=12,
        layer_types=["sliding_attention", "full_attention", "sliding_attention"]))),
    "gemma3_4b": ("Gemma 3 4B+ multimodal layout (text_config nested, vision tower skipped)", _gemma3_multimodal),
    "phi3.5": ("Phi-3.5/4-mini (fused qkv/gate_up, longrope, partial rotary 0.75)", lambda: transformers.Phi3ForCausalLM(
        transformers.Phi3Config(**{**COMMON, "max_position_embeddings": 64}, partial_rotary_factor=0.75, sliding_window=12,
                                original_max_position_embeddings=16, rope_parameters=_rope(
                                    "longrope", short_factor=[1.0, 1.1, 1.2, 1.3, 1.5, 2.0],
                                    long_factor=[1.0, 1.5, 2.0, 3.0, 4.0, 6.0])))),
}


def build(family: str, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = FAMILIES[family][1]()
    # transformers' eager attention is its reference path: its SDPA path drops Gemma 2's attention
    # soft-capping (seen on CUDA with transformers 5.17: logits off by 0.97, eager within 1e-6).
    model.set_attn_implementation("eager")
    gemma = "gemma" in family
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias"):
                p.normal_(0, 0.5)
            elif "norm" in name:  # Gemma norms hold w in (1 + w): centre those at 0
                p.normal_(0.0 if gemma else 1.0, 0.2)
    return model.eval()


def save(family: str, root: Path) -> tuple[torch.nn.Module, Path]:
    model = build(family)
    path = Path(root) / family
    model.save_pretrained(path, safe_serialization=True)
    if family == "llama3.2":  # as the real Llama 3.x files write it: rope_scaling + top-level rope_theta
        cfg = json.loads((path / "config.json").read_text())
        rp = cfg.pop("rope_parameters")
        cfg["rope_theta"] = rp.pop("rope_theta")
        cfg["rope_scaling"] = rp
        (path / "config.json").write_text(json.dumps(cfg, indent=2))
    return model, path


def text_model(model):
    """The module whose logits tandem's model reproduces (the whole model, or a multimodal
    model called on text alone)."""
    return model


def padded_batch(seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(6, VOCAB, (3, SEQ), generator=g)
    mask = torch.ones_like(ids)
    mask[1, :5] = 0  # left padding
    mask[2, :17] = 0
    ids[mask == 0] = 0
    pos = (mask.cumsum(-1) - 1).masked_fill(mask == 0, 1)
    return ids, mask, pos
