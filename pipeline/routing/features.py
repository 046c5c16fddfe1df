"""What a router may know about a question before the costly read.

Every feature is a number computed from the question, the index and one cheap
retrieval per retriever: how the question's scope compares with the budget, how
sure retrieval is (top score, margin to the runner-up), whether dense and BM25
agree, and the question's length and form. The cheap read's confidence is added
by the caller once that read is done (``with_cheap_read``).

``FEATURES_VERSION`` changes whenever a feature's meaning changes; a fitted
router records it and the names, and is refused when either no longer matches.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence

from lcrag.core.types import Hit
from lcrag.pipeline.strategies.base import Question, Toolkit
from lcrag.pipeline.strategies.long_context import scope_tokens

FEATURES_VERSION = 1

FORMS = ("what", "who", "when", "where", "which", "how", "why", "yesno", "other")
_YESNO = re.compile(r"^(is|are|was|were|do|does|did|can|could|has|have|had|will|would|should|may|might)\b")

MISSING = -1.0
"""The value of a confidence the reader did not give (no logprobs): below every real
probability, so a tree can still split on it and says so when it does."""

RETRIEVAL_FEATURES = ("dense_top", "dense_margin", "bm25_top", "bm25_margin", "agreement")
QUESTION_FEATURES = ("question_words", "multiple_choice", *tuple(f"form_{f}" for f in FORMS))
SCOPE_FEATURES = ("scope_log2_budget", "scope_fits")
CHEAP_READ_FEATURES = ("rag_confidence", "rag_declined")
FEATURE_NAMES: tuple[str, ...] = SCOPE_FEATURES + RETRIEVAL_FEATURES + QUESTION_FEATURES + CHEAP_READ_FEATURES
PRE_READ_NAMES: tuple[str, ...] = FEATURE_NAMES[: -len(CHEAP_READ_FEATURES)]


def question_form(text: str) -> str:
    """The question's form: its wh-word, "yesno" for an auxiliary-verb opening, else "other"."""
    lowered = text.strip().lower()
    for form in FORMS[:-2]:
        if re.search(rf"\b{form}\b", lowered[:80]):
            return form
    return "yesno" if _YESNO.match(lowered) else "other"


def question_features(question: Question) -> dict[str, float]:
    """Length and form of the question, and whether it offers options."""
    form = question_form(question.text)
    out = {"question_words": float(len(question.text.split())), "multiple_choice": 1.0 if question.options else 0.0}
    out.update({f"form_{f}": 1.0 if f == form else 0.0 for f in FORMS})
    return out


def _top_and_margin(hits: Sequence[Hit]) -> tuple[float, float]:
    if not hits:
        return 0.0, 0.0
    top = float(hits[0].score)
    second = float(hits[1].score) if len(hits) > 1 else 0.0
    return top, top - second


def retrieval_features(dense: Sequence[Hit], bm25: Sequence[Hit]) -> dict[str, float]:
    """Top score and margin per retriever, and their agreement: the share of the
    dense top-k that BM25 also ranks in its top-k (by chunk)."""
    dense_top, dense_margin = _top_and_margin(dense)
    bm25_top, bm25_margin = _top_and_margin(bm25)
    # BM25 scores grow with the query's length and the corpus; the margin relative to
    # the top score is comparable across questions and corpora.
    relative = bm25_margin / bm25_top if bm25_top > 0 else 0.0
    dense_ids, bm25_ids = {h.key for h in dense}, {h.key for h in bm25}
    agreement = len(dense_ids & bm25_ids) / len(dense_ids) if dense_ids else 0.0
    return {
        "dense_top": dense_top, "dense_margin": dense_margin,
        "bm25_top": math.log1p(max(bm25_top, 0.0)), "bm25_margin": relative, "agreement": agreement,
    }


def scope_features(scope_tokens: int, budget: int) -> dict[str, float]:
    """How the question's scope compares with the context budget: log2 of the ratio
    (0 = exactly the budget), and whether it fits."""
    ratio = max(scope_tokens, 1) / max(budget, 1)
    return {"scope_log2_budget": math.log2(ratio), "scope_fits": 1.0 if scope_tokens <= budget else 0.0}


def pre_read_features(question: Question, tools: Toolkit) -> dict[str, float]:
    """Everything known before any read: scope, retrieval and question features."""
    k = tools.config.rag_k
    dense = tools.corpus.search(question.text, k=k, mode="dense")
    bm25 = tools.corpus.search(question.text, k=k, mode="bm25")
    out = scope_features(scope_tokens(question, tools), tools.budget)
    out |= retrieval_features(dense, bm25)
    out |= question_features(question)
    return out


def with_cheap_read(features: Mapping[str, float], confidence: float | None, declined: bool) -> dict[str, float]:
    """The pre-read features plus what the cheap read (rag) said about itself."""
    return dict(features) | {
        "rag_confidence": MISSING if confidence is None else float(confidence),
        "rag_declined": 1.0 if declined else 0.0,
    }
