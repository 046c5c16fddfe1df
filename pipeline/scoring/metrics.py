"""Answer quality metrics as pure functions, with the SQuAD normalisation
(lower-case, strip punctuation and the articles a/an/the, fold white space),
which the official HotpotQA evaluation uses too."""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Sequence

_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCTUATION = set(string.punctuation)


def normalize_answer(text: str) -> str:
    text = text.lower()
    text = "".join(ch for ch in text if ch not in _PUNCTUATION)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def exact_match(prediction: str, gold: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(gold))


def token_f1(prediction: str, gold: str) -> float:
    pred, ref = normalize_answer(prediction).split(), normalize_answer(gold).split()
    if not pred or not ref:
        return float(pred == ref)
    common = Counter(pred) & Counter(ref)
    overlap = sum(common.values())
    if overlap == 0:
        return 0.0
    precision, recall = overlap / len(pred), overlap / len(ref)
    return 2 * precision * recall / (precision + recall)


def answer_recall(prediction: str, gold: str) -> float:
    """1 when the normalised gold answer appears inside the normalised prediction
    (small models often answer in a sentence; EM would call that wrong)."""
    g = normalize_answer(gold)
    return float(bool(g) and f" {g} " in f" {normalize_answer(prediction)} ")


def best_over_golds(metric, prediction: str, golds: Sequence[str]) -> float:
    """SQuAD scores a prediction against its best-matching gold answer."""
    return max((metric(prediction, g) for g in golds), default=0.0)
