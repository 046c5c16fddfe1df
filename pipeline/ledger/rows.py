"""The ledger's rows: frozen dataclasses, validated on construction, one per table
(``LedgerRow`` for answers, ``RetrievalRow`` for retrieval-only judgements,
``FeatureRow`` for routing features), and each table's column order."""

from __future__ import annotations

import hashlib
import json
import math
import time
import uuid
from dataclasses import dataclass, fields
from typing import Any

# What kind of answers a question has (``LedgerRow.answer_kind``): the kinds the verdict
# judges apart (``statistics.verdict.KINDS``, one metric each; a test keeps the two in step).
MULTIPLE_CHOICE, EXACT, FREE_TEXT, UNANSWERABLE = "multiple_choice", "exact", "free_text", "unanswerable"
ANSWER_KINDS: tuple[str, ...] = (MULTIPLE_CHOICE, EXACT, FREE_TEXT, UNANSWERABLE)


def _as_ids(name: str, value: Any, optional: bool = False) -> tuple[str, ...] | None:
    if value is None and optional:
        return None
    if isinstance(value, (str, bytes)) or value is None:
        raise ValueError(f"{name} must be a sequence of strings, got {value!r}")
    items = tuple(value)
    for item in items:
        if not isinstance(item, str):
            raise ValueError(f"{name} must hold strings, got {item!r} in {value!r}")
    return items


