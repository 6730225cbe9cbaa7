"""Every checkpoint family tandem claims to load, as tiny random models saved by transformers in
the real directory layouts (tests/python/checkpoint_families.py): logits against transformers at
positions past the sliding window and past the RoPE scaling's original length, with left padding
and the KV cache; greedy text identical; every setting the loader does not honour refused."""
from __future__ import annotations

import json

import pytest
import torch

transformers = pytest.importorskip("transformers", reason="transformers is a test requirement")

from tandem import _C  # noqa: E402
import checkpoint_families as cf  # noqa: E402

TOL = 1e-4


@pytest.fixture(scope="module", params=list(cf.FAMILIES))
def pair(request, tmp_path_factory):
    hf, path = cf.save(request.param, tmp_path_factory.mktemp("ckpt"))
    return hf, _C.load_causal_lm(str(path), "cpu", "float32"), path


def hf_logits(hf, ids, mask, pos):
    with torch.no_grad():
        return hf(input_ids=ids, attention_mask=mask, position_ids=pos).logits


def test_logits_match_with_left_padding_past_window_and_rope_length(pair):
    hf, tm, _ = pair
    ids, mask, pos = cf.padded_batch()
    ref = hf_logits(hf, ids, mask, pos)
    got, _ = tm.forward(ids, mask)
    real = mask.bool()
    assert (got[real] - ref[real]).abs().max().item() <= TOL


def hf_chunked(hf, ids, mask, pos, chunks):
    """transformers' own logits when the batch arrives in chunks through its KV cache (dynamic
    RoPE picks frequencies per call, so the cached run is its reference, not the full forward)."""
    cache, out, at = transformers.DynamicCache(), [], 0
    with torch.no_grad():
        for n in chunks:
            r = hf(input_ids=ids[:, at:at + n], attention_mask=mask[:, :at + n], position_ids=pos[:, at:at + n],
                   past_key_values=cache, use_cache=True)
            cache, at = r.past_key_values, at + n
            out.append(r.logits)
    return torch.cat(out, 1)


def test_kv_cache_matches_transformers_cache(pair):
    hf, tm, _ = pair
    ids, mask, pos = cf.padded_batch()
    chunks = [20, 1, 1, 10, 16]  # prefill, single steps, chunks
    ref = hf_chunked(hf, ids, mask, pos, chunks)
    got = _C._testing.forward_with_cache(tm, ids, mask, chunks)
    real = mask.bool()
    assert (got[real] - ref[real]).abs().max().item() <= TOL


def test_greedy_text_matches_transformers(pair):
    hf, tm, _ = pair
    g = torch.Generator().manual_seed(7)
    prompt = torch.randint(6, cf.VOCAB, (30,), generator=g).tolist()  # continues past 32 positions
    ours = tm.generate([prompt], max_new_tokens=10, pad_id=0)
    with torch.no_grad():
        ref = hf.generate(torch.tensor([prompt]), max_new_tokens=10, do_sample=False, eos_token_id=None, pad_token_id=0)
    assert ours["tokens"][0] == ref[0, len(prompt):].tolist()


def edit_config(path, **changes):
    cfg = json.loads((path / "config.json").read_text())
    cfg.update(changes)
    (path / "config.json").write_text(json.dumps(cfg))


def test_settings_tandem_does_not_honour_are_refused(tmp_path):
    _, path = cf.save("llama2", tmp_path)
    edit_config(path, rope_scaling={"rope_type": "linear", "factor": 2.0})
    with pytest.raises(RuntimeError, match=r"config\.json: both rope_scaling and rope_parameters are set"):
        _C.load_causal_lm(str(path))
    edit_config(path, rope_parameters=None, rope_theta=10000.0, rope_scaling={"rope_type": "su", "factor": 2.0})
    with pytest.raises(RuntimeError, match=r'config\.json: RoPE scaling type "su" is not supported'):
        _C.load_causal_lm(str(path))
    edit_config(path, rope_scaling={"rope_type": "linear", "factor": 2.0, "colour": 1})
    with pytest.raises(RuntimeError, match=r'config\.json: rope_scaling\.colour is not a RoPE setting'):
        _C.load_causal_lm(str(path))
    edit_config(path, rope_scaling=None, hidden_act="swiglu_custom")
    with pytest.raises(RuntimeError, match=r'config\.json: hidden_act "swiglu_custom" is not supported'):
        _C.load_causal_lm(str(path))
    edit_config(path, hidden_act="silu", sliding_window=8)
    with pytest.raises(RuntimeError, match=r"config\.json: sliding_window is set but Llama attends globally"):
        _C.load_causal_lm(str(path))


