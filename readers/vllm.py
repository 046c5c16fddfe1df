"""The reader: a vLLM server (or any OpenAI-compatible one) over HTTP.

Prompt and completion tokens are the server's own ``usage`` counts. Context
budgets are measured with the served model's tokenizer: loaded from the local
converted weights when they are here, otherwise asked of the server
(``/tokenize``), so a remote GPU server is only a ``base_url`` away.

``stream`` reads with the server's ``stream: true`` (server-sent events) and
hands the answer over as it arrives, shaped as ``read`` would return it whole
(see ``ReplyShaper``); closing the stream closes the HTTP response, and the
server aborts a request whose client has gone.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from collections.abc import Generator, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from lcrag.core.paths import anchored
from lcrag.readers.base import ANSWER, Answer, Prompt, ReaderError, ReadStream
from lcrag.readers.config import ReaderConfig
from lcrag.readers.prompts import is_unanswerable, messages


def first_line(text: str) -> str:
    """The first non-empty line: the answer, before a small model's elaboration."""
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


TOP_LOGPROBS = 5  # alternatives kept for the first answer token (a choice's probability)


_SPECIAL = re.compile(r"^(<\|[^|]*\|>|</s>|<eos>)$")


def answer_logprobs(choice: dict, first_line_only: bool = True) -> tuple[tuple[float, ...], tuple[tuple[str, float], ...]]:
    """The answer tokens' log-probabilities and the first token's top alternatives,
    from an OpenAI-style chat choice; empty when the server sent none. Answer tokens
    are the reply's own: end-of-turn markers are left out, and with ``first_line_only``
    so is everything after the first line (what ``answer_first_line`` keeps)."""
    content = ((choice.get("logprobs") or {}).get("content")) or []
    logprobs: list[float] = []
    for entry in content:
        token, logprob = str(entry.get("token", "")), entry.get("logprob")
        if first_line_only and "\n" in token and logprobs:
            break
        if logprob is None or _SPECIAL.match(token) or not token.strip():
            continue
        logprobs.append(float(logprob))
    first = content[0].get("top_logprobs") or [] if content else []
    top = tuple((str(alt["token"]), float(alt["logprob"])) for alt in first if alt.get("logprob") is not None)
    return tuple(logprobs), top


def cached_tokens(usage: dict) -> int | None:
    """Prompt tokens the server served from its prefix cache, where it says
    (vLLM with --enable-prompt-tokens-details); None when it does not."""
    details = usage.get("prompt_tokens_details") or {}
    value = details.get("cached_tokens")
    return int(value) if value is not None else None


# What str.splitlines() splits on: first_line() keeps the reply up to the first of these.
LINE_BREAKS = frozenset("\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029")


class ReplyShaper:
    """A reply shaped while it arrives exactly as ``read`` shapes it whole: blanks
    around it dropped (``str.strip``) and, with ``first_line_only``, nothing after
    its first non-empty line (``first_line``). ``feed`` takes the server's next
    piece and returns what can be passed on now: blanks are held back until
    something follows them on the line, so a trailing blank is never sent."""

    def __init__(self, first_line_only: bool) -> None:
        self.first_line_only = first_line_only
        self._sent: list[str] = []
        self._blanks = ""
        self._started = False
        self._ended = False

    @property
    def text(self) -> str:
        """Everything passed on so far: at the end, the answer ``read`` would give."""
        return "".join(self._sent)

    def feed(self, piece: str) -> str:
        out: list[str] = []
        for ch in piece:
            if self._ended:
                break
            if ch.isspace():
                if not self._started:
                    continue
                if self.first_line_only and ch in LINE_BREAKS:
                    self._ended = True
                    break
                self._blanks += ch
                continue
            self._started = True
            out.append(self._blanks + ch)
            self._blanks = ""
        shown = "".join(out)
        if shown:
            self._sent.append(shown)
        return shown


