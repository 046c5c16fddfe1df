"""Request and response bodies of the query API.

Every limit a request can break is a constraint here, so it is refused by
validation (422 naming the field) before any work starts, and the OpenAPI
schema states the same limits clients are held to. The one exception is the
question's length in reader tokens: only the reader can count those, so the
answering code checks it first and answers the same kind of 422
(``querying.QuestionTooLong``). The query body's limits come from the
configuration, so its model is built per application.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, create_model, field_validator, model_validator


@dataclass(frozen=True)
class RequestLimits:
    """What one question may ask for."""

    strategies: tuple[str, ...]
    default_strategy: str
    max_question_chars: int
    max_question_tokens: int  # checked with the reader's tokenizer when answering, not by the schema
    max_k: int
    max_budget_tokens: int  # already capped by the reader's window
    evidence_strategies: tuple[str, ...] = ()  # strategies that read only the request's gold evidence (the oracle)

    def __post_init__(self) -> None:
        if not self.strategies:
            raise ValueError("at least one strategy must be available")
        if self.default_strategy not in self.strategies:
            raise ValueError(f"default strategy {self.default_strategy!r} is not among {self.strategies}")
        if self.max_question_chars < 1 or self.max_question_tokens < 1 or self.max_k < 1 or self.max_budget_tokens < 64:
            raise ValueError(f"limits out of range: {self}")


MIN_BUDGET_TOKENS = 64
MAX_EVIDENCE_ITEMS = 16
MAX_EVIDENCE_CHARS = 20_000  # per passage; the budget cuts what the reader is given, as for any context


class EvidenceItem(BaseModel):
    """One piece of gold evidence a request gives the oracle: a passage, or a document of
    the index to read whole."""

    model_config = ConfigDict(extra="forbid", strict=True)
    text: str = Field(default="", max_length=MAX_EVIDENCE_CHARS, description="A passage of gold evidence.")
    doc_id: str = Field(default="", max_length=300, description="The document it comes from, or (without text) "
                        "a document of the index to read whole.")

    @model_validator(mode="after")
    def _names_something(self) -> EvidenceItem:
        if not self.text.strip() and not self.doc_id.strip():
            raise ValueError("evidence needs a passage text or a document id")
        return self


class _QueryBase(BaseModel):
    # Strict: JSON types as written, so `true` or `1.0` or "3" is no top-k.
    model_config = ConfigDict(extra="forbid", strict=True)

    @field_validator("question", check_fields=False)
    @classmethod
    def _encodable(cls, value: str) -> str:
        # JSON can carry lone surrogates ("\ud800"); they cannot be stored or sent on.
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("question must be valid Unicode text (no lone surrogates)") from None
        return value


def query_request_model(limits: RequestLimits) -> type[BaseModel]:
    """The ``POST /v1/query`` body, with ``limits`` as schema constraints."""

    def evidence_given(cls, evidence: list, info: ValidationInfo) -> list:
        # the oracle with nothing to read would answer closed-book under the oracle's name
        strategy = info.data.get("strategy")
        if strategy in limits.evidence_strategies and not evidence:
            raise ValueError(f"strategy {strategy!r} reads only the gold evidence the request gives: "
                             "add evidence (passages or document ids), or choose another strategy")
        return evidence

    strategy_type = Literal[limits.strategies]  # type: ignore[name-defined]  # a Literal of the configured strategy names, built at run time
    return create_model(
        "QueryRequest",
        __base__=_QueryBase,
        __validators__={"evidence_given": field_validator("evidence")(evidence_given)},
        question=(
            str,
            Field(
                min_length=1, max_length=limits.max_question_chars, pattern=r"\S",
                description=f"The question; not blank, at most {limits.max_question_chars} characters and "
                f"{limits.max_question_tokens} tokens of the reader's tokenizer.",
                examples=["Which volcano in Sicily is very active?"],
            ),
        ),
        strategy=(
            strategy_type,
            Field(default=limits.default_strategy, description="How the context is chosen (see GET /v1/strategies)."),
        ),
        k=(
            int | None,
            Field(
                default=None, ge=1, le=limits.max_k,
                description="Top-k for this question (chunks, or long units for longrag); "
                "strategies that read whole documents ignore it.",
            ),
        ),
        budget_tokens=(
            int | None,
            Field(
                default=None, ge=MIN_BUDGET_TOKENS, le=limits.max_budget_tokens,
                description="Context tokens for this question (reader's tokenizer); default: the configured budget.",
            ),
        ),
        evidence=(
            list[EvidenceItem],
            Field(
                default_factory=list, max_length=MAX_EVIDENCE_ITEMS, validate_default=True,
                description="Gold evidence for the oracle control, which reads only this (passages, or document "
                "ids of the index read whole); oracle against rag on the same question shows what retrieval "
                "loses. Other strategies ignore it.",
            ),
        ),
    )


class Citation(BaseModel):
    doc_id: str
    title: str
    start: int = Field(description="Character offset of the passage in the document's text.")
    end: int
    text: str


class Tokens(BaseModel):
    context: int = Field(description="Tokens of the passages read.")
    prompt: int = Field(description="Prompt tokens the reader charged (every call).")
    completion: int
    budget: int = Field(description="The context budget this question had.")
    cached: int | None = Field(
        default=None, description="Prompt tokens the reader served from its prefix cache, where it reports them."
    )


class Timings(BaseModel):
    retrieval: float
    reading: float
    queued: float = Field(description="Time spent waiting for a free slot.")
    total: float = Field(description="Wall time in the server, waiting included.")


class QueryResponse(BaseModel):
    answer: str
    strategy: str
    route: str = Field(description="The path that produced the answer, e.g. rag, lc, rag->lc.")
    fell_back: bool | None = Field(description="self-route and auto: whether retrieval gave up and lc answered.")
    citations: list[Citation]
    tokens: Tokens
    timings_ms: Timings
    generation: str = Field(description="The index generation that answered.")
    ledger_row_id: str
    run_id: str


class StrategyInfo(BaseModel):
    name: str
    description: str
    uses_k: bool = Field(description="Whether the request's k changes what it reads.")


class StrategiesResponse(BaseModel):
    default: str
    strategies: list[StrategyInfo]


class HealthResponse(BaseModel):
    status: Literal["ok", "degraded"]
    generation: str
    reader_reachable: bool
    model: str
    in_flight: int
    queued: int


class LedgerEntry(BaseModel):
    """One ledger row (one question answered by one strategy)."""

    row_id: str
    run_id: str
    created_at: float
    question_id: str
    question: str
    strategy: str
    route: str
    answer: str
    index_id: str
    model: str
    context_tokens: int
    prompt_tokens: int
    completion_tokens: int
    retrieval_ms: float
    reading_ms: float
    context_cut: bool
    calls: int
    fell_back: bool | None
    dataset: str | None
    em: float | None
    f1: float | None
    error: str | None


class RunsResponse(BaseModel):
    rows: list[LedgerEntry] = Field(description="Newest first.")
    limit: int
    offset: int
    total: int


class ErrorBody(BaseModel):
    error: str


def ledger_entry(row) -> LedgerEntry:
    return LedgerEntry(**{name: getattr(row, name) for name in LedgerEntry.model_fields})

