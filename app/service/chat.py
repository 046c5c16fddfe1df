"""What the OpenAI-compatible routes read and write: the request and response
bodies, how a conversation becomes one question, and the numbered sources
appended to an answer.

A chat request is a conversation; lcrag answers questions. The last message
(a user's) is the question. Earlier user and assistant messages are context a
follow-up question may need ("and how tall is it?"), so the newest of them are
written above the question, within a share of the question's limits:

- at most ``service.chat_history_turns`` earlier messages, taken newest first;
- together at most ``service.chat_history_share`` of ``max_question_tokens``
  (the reader's tokens) and of ``max_question_chars``, and never so many that
  the whole question passes either limit; the first message that does not fit
  ends the walk, so the kept messages are always the newest, without gaps;
- system and developer messages are left out (the reader has lcrag's own
  instructions), so are tool messages and empty ones; an assistant message's
  "Sources:" list (appended by this API) is cut off before it is counted.

The composed text is the question the strategy retrieves with and reads, and
what the ledger row records; the response says how many earlier messages were
kept (``lcrag.history``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, create_model

from lcrag.app.service.openai_errors import MODEL_PREFIX, OpenAIError, model_id
from lcrag.app.service.querying import QuestionTooLong
from lcrag.app.service.schemas import MIN_BUDGET_TOKENS, Citation, RequestLimits, Timings, Tokens

HISTORY_OPENING = "Earlier in this conversation:"
QUESTION_OPENING = "The question now:"
ROLE_NAMES = {"user": "User", "assistant": "Assistant"}
SOURCES_OPENING = "\n\nSources:\n"
MAX_LISTED_SOURCES = 20
EXCERPT_CHARS = 100
MAX_MESSAGES = 2000
TEXT_PARTS = ("text", "input_text")


# ------------------------------------------------------------------ requests


class ContentPart(BaseModel):
    """One part of a message's content; only text parts are read."""

    model_config = ConfigDict(extra="allow")
    type: str
    text: str | None = None


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")  # name, tool_calls, ...: accepted, not read
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[ContentPart] | None = None


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")
    include_usage: StrictBool = False


class _ChatBase(BaseModel):
    # OpenAI's clients send sampling parameters (temperature, max_tokens, ...) and
    # more; they are accepted and not read: the reader's configuration decides.
    model_config = ConfigDict(extra="allow")

    model: str = Field(min_length=1, max_length=200, description="A model of GET /v1/models: lcrag-STRATEGY.")
    messages: list[ChatMessage] = Field(
        min_length=1, max_length=MAX_MESSAGES,
        description="The conversation; the last message, a user's, is the question.",
    )
    stream: StrictBool | None = Field(default=False, description="Server-sent events, OpenAI's chunk format.")
    stream_options: StreamOptions | None = None
    n: StrictInt | None = Field(default=None, description="Only 1.")


def chat_request_model(limits: RequestLimits) -> type[BaseModel]:
    """The ``POST /v1/chat/completions`` body, with lcrag's own per-question
    settings under ``lcrag`` (the ``openai`` client sends them with ``extra_body``)."""
    options = create_model(
        "LcragChatOptions",
        __config__=ConfigDict(extra="forbid", strict=True),
        k=(int | None, Field(default=None, ge=1, le=limits.max_k, description="Top-k for this question.")),
        budget_tokens=(
            int | None,
            Field(default=None, ge=MIN_BUDGET_TOKENS, le=limits.max_budget_tokens, description="Context tokens."),
        ),
    )
    return create_model(
        "ChatCompletionRequest",
        __base__=_ChatBase,
        lcrag=(options | None, Field(default=None, description="lcrag's settings for this question (optional).")),
    )


@dataclass(frozen=True)
class Conversation:
    question: str  # the last user message's text
    earlier: tuple[tuple[str, str], ...]  # (role, text) of earlier user and assistant messages, oldest first
    question_index: int  # where the question is in ``messages`` (for error parameters)


@dataclass(frozen=True)
class Ask:
    """One question as ``QueryService.answer`` takes it."""

    question: str
    strategy: str
    k: int | None = None
    budget_tokens: int | None = None


def chat_limits(limits: RequestLimits) -> RequestLimits:
    """The query limits without the strategies that read only a request's gold evidence:
    a chat conversation carries none, so the oracle is no model here."""
    kept = tuple(n for n in limits.strategies if n not in limits.evidence_strategies)
    return replace(limits, strategies=kept, evidence_strategies=())


