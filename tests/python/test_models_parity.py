"""Decoder LMs: tandem's C++ models against HF transformers on tiny random models that the
test creates and saves itself (float32, max abs logit difference <= 1e-4)."""
from __future__ import annotations

import pytest
import torch

transformers = pytest.importorskip("transformers", reason="transformers is a test requirement")

from tandem import _C  # noqa: E402

TOL = 1e-4


def tiny(kind: str):
    common = dict(vocab_size=211, hidden_size=64, intermediate_size=112, num_hidden_layers=3,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                  rms_norm_eps=1e-5, rope_theta=10000.0)
    torch.manual_seed(0)
    if kind == "llama":
        cfg = transformers.LlamaConfig(**common, tie_word_embeddings=False)
        model = transformers.LlamaForCausalLM(cfg)
    elif kind == "llama_tied":
        cfg = transformers.LlamaConfig(**common, tie_word_embeddings=True)
        model = transformers.LlamaForCausalLM(cfg)
    elif kind == "qwen2":
        cfg = transformers.Qwen2Config(**common, tie_word_embeddings=False)
        model = transformers.Qwen2ForCausalLM(cfg)
        with torch.no_grad():  # random biases, so the test sees whether they are used
            for layer in model.model.layers:
                for proj in (layer.self_attn.q_proj, layer.self_attn.k_proj, layer.self_attn.v_proj):
                    proj.bias.normal_(0, 0.5)
    elif kind == "gpt2":
        cfg = transformers.GPT2Config(vocab_size=211, n_positions=64, n_embd=64, n_layer=3, n_head=4,
                                      bos_token_id=1, eos_token_id=2)
        model = transformers.GPT2LMHeadModel(cfg)
        with torch.no_grad():  # random biases and LayerNorm shifts, so their use is visible
            for name, p in model.named_parameters():
                if name.endswith("bias"):
                    p.normal_(0, 0.1)
    elif kind == "gemma3":
        # Head dim 16 with query_pre_attn_scalar 20 (so the scale is not head_dim's), a sliding
        # window of 8 keys (shorter than the test sequences) on layers 0 and 2, layer 1 global.
        cfg = transformers.Gemma3TextConfig(
            vocab_size=211, hidden_size=64, intermediate_size=112, num_hidden_layers=3, num_attention_heads=4,
            num_key_value_heads=2, head_dim=16, max_position_embeddings=256, rms_norm_eps=1e-6,
            query_pre_attn_scalar=20, sliding_window=8,
            layer_types=["sliding_attention", "full_attention", "sliding_attention"],
            rope_parameters={"full_attention": {"rope_type": "default", "rope_theta": 1000000.0},
                             "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0}})
        model = transformers.Gemma3ForCausalLM(cfg)
    else:
        raise ValueError(kind)
    with torch.no_grad():  # random norms too (HF initialises them to ones)
        for name, p in model.named_parameters():
            if "norm" in name or ".ln_" in name:  # Gemma norms hold w in (1 + w): centre those at 0
                p.normal_(0.0 if "gemma" in type(model).__name__.lower() else 1.0, 0.2)
    return model.eval()


@pytest.fixture(scope="module", params=["llama", "llama_tied", "qwen2", "gemma3", "gpt2"])
def pair(request, tmp_path_factory):
    hf = tiny(request.param)
    path = tmp_path_factory.mktemp(request.param)
    hf.save_pretrained(path, safe_serialization=True)
    return hf, _C.load_causal_lm(str(path), "cpu", "float32")


def padded_batch():
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(3, 211, (3, 17), generator=g)
    mask = torch.ones_like(ids)
    mask[1, :5] = 0   # left padding
    mask[2, :11] = 0
    ids[mask == 0] = 0
    pos = (mask.cumsum(-1) - 1).masked_fill(mask == 0, 1)
    return ids, mask, pos


def test_logits_match_without_padding(pair):
    hf, tm = pair
    ids = torch.randint(0, 211, (2, 23), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        ref = hf(input_ids=ids).logits
    got, _ = tm.forward(ids)
    assert (got - ref).abs().max().item() <= TOL


def test_logits_match_batched_with_left_padding(pair):
    hf, tm = pair
    ids, mask, pos = padded_batch()
    with torch.no_grad():
        ref = hf(input_ids=ids, attention_mask=mask, position_ids=pos).logits
    got, _ = tm.forward(ids, mask)
    real = mask.bool()
    assert (got[real] - ref[real]).abs().max().item() <= TOL


def test_kv_cache_matches_full_forward(pair):
    hf, tm = pair
    ids, mask, pos = padded_batch()
    with torch.no_grad():
        ref = hf(input_ids=ids, attention_mask=mask, position_ids=pos).logits
    got = _C._testing.forward_with_cache(tm, ids, mask, [9, 1, 1, 6])  # prefill, two single steps, a chunk
    real = mask.bool()
    assert (got[real] - ref[real]).abs().max().item() <= TOL


def test_greedy_generation_matches_transformers(pair):
    hf, tm = pair
    prompts = [[5, 17, 33, 2, 9], [44, 45]]
    ours = tm.generate(prompts, max_new_tokens=8, pad_id=0)
    for prompt, toks in zip(prompts, ours["tokens"]):
        with torch.no_grad():
            ref = hf.generate(torch.tensor([prompt]), max_new_tokens=8, do_sample=False,
                              eos_token_id=None, pad_token_id=0)
        assert toks == ref[0, len(prompt):].tolist()
    assert ours["finish_reasons"] == ["length", "length"]


def test_shared_prompt_prefix_is_computed_once_and_changes_nothing(pair):
    """Prompts that share a 40-token prefix (MinionS' jobs over one chunk) prefill it once; the
    greedy continuations must still equal transformers' for each prompt alone. Gemma 3's
    8-key sliding window is shorter than the prefix, so the window must count positions."""
    hf, tm = pair
    g = torch.Generator().manual_seed(5)
    prefix = torch.randint(3, 211, (40,), generator=g).tolist()
    prompts = [prefix + [17, 18, 19], prefix + [20, 21, 22, 23, 24, 25, 26], prefix + [27],
               torch.randint(3, 211, (44,), generator=g).tolist()]
    ours = tm.generate(prompts, max_new_tokens=6, pad_id=0)
    plain = len(prompts) * max(map(len, prompts))
    assert ours["prefill_positions"] < plain  # the shared path ran
    for prompt, toks in zip(prompts, ours["tokens"]):
        with torch.no_grad():
            ref = hf.generate(torch.tensor([prompt]), max_new_tokens=6, do_sample=False,
                              eos_token_id=None, pad_token_id=0)
        assert toks == ref[0, len(prompt):].tolist()


def test_score_is_sum_of_token_log_probs(pair):
    hf, tm = pair
    prompt, cont = [7, 8, 9, 10], [11, 12, 13]
    with torch.no_grad():
        logp = hf(input_ids=torch.tensor([prompt + cont])).logits.log_softmax(-1)[0]
    ref = sum(logp[len(prompt) - 1 + j, t].item() for j, t in enumerate(cont))
    got = tm.score([prompt, [1, 2]], [cont, [3]])
    assert abs(got[0] - ref) < 1e-4


def test_bad_model_inputs_are_clear_errors(tmp_path):
    (tmp_path / "config.json").write_text('{"model_type": "bloom", "vocab_size": 10}')
    with pytest.raises(RuntimeError, match=r"config\.json: unknown architecture model_type \"bloom\" \(known: .*llama"):
        _C.load_causal_lm(str(tmp_path))
    with pytest.raises(RuntimeError, match="no such model file or directory"):
        _C.load_causal_lm(str(tmp_path / "absent"))


def test_tensor_shape_that_contradicts_config_is_a_clear_error(tmp_path):
    import json

    tiny("llama").save_pretrained(tmp_path)
    cfg = json.loads((tmp_path / "config.json").read_text())
    cfg["intermediate_size"] = 100  # the saved MLP weights are 112 wide
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(RuntimeError, match=r"tensor 'model\.layers\.0\.mlp\.gate_proj\.weight' has shape \[112, 64\], "
                                           r"expected \[100, 64\] from the model config"):
        _C.load_causal_lm(str(tmp_path))
