"""tandem's byte-level BPE against the HF `tokenizers` library, on >= 2,000 real texts from
../shared/data, with SmolLM2's vocabulary (from its GGUF file and from a tokenizer.json)."""
from __future__ import annotations

import json

import pytest

tokenizers = pytest.importorskip("tokenizers", reason="tokenizers is a test requirement")
transformers = pytest.importorskip("transformers", reason="transformers is a test requirement")
from tokenizers import pre_tokenizers  # noqa: E402

import tandem  # noqa: E402
from tandem import _C  # noqa: E402
from conftest_models import smollm2_gguf  # noqa: E402

EDGE_CASES = [
    "<|im_start|>user\nHi  there!\n\n\tx<|im_end|>", "  leading", "trailing  ", "a\n\n\nb", "it's we'll I'M 'tis",
    "123 4567 ½ ٣ x2", "naïve café 日本語 🙂 \u00a0nbsp", "", " ", "\n", "tabs\t\tand  spaces   ", "a  50,000 b",
]


def real_texts(n: int = 2000) -> list[str]:
    root = tandem.data_root()
    texts = []
    with open(root / "xsum" / "test.jsonl") as f:
        for line in f:
            texts.append(json.loads(line)["document"])
    with open(root / "mmlu_pro" / "test.jsonl") as f:
        for line in f:
            r = json.loads(line)
            texts.append(r["question"] + "\n" + "\n".join(r["options"]))
            if len(texts) >= n:
                break
    assert len(texts) >= n, "fewer real texts than the parity check needs"
    return texts + EDGE_CASES


@pytest.fixture(scope="module")
def backend():
    path = smollm2_gguf()
    hf = transformers.AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    return hf.backend_tokenizer


def reference(backend, pre, tmp_path, name):
    """A `tokenizers.Tokenizer` with SmolLM2's vocab and the given pre-tokenizer, saved as JSON."""
    tok = tokenizers.Tokenizer.from_str(backend.to_str())
    tok.pre_tokenizer = pre
    path = tmp_path / f"{name}.json"
    tok.save(str(path))
    return tok, path


@pytest.fixture(scope="module")
def texts():
    return real_texts()


def assert_same(ours, ref, texts):
    got = ours.encode_batch(texts)
    want = [e.ids for e in ref.encode_batch(texts, add_special_tokens=False)]
    bad = [t for t, a, b in zip(texts, got, want) if a != b]
    assert not bad, f"{len(bad)} of {len(texts)} texts differ, first: {bad[0][:200]!r}"
    assert [ours.decode(ids) for ids in got] == texts  # round trip


def test_smollm2_gguf_vocab_matches_tokenizers(backend, texts, tmp_path_factory):
    # SmolLM2's tokenizer.json pre-tokenizes with Digits(individual) then ByteLevel; its GGUF
    # says the same with tokenizer.ggml.pre = "smollm".
    pre = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                   pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
    ref, json_path = reference(backend, pre, tmp_path_factory.mktemp("tok"), "smollm2")
    assert_same(_C.load_tokenizer(str(smollm2_gguf())), ref, texts)
    assert_same(_C.load_tokenizer(str(json_path)), ref, texts)


def test_gpt2_style_tokenizer_json_matches_tokenizers(backend, texts, tmp_path_factory):
    pre = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    ref, json_path = reference(backend, pre, tmp_path_factory.mktemp("tok"), "gpt2style")
    assert_same(_C.load_tokenizer(str(json_path)), ref, texts)


def test_special_tokens_and_ids():
    tok = _C.load_tokenizer(str(smollm2_gguf()))
    ids = tok.encode("<|im_start|>assistant")
    assert ids[0] == tok.token_to_id("<|im_start|>")
    assert tok.decode(ids, skip_special=True) == "assistant"
    assert (tok.bos_id, tok.eos_id, tok.vocab_size) == (1, 2, 49152)


def test_unsupported_tokenizer_files_are_clear_errors(tmp_path):
    bad = tmp_path / "tokenizer.json"
    bad.write_text(json.dumps({"model": {"type": "Unigram", "vocab": []}}))
    with pytest.raises(RuntimeError, match=r"tokenizer\.json: tokenizer model type \"Unigram\" is not supported \(readers: gguf/gpt2, gguf/llama, json/BPE, json/WordPiece, model/sentencepiece\)"):
        _C.load_tokenizer(str(bad))
    bad.write_text("{not json")
    with pytest.raises(RuntimeError, match=r"tokenizer\.json: not valid JSON"):
        _C.load_tokenizer(str(bad))
    with pytest.raises(RuntimeError, match="no such tokenizer file"):
        _C.load_tokenizer(str(tmp_path / "absent.json"))


def test_gemma3_sentencepiece_vocab_matches_tokenizers(texts):
    """Gemma 3's GGUF vocabulary (SentencePiece-style, scores + byte fallback) against the
    `tokenizers` BPE that transformers builds from the same file."""
    path = tandem.models.resolve("gemma3-270m")
    ref = transformers.AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name).backend_tokenizer
    extra = ["<start_of_turn>user\nhi<end_of_turn>", "  two leading", "a   b", "tab\there", "ünï©ødé ½ 日本語 🙂"]
    ours = _C.load_tokenizer(str(path))
    assert (ours.add_bos, ours.bos_id, ours.eos_id, ours.vocab_size) == (True, 2, 1, 262144)
    got = ours.encode_batch(texts + extra)
    want = [e.ids for e in ref.encode_batch(texts + extra, add_special_tokens=False)]
    bad = [t for t, a, b in zip(texts + extra, got, want) if a != b]
    assert not bad, f"{len(bad)} texts differ, first: {bad[0][:200]!r}"
    assert [ours.decode(ids) for ids in got] == texts + extra
    assert ours.encode_for_model("hi")[0] == 2


def test_smollm2s_own_jinja_template_is_rendered_in_cpp():
    """The Jinja chat template stored in SmolLM2's GGUF, rendered by transformers, against tandem's
    C++ rendering of the family it detects (ChatML with SmolLM's default system turn)."""
    path = tandem.models.resolve("smollm2-135m")
    ref = transformers.AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    tok = _C.load_tokenizer(str(path))
    assert _C.detect_chat_family(tok.chat_template) == "chatml"
    for msgs in ([{"role": "user", "content": "What is 2+2?"}],
                 [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
                  {"role": "assistant", "content": "Hello!"}, {"role": "user", "content": "2+2?"}]):
        want = ref.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
        assert tandem.text.chat_prompt(tok, msgs) == want