def strategy_of(model: str, limits: RequestLimits) -> str:
    """The strategy a model id names; 404 for any other id."""
    name = model[len(MODEL_PREFIX):] if model.startswith(MODEL_PREFIX) else None
    if name not in limits.strategies:
        shown = model if len(model) <= 80 else model[:80] + "…"
        raise OpenAIError(404, f"the model {shown!r} does not exist here; GET /v1/models lists them "
                               f"({', '.join(model_id(s) for s in limits.strategies)})", "model", "model_not_found")
    return name


def _text(message: ChatMessage, index: int, strict: bool) -> str:
    content = message.content
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    texts = []
    for j, part in enumerate(content):
        if part.type in TEXT_PARTS:
            texts.append(part.text or "")
        elif strict:
            raise OpenAIError(400, f"messages[{index}].content[{j}] is {part.type!r}; only text is read",
                              f"messages.{index}.content.{j}", "unsupported_content")
    return "\n".join(texts)


def without_sources(text: str) -> str:
    """An assistant message without the sources list this API appended to it."""
    cut = text.rfind(SOURCES_OPENING + "[1] ")
    return text[:cut] if cut >= 0 else text


def read_conversation(request: Any, limits: RequestLimits) -> Conversation:
    """The question and the earlier turns of a validated request; 400 for what
    cannot be asked (the last message not a user's, a blank or too long question,
    non-text content in it, ``n`` other than 1)."""
    if request.n not in (None, 1):
        raise OpenAIError(400, "n must be 1: one answer per question", "n", "unsupported_value")
    messages = request.messages
    last = len(messages) - 1
    if messages[last].role != "user":
        raise OpenAIError(400, f"the last message must be the user's question, not a {messages[last].role!r} message",
                          "messages", "last_message_not_user")
    question = _text(messages[last], last, strict=True).strip()
    param = f"messages.{last}.content"
    if not question:
        raise OpenAIError(400, "the question (the last user message) is blank", param, "empty_question")
    if len(question) > limits.max_question_chars:
        raise OpenAIError(400, f"the question is {len(question)} characters long; shorten it to at most "
                               f"{limits.max_question_chars}", param, "question_too_long")
    earlier = []
    for index, message in enumerate(messages[:last]):
        if message.role not in ROLE_NAMES:
            continue
        text = _text(message, index, strict=False)
        if message.role == "assistant":
            text = without_sources(text)
        if text.strip():
            earlier.append((message.role, text))
    for _index, text in [(last, question), *((i, t) for i, (_, t) in enumerate(earlier))]:
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise OpenAIError(400, "messages must be valid Unicode text (no lone surrogates)", "messages",
                              "invalid_text") from None
    return Conversation(question, tuple(earlier), last)


@dataclass(frozen=True)
class Composed:
    text: str  # the question as asked: the kept earlier messages, then the question
    kept: int  # earlier messages kept
    earlier: int  # earlier user and assistant messages the request carried


def render(turns: list[str], question: str) -> str:
    if not turns:
        return question
    return "\n".join([HISTORY_OPENING, *turns, "", QUESTION_OPENING, question])


def compose_question(conversation: Conversation, count_tokens: Callable[[str], int], max_tokens: int,
                     max_chars: int, turns: int, share: float) -> Composed:
    """The question with as many of the newest earlier messages as the limits
    leave room for (see the module's notes). ``QuestionTooLong`` when the question
    alone is over ``max_tokens``. Blocking with a remote reader (token counts)."""
    question = conversation.question
    question_tokens = count_tokens(question)
    if question_tokens > max_tokens:
        raise QuestionTooLong(question_tokens, max_tokens)
    offered = len(conversation.earlier)
    candidates = conversation.earlier[-turns:] if turns else ()
    if not candidates or share <= 0:
        return Composed(question, 0, offered)
    frame = render(["x"], question)  # the openings and line breaks around the kept messages
    token_room = min(int(share * max_tokens), max_tokens - count_tokens(frame))
    char_room = min(int(share * max_chars), max_chars - len(frame))
    kept: list[str] = []
    for role, text in reversed(candidates):  # newest first
        if len(text) > char_room:  # cheap test first: a long message is never tokenized
            break
        line = f"{ROLE_NAMES[role]}: {' '.join(text.split())}"
        cost_chars, cost_tokens = len(line) + 1, count_tokens(line) + 1
        if cost_chars > char_room or cost_tokens > token_room:
            break
        char_room -= cost_chars
        token_room -= cost_tokens
        kept.append(line)
    kept.reverse()
    text = render(kept, question)
    # token counts of parts need not add up to the whole's: check it, drop the oldest until it fits
    while kept and (len(text) > max_chars or count_tokens(text) > max_tokens):
        kept.pop(0)
        text = render(kept, question)
    return Composed(text, len(kept), offered)


