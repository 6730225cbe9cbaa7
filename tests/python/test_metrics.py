"""Metrics against independent references: ROUGE against the rouge-score package on real
(reference, prediction) pairs from ../shared/data, the Porter stemmer against NLTK's, and CoQA
F1/EM against cases worked by hand from the official script's definition."""
from __future__ import annotations

import json
import re

import pytest

import tandem
from tandem import _C

rouge_scorer = pytest.importorskip("rouge_score.rouge_scorer", reason="rouge-score is a test requirement")


def real_pairs(n_each: int = 300) -> list[tuple[str, str]]:
    """XSum references vs the article's lead sentence, CNN/DM highlights vs its first three
    sentences: real, overlapping-but-different text, the way summaries relate to references."""
    root = tandem.data_root()
    pairs = []
    for line in list(open(root / "xsum" / "test.jsonl"))[:n_each]:
        r = json.loads(line)
        lead = r["document"].split("\n")[0]
        pairs.append((r["summary"], lead))
    for line in list(open(root / "cnn_dailymail" / "validation.jsonl"))[:n_each]:
        r = json.loads(line)
        sents = re.split(r"(?<=[.!?])\s+", r["article"])
        pairs.append((r["highlights"], "\n".join(sents[:3])))  # newlines: ROUGE-Lsum sees sentences
    return pairs


def test_rouge_matches_rouge_score_on_600_real_pairs():
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL", "rougeLsum"], use_stemmer=True)
    pairs = real_pairs()
    assert len(pairs) >= 500
    worst = 0.0
    for ref, pred in pairs:
        ours = _C.rouge(ref, pred, True)
        theirs = scorer.score(ref, pred)
        for k in ("rouge1", "rouge2", "rougeL", "rougeLsum"):
            for field in ("precision", "recall", "fmeasure"):
                worst = max(worst, abs(getattr(ours[k], field) - getattr(theirs[k], field)))
    assert worst <= 1e-6, worst


def test_rouge_edge_cases_match_rouge_score():
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL", "rougeLsum"], use_stemmer=True)
    cases = [("", "anything"), ("a b c", ""), ("The cats are running!", "the cat runs"), ("İstanbul 3°K", "istanbul 3k"),
             ("one\n\ntwo three\nfour", "two\nfour one three"), ("x x x y", "x y y y")]
    for ref, pred in cases:
        ours, theirs = _C.rouge(ref, pred, True), scorer.score(ref, pred)
        for k in theirs:
            assert ours[k].fmeasure == pytest.approx(theirs[k].fmeasure, abs=1e-9), (ref, pred, k)


def test_porter_stemmer_matches_nltk_on_every_word_of_real_text():
    from nltk.stem import porter

    stemmer = porter.PorterStemmer()
    words = set()
    for line in list(open(tandem.data_root() / "xsum" / "test.jsonl"))[:400]:
        words.update(re.findall(r"[a-z0-9]+", json.loads(line)["document"].lower()))
    words.update(["skies", "dying", "ties", "cried", "agreed", "hopping", "filing", "generalization", "conditional",
                  "rational", "valenci", "hesitanci", "digitizer", "conformabli", "radicalli", "differentli", "vileli",
                  "analogousli", "vietnamization", "predication", "operator", "feudalism", "decisiveness", "hopefulness",
                  "callousness", "formaliti", "sensitiviti", "sensibiliti", "triplicate", "formative", "formalize",
                  "electriciti", "electrical", "hopeful", "goodness", "revival", "allowance", "inference", "airliner",
                  "gyroscopic", "adjustable", "defensible", "irritant", "replacement", "adjustment", "dependent",
                  "adoption", "homologou", "communism", "activate", "angulariti", "homologous", "effective", "bowdlerize",
                  "probate", "rate", "cease", "controll", "roll", "yyy", "syzygy", "fully", "logi", "analogi"])
    assert len(words) > 5000
    bad = [(w, _C.porter_stem(w), stemmer.stem(w)) for w in sorted(words) if _C.porter_stem(w) != stemmer.stem(w)]
    assert not bad, bad[:20]


# CoQA cases worked by hand from the official v1.0 script: normalise = lowercase, drop
# punctuation, drop the words a/an/the, collapse whitespace; F1 over the word multisets.
@pytest.mark.parametrize("gold,pred,f1,em", [
    ("white", "White.", 1.0, 1.0),                   # case and punctuation vanish
    ("the white cat", "a white cat", 1.0, 1.0),      # articles vanish
    ("white cat", "white", 2 * 1.0 * 0.5 / 1.5, 0.0),  # P = 1, R = 1/2
    ("in the park", "park bench", 2 * 0.5 * 0.5 / 1.0, 0.0),  # common {park}: P = 1/2, R = 1/2
    ("three", "four", 0.0, 0.0),
    ("the", "a", 1.0, 1.0),                          # both normalise to empty: equal
    ("the", "cat", 0.0, 0.0),                        # empty gold vs a word
])
def test_coqa_f1_and_em_by_hand(gold, pred, f1, em):
    assert _C.coqa_f1(gold, pred) == pytest.approx(f1)
    assert _C.coqa_exact(gold, pred) == em


def test_coqa_turn_score_leave_one_out_by_hand():
    # Golds g1 = "white", g2 = "white cat", g3 = "a cat"; prediction "white cat".
    # Leave out g1: max(F1 vs g2 = 1, vs g3 = 2/3) = 1.  Leave out g2: max(vs g1 = 2/3, vs g3 = 2/3) = 2/3.
    # Leave out g3: max(vs g1 = 2/3, vs g2 = 1) = 1.   F1 = (1 + 2/3 + 1) / 3 = 8/9.  EM = (1 + 0 + 1) / 3.
    f1, em = _C.coqa_turn_score(["white", "white cat", "a cat"], "white cat")
    assert f1 == pytest.approx(8 / 9)
    assert em == pytest.approx(2 / 3)
    assert _C.coqa_turn_score(["white"], "white cat") == pytest.approx((2 / 3, 0.0))


def test_ptb_detokenization_keeps_rouge_tokens_and_splits_sentences():
    tok = "Gary Locke will be confirmed as Kilmarnock boss on Friday . The club went unbeaten during Locke 's first six games . A ` gold digger ' he said"
    out = _C.detokenize_ptb(tok)
    assert out.split("\n")[1] == "The club went unbeaten during Locke's first six games."
    assert "'gold digger'" in out
    assert _C.rouge_tokenize(out) == _C.rouge_tokenize(tok)
