"""Metrics computed by tandem's C++ core, exposed for notebooks and tests.

    >>> tandem.eval.rouge("The cat sat.", "A cat sat down.")["rougeL"].fmeasure
    >>> tandem.eval.coqa_turn_score(["white", "white cat"], "a white cat")   # (f1, em)
"""
from __future__ import annotations

from . import _C


def rouge(target: str, prediction: str, stem: bool = True) -> dict:
    """ROUGE-1/2/L/Lsum (precision, recall, fmeasure) as the rouge-score package computes them."""
    return _C.rouge(target, prediction, stem)


def rouge_tokenize(text: str, stem: bool = True) -> list[str]:
    """rouge-score's tokenisation: lowercase alphanumeric words, Porter-stemmed when longer than 3."""
    return _C.rouge_tokenize(text, stem)


def coqa_f1(gold: str, prediction: str) -> float:
    """Word-level F1 after the official CoQA normalisation."""
    return _C.coqa_f1(gold, prediction)


def coqa_turn_score(golds: list[str], prediction: str) -> tuple[float, float]:
    """(F1, EM) of one CoQA turn; with several gold answers, leave-one-out as in the official script."""
    return _C.coqa_turn_score(golds, prediction)