def sse_data(lines: Iterable[str]) -> Iterator[str]:
    """The ``data:`` payloads of a server-sent event stream, one per event
    (multi-line data joined with newlines, as the format says)."""
    data: list[str] = []
    for line in lines:
        if not line:
            if data:
                yield "\n".join(data)
                data = []
            continue
        if line.startswith("data:"):
            data.append(line[5:].removeprefix(" "))
    if data:
        yield "\n".join(data)


class VLLMReader:
    @classmethod
    def from_config(cls, config: ReaderConfig, home: Path) -> VLLMReader:
        """The ``vllm`` backend: ``reader.model: auto`` made concrete for this machine."""
        return cls(config.on_this_machine(home), home=home)

    def __init__(self, config: ReaderConfig, home: Path | None = None) -> None:
        self.config = config
        self.model = config.model
        self.url = config.url
        key = os.environ.get(config.api_key_env, "")
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self._client = httpx.Client(timeout=config.timeout_s, headers=headers)
        self._model_dir = anchored(config.model_dir, home) if home is not None else Path(config.model_dir)
        self._tokenizer = None
        # One limit for every thread that shares this reader (evaluation answers several
        # corpora at once): a CPU server given more prompts than it can prefill only makes
        # each wait longer, until they time out together.
        self._in_flight = threading.BoundedSemaphore(config.concurrency)

    def close(self) -> None:
        self._client.close()

    # -- tokens --------------------------------------------------------------------
    def count_tokens(self, text: str) -> int:
        if not text:
            return 0
        tokenizer = self._local_tokenizer()
        if tokenizer is not None:
            return len(tokenizer(text, add_special_tokens=False)["input_ids"])
        root = self.url.removesuffix("/v1")
        response = self._post(f"{root}/tokenize", {"model": self.model, "prompt": text, "add_special_tokens": False})
        return int(response["count"])

    def _local_tokenizer(self):
        if self._tokenizer is None and (self._model_dir / "tokenizer_config.json").is_file():
            from transformers import AutoTokenizer

            self._tokenizer = AutoTokenizer.from_pretrained(str(self._model_dir), local_files_only=True)
        return self._tokenizer

    # -- reading -------------------------------------------------------------------
    def _body(self, prompt: Prompt) -> dict:
        return {
            "model": self.model,
            "messages": messages(prompt),
            "max_tokens": prompt.max_tokens or self.config.max_tokens,
            "temperature": self.config.temperature,
            "logprobs": True,
            "top_logprobs": TOP_LOGPROBS,
        }

    def read(self, prompt: Prompt) -> Answer:
        body = self._body(prompt)
        with self._in_flight:  # latency counts from the send, not from the wait for a slot
            started = time.perf_counter()
            data = self._post(f"{self.url}/chat/completions", body)
            latency_ms = (time.perf_counter() - started) * 1000
        try:
            text = (data["choices"][0]["message"]["content"] or "").strip()
            if self.config.answer_first_line and prompt.task == ANSWER:
                text = first_line(text)
            usage = data["usage"]
        except (KeyError, IndexError, TypeError):
            raise ReaderError(f"the reader at {self.url} sent an answer without choices/usage: {str(data)[:200]}") from None
        logprobs = answer_logprobs(data["choices"][0], self.config.answer_first_line and prompt.task == ANSWER)
        return self._answer(prompt, text, usage, latency_ms, logprobs)

    def _answer(self, prompt: Prompt, text: str, usage: dict, latency_ms: float, logprobs) -> Answer:
        """The Answer of a read, whole or streamed: the text, the server's usage counts
        and the (token logprobs, first token's top candidates) of ``answer_logprobs``."""
        token_logprobs, first_top = logprobs
        return Answer(
            text=text,
            prompt_tokens=int(usage["prompt_tokens"]),
            completion_tokens=int(usage.get("completion_tokens", 0)),
            latency_ms=latency_ms,
            model=self.model,
            unanswerable=prompt.allow_unanswerable and is_unanswerable(text),
            token_logprobs=token_logprobs,
            first_token_top=first_top,
            cached_prompt_tokens=cached_tokens(usage),
        )

    def stream(self, prompt: Prompt) -> ReadStream:
        """The read as it arrives (``ReadStream``); the same request as ``read``
        with ``stream: true`` and the usage in a last event."""
        return ReadStream(self._stream(prompt))

    def _stream(self, prompt: Prompt) -> Generator[str, None, Answer]:
        body = {
            **self._body(prompt),
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        first_line_only = self.config.answer_first_line and prompt.task == ANSWER
        shaper = ReplyShaper(first_line_only)
        logprob_entries: list[dict] = []
        usage: dict | None = None
        # The slot is held while the stream is open: closed early (the generator closed
        # at a yield), the response is closed with it and the slot given back.
        with self._in_flight:
            started = time.perf_counter()
            try:
                with self._client.stream("POST", f"{self.url}/chat/completions", json=body) as response:
                    if response.status_code != 200:
                        response.read()
                        raise self._refused(response)
                    for data in sse_data(response.iter_lines()):
                        if data.strip() == "[DONE]":
                            break
                        chunk = self._event(data)
                        usage = chunk.get("usage") or usage
                        for choice in chunk.get("choices") or []:
                            logprob_entries.extend(((choice.get("logprobs") or {}).get("content")) or [])
                            piece = shaper.feed(((choice.get("delta") or {}).get("content")) or "")
                            if piece:
                                yield piece
            except httpx.ConnectError:
                raise self._unreachable() from None
            except httpx.TimeoutException:
                raise self._too_slow() from None
            except httpx.HTTPError as err:
                raise ReaderError(f"the reader at {self.url} broke off its answer: {type(err).__name__}") from None
            latency_ms = (time.perf_counter() - started) * 1000
        if usage is None:
            raise ReaderError(f"the reader at {self.url} streamed an answer without usage (stream_options.include_usage)")
        logprobs = answer_logprobs({"logprobs": {"content": logprob_entries}}, first_line_only)
        return self._answer(prompt, shaper.text, usage, latency_ms, logprobs)

    def _event(self, data: str) -> dict:
        try:
            chunk = json.loads(data)
        except ValueError:
            raise ReaderError(f"the reader at {self.url} streamed an event that is not JSON: {data[:200]}") from None
        if not isinstance(chunk, dict):
            raise ReaderError(f"the reader at {self.url} streamed an event that is not an object: {data[:200]}")
        if chunk.get("error"):
            raise ReaderError(f"the reader at {self.url} failed part way: {str(chunk['error'])[:300]}")
        return chunk

    def read_many(self, prompts: Sequence[Prompt]) -> list[Answer]:
        """Keep up to ``concurrency`` prompts in flight: the server batches them."""
        if len(prompts) <= 1:
            return [self.read(p) for p in prompts]
        with ThreadPoolExecutor(max_workers=self.config.concurrency) as pool:
            return list(pool.map(self.read, prompts))

    def healthy(self) -> bool:
        try:
            response = self._client.get(f"{self.url}/models", timeout=5)
            return response.status_code == 200 and any(m.get("id") == self.model for m in response.json().get("data", []))
        except (httpx.HTTPError, ValueError):
            return False

    def _post(self, url: str, body: dict) -> dict:
        try:
            response = self._client.post(url, json=body)
        except httpx.ConnectError:
            raise self._unreachable() from None
        except httpx.TimeoutException:
            raise self._too_slow() from None
        if response.status_code != 200:
            raise self._refused(response)
        return response.json()

    def _unreachable(self) -> ReaderError:
        return ReaderError(
            f"no reader answers at {self.url}; start the local one with `lcrag reader start`, "
            "or set reader.base_url to a running vLLM server"
        )

    def _too_slow(self) -> ReaderError:
        return ReaderError(f"the reader at {self.url} did not answer within {self.config.timeout_s:.0f} s")

    def _refused(self, response: httpx.Response) -> ReaderError:
        detail = response.text[:300]
        if response.status_code == 404 and "model" in detail.lower():
            return ReaderError(f"the reader at {self.url} does not serve model {self.model!r}; set reader.model to its name")
        return ReaderError(f"the reader at {self.url} answered HTTP {response.status_code}: {detail}")