# ----------------------------------------------------------------- responses


def excerpt(text: str, limit: int = EXCERPT_CHARS) -> str:
    shown = " ".join(text[: limit * 2].split())
    return shown if len(shown) <= limit and len(text) <= limit * 2 else shown[:limit].rstrip() + "…"


def sources_text(citations: list[Citation]) -> str:
    """The numbered sources a chat UI shows under the answer ("" without any),
    numbered as the passages were in the reader's prompt."""
    if not citations:
        return ""
    lines = []
    for number, citation in enumerate(citations[:MAX_LISTED_SOURCES], 1):
        # the title when it says more than the document's name (a file's title is often its name)
        name = citation.doc_id if not citation.title or citation.title in citation.doc_id else (
            f"{citation.doc_id} ({citation.title})")
        lines.append(f"[{number}] {name} — {excerpt(citation.text)}")
    if len(citations) > MAX_LISTED_SOURCES:
        lines.append(f"… and {len(citations) - MAX_LISTED_SOURCES} more (the response's lcrag.citations has every one)")
    return SOURCES_OPENING + "\n".join(lines)


class PromptTokensDetails(BaseModel):
    cached_tokens: int = Field(description="Prompt tokens the reader served from its prefix cache (0 when it does not say).")


class Usage(BaseModel):
    prompt_tokens: int = Field(description="Every reader call's prompt tokens (a strategy may read more than once).")
    completion_tokens: int
    total_tokens: int
    prompt_tokens_details: PromptTokensDetails


class HistoryInfo(BaseModel):
    kept: int = Field(description="Earlier messages written above the question.")
    earlier: int = Field(description="Earlier user and assistant messages the request carried.")


class LcragInfo(BaseModel):
    """What /v1/query answers besides the answer; OpenAI's clients ignore it."""

    strategy: str
    route: str
    fell_back: bool | None
    citations: list[Citation]
    tokens: Tokens
    timings_ms: Timings
    generation: str
    run_id: str
    ledger_row_id: str
    history: HistoryInfo
    streamed: bool | None = Field(
        default=None, description="Streams only: whether the answer came as the reader wrote it (else in one piece).")


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class ChatChoice(BaseModel):
    index: int = 0
    message: AssistantMessage
    finish_reason: Literal["stop"] = "stop"
    logprobs: None = None


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    system_fingerprint: str = Field(description="The index generation that answered.")
    choices: list[ChatChoice]
    usage: Usage
    lcrag: LcragInfo


class OpenAIErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None
    code: str | None


class OpenAIErrorBody(BaseModel):
    """Errors of the OpenAI-compatible routes (their 422s are 400s)."""

    error: OpenAIErrorDetail


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "lcrag"
    description: str = Field(description="The strategy this model answers with.")


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


def usage_of(answered) -> Usage:
    tokens = answered.tokens
    return Usage(
        prompt_tokens=tokens.prompt, completion_tokens=tokens.completion, total_tokens=tokens.prompt + tokens.completion,
        prompt_tokens_details=PromptTokensDetails(cached_tokens=tokens.cached or 0),
    )


def lcrag_info(answered, composed: Composed, streamed: bool | None = None) -> LcragInfo:
    return LcragInfo(
        strategy=answered.strategy, route=answered.route, fell_back=answered.fell_back, citations=answered.citations,
        tokens=answered.tokens, timings_ms=answered.timings_ms, generation=answered.generation, run_id=answered.run_id,
        ledger_row_id=answered.ledger_row_id, history=HistoryInfo(kept=composed.kept, earlier=composed.earlier),
        streamed=streamed,
    )


def completion(completion_id: str, created: int, model: str, answered, composed: Composed) -> ChatCompletion:
    """The whole answer: the reader's text with the sources under it."""
    return ChatCompletion(
        id=completion_id, created=created, model=model, system_fingerprint=answered.generation,
        choices=[ChatChoice(message=AssistantMessage(content=answered.answer + sources_text(answered.citations)))],
        usage=usage_of(answered), lcrag=lcrag_info(answered, composed),
    )


def chunk(completion_id: str, created: int, model: str, delta: dict | None = None, finish: str | None = None,
          **extra: Any) -> dict:
    """One ``chat.completion.chunk``; ``choices`` is empty for the usage chunk (``delta`` None, no finish)."""
    body: dict[str, Any] = {"id": completion_id, "object": "chat.completion.chunk", "created": created, "model": model}
    if delta is not None or finish is not None:
        body["choices"] = [{"index": 0, "delta": delta or {}, "logprobs": None, "finish_reason": finish}]
    else:
        body["choices"] = []
    body.update(extra)
    return body