def test_tensors_the_model_does_not_use_are_reported(tmp_path):
    # A Llama saved with o_proj/MLP biases but a config that drops attention_bias: the biases
    # would be ignored silently; tandem lists them instead.
    _, path = cf.save("llama_bias_gelu", tmp_path)
    edit_config(path, mlp_bias=False)
    with pytest.raises(RuntimeError, match=r"does not use \(a setting in config\.json may be missing\): "
                                           r"model\.layers\.0\.mlp\.down_proj\.bias"):
        _C.load_causal_lm(str(path))


def test_bfloat16_matches_transformers_in_bfloat16(pair):
    """bfloat16 weights and activations against transformers run in bfloat16: the median
    position within bfloat16 rounding (a MoE router may flip an expert at a few positions)."""
    hf, _, path = pair
    tm = _C.load_causal_lm(str(path), "cpu", "bfloat16")
    ids, mask, pos = cf.padded_batch()
    ref = hf_logits(hf.to(torch.bfloat16), ids, mask, pos).float()
    hf.to(torch.float32)
    got, _ = tm.forward(ids, mask)
    real = mask.bool()
    per_position = (got[real].float() - ref[real]).abs().amax(-1)
    assert per_position.median().item() <= 0.02 * ref[real].abs().max().item()


@pytest.mark.parametrize("family", ["llama2", "llama3.2", "mistral", "qwen2.5", "qwen3"])
def test_gguf_of_the_same_model_gives_the_same_logits(family, tmp_path):
    """The model written as a GGUF in llama.cpp's layout (gguf.GGUFWriter, float32 tensors)."""
    from gguf_export import write

    hf = cf.build(family)
    write(hf, family, tmp_path / "m.gguf")
    tm = _C.load_causal_lm(str(tmp_path / "m.gguf"), "cpu", "float32")
    ids, mask, pos = cf.padded_batch()
    ref = hf_logits(hf, ids, mask, pos)
    got, _ = tm.forward(ids, mask)
    real = mask.bool()
    assert (got[real] - ref[real]).abs().max().item() <= TOL


def test_an_explicit_longrope_factor_is_honoured(tmp_path):
    """Phi-3.5 files may give rope factor beside longrope's lists; HF then takes it for the
    attention factor instead of max / original context (a different scale of every logit)."""
    torch.manual_seed(0)
    cfg = transformers.Phi3Config(**{**cf.COMMON, "max_position_embeddings": 64}, partial_rotary_factor=0.75,
                                  original_max_position_embeddings=16, rope_parameters={
                                      "rope_type": "longrope", "rope_theta": 10000.0, "factor": 16.0,
                                      "short_factor": [1.0, 1.1, 1.2, 1.3, 1.5, 2.0], "long_factor": [1.0, 1.5, 2.0, 3.0, 4.0, 6.0]})
    hf = transformers.Phi3ForCausalLM(cfg).eval()
    hf.set_attn_implementation("eager")
    hf.save_pretrained(tmp_path / "phi")
    ids, mask, pos = cf.padded_batch()
    ref = hf_logits(hf, ids, mask, pos)
    got, _ = _C.load_causal_lm(str(tmp_path / "phi"), "cpu", "float32").forward(ids, mask)
    real = mask.bool()
    assert (got[real] - ref[real]).abs().max().item() <= TOL