@dataclass(frozen=True)
class LedgerRow:
    """What one strategy did with one question: the answer, what it read, what it
    cost and (once scored) how good it was. ``route`` is the strategy that
    actually answered (self-route -> "rag" or "lc"), as text to show; ``route_steps``
    is the same path as data (``("self-route", "rag", "lc")``) and ``route_reason``
    the reason a route records ("no confidence").

    Where an evaluation set placed a question's evidence, the row says so as data:
    ``evidence_position`` (position sweeps), ``needle_depths`` and ``haystack_length``
    (needle tests); ``answer_kind`` is the kind of answer the data set expects
    (``ANSWER_KINDS``). Rows recorded before these columns existed were filled once
    from their ids and routes (``migrations.m009_structure_columns``)."""

    run_id: str
    question_id: str
    question: str
    strategy: str
    route: str
    answer: str
    index_id: str
    config_hash: str
    model: str
    retrieved_ids: tuple[str, ...]
    used_ids: tuple[str, ...]
    context_tokens: int
    prompt_tokens: int
    completion_tokens: int
    retrieval_ms: float
    reading_ms: float
    context_cut: bool
    calls: int = 1
    fell_back: bool | None = None
    dataset: str | None = None
    gold_answers: tuple[str, ...] | None = None
    em: float | None = None
    f1: float | None = None
    recall: float | None = None
    abstained: bool | None = None
    error: str | None = None
    answerable: bool | None = None  # set where questions may be unanswerable (SQuAD 2.0)
    choice: str | None = None  # multiple choice: the option letter(s) parsed from the answer; None = unparseable
    choice_prob: float | None = None  # the reader's probability of that letter as its first answer token
    cached_tokens: int | None = None  # prompt tokens the server served from its prefix cache, where it says
    confidence: float | None = None  # the reader's confidence in the reply (readers.base.mean_token_probability)
    scope_read: float | None = None  # share of the scope's text the reader was given (lc below 1 when it cut the middle)
    evidence_position: int | None = None  # position sweeps: the slot the evidence was put in; None = not a sweep
    needle_depths: tuple[int, ...] | None = None  # needle tests: depth (%) of each hidden fact, as the question names them
    haystack_length: int | None = None  # needle tests: the haystack's length (words of filler)
    answer_kind: str | None = None  # one of ANSWER_KINDS, as the data set says; None = not known (ad hoc questions)
    route_steps: tuple[str, ...] | None = None  # strategies the route passed through: ("self-route", "rag", "lc")
    route_reason: str | None = None  # the reason the route records, where it does ("no confidence")
    row_id: str = ""
    created_at: float = 0.0

    @property
    def prefill_tokens(self) -> int:
        """Prompt tokens the server computed, not served from its prefix cache; a row
        that does not say what was cached counts every prompt token."""
        return max(0, self.prompt_tokens - (self.cached_tokens or 0))

    def __post_init__(self) -> None:
        for name in ("run_id", "question_id", "strategy"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                raise ValueError(f"{name} must be a non-empty string, got {value!r}")
        for name in ("context_tokens", "prompt_tokens", "completion_tokens", "calls"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be a non-negative int, got {value!r}")
        for name in ("retrieval_ms", "reading_ms"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0 or math.isinf(value):
                raise ValueError(f"{name} must be a finite non-negative number, got {value!r}")
        for name in ("em", "f1", "recall"):
            value = getattr(self, name)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0
            ):
                raise ValueError(f"{name} must be within [0, 1] when set, got {value!r}")
        for name in ("choice_prob", "confidence", "scope_read"):
            value = getattr(self, name)
            if value is not None and not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be within [0, 1] when set, got {value!r}")
        # Tuples, not lists: the row is frozen and hashable, and a str passed by
        # mistake would otherwise be split into characters.
        object.__setattr__(self, "retrieved_ids", _as_ids("retrieved_ids", self.retrieved_ids))
        object.__setattr__(self, "used_ids", _as_ids("used_ids", self.used_ids))
        object.__setattr__(self, "gold_answers", _as_ids("gold_answers", self.gold_answers, optional=True))
        object.__setattr__(self, "route_steps", _as_ids("route_steps", self.route_steps, optional=True))
        self._check_structure()
        if not isinstance(self.row_id, str):
            raise ValueError(f"row_id must be a string, got {self.row_id!r}")
        if not self.row_id:
            object.__setattr__(self, "row_id", uuid.uuid4().hex)
        if isinstance(self.created_at, bool) or not isinstance(self.created_at, (int, float)) or not self.created_at >= 0:
            raise ValueError(f"created_at must be a non-negative timestamp, got {self.created_at!r}")
        if self.created_at == 0:
            object.__setattr__(self, "created_at", time.time())

    def _check_structure(self) -> None:
        """The evidence placement, answer kind and route reason: types and ranges
        (``needle_depths`` as a tuple, None when it holds none)."""
        for name in ("evidence_position", "haystack_length"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
                raise ValueError(f"{name} must be a non-negative int when set, got {value!r}")
        depths = self.needle_depths
        if depths is not None:
            if not isinstance(depths, (tuple, list)) or not all(
                    isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in depths):
                raise ValueError(f"needle_depths must be non-negative ints (percentages), got {depths!r}")
            object.__setattr__(self, "needle_depths", tuple(depths) or None)
        if self.answer_kind is not None and self.answer_kind not in ANSWER_KINDS:
            raise ValueError(f"answer_kind must be one of {', '.join(ANSWER_KINDS)} or None, got {self.answer_kind!r}")
        if self.route_reason is not None and not isinstance(self.route_reason, str):
            raise ValueError(f"route_reason must be a string when set, got {self.route_reason!r}")


COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(LedgerRow))


@dataclass(frozen=True)
class RetrievalRow:
    """One query ranked by one retrieval method and judged against relevance labels
    (retrieval-only data sets such as BEIR): no reader, so no answer row."""

    run_id: str
    dataset: str
    query_id: str
    method: str  # e.g. hybrid/doc
    index_id: str
    k: int
    ndcg_at_10: float
    recall_at_k: float
    mrr: float
    retrieval_ms: float
    row_id: str = ""
    created_at: float = 0.0

    def __post_init__(self) -> None:
        for name in ("run_id", "dataset", "query_id", "method"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                raise ValueError(f"{name} must be a non-empty string, got {value!r}")
        if isinstance(self.k, bool) or not isinstance(self.k, int) or self.k < 1:
            raise ValueError(f"k must be a positive int, got {self.k!r}")
        for name in ("ndcg_at_10", "recall_at_k", "mrr"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be within [0, 1], got {value!r}")
        if not self.retrieval_ms >= 0 or math.isinf(self.retrieval_ms):
            raise ValueError(f"retrieval_ms must be a finite non-negative number, got {self.retrieval_ms!r}")
        if not self.row_id:
            object.__setattr__(self, "row_id", uuid.uuid4().hex)
        if self.created_at == 0:
            object.__setattr__(self, "created_at", time.time())


RETRIEVAL_COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(RetrievalRow))


@dataclass(frozen=True)
class FeatureRow:
    """What was known about one question of a run before its costly read (scope
    size, retrieval scores, question form), for fitting a router. ``features`` is a
    JSON object of numbers; one row per (run, question): its id is derived from
    them, so recording it twice stores it once."""

    run_id: str
    question_id: str
    dataset: str | None
    index_id: str
    features: str
    row_id: str = ""
    created_at: float = 0.0

    def __post_init__(self) -> None:
        for name in ("run_id", "question_id", "index_id"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                raise ValueError(f"{name} must be a non-empty string, got {value!r}")
        decoded = json.loads(self.features)
        if not isinstance(decoded, dict) or not all(isinstance(v, (int, float)) for v in decoded.values()):
            raise ValueError(f"features must be a JSON object of numbers, got {self.features[:200]!r}")
        if not self.row_id:
            key = f"{self.run_id}\x00{self.question_id}".encode()
            object.__setattr__(self, "row_id", "f-" + hashlib.sha1(key).hexdigest())
        if self.created_at == 0:
            object.__setattr__(self, "created_at", time.time())

    def values(self) -> dict[str, float]:
        return {k: float(v) for k, v in json.loads(self.features).items()}


FEATURE_COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(FeatureRow))
