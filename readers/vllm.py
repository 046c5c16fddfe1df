"""The reader: a vLLM server (or any OpenAI-compatible one) over HTTP.

Prompt and completion tokens are the server's own ``usage`` counts. Context
budgets are measured with the served model's tokenizer: loaded from the local
converted weights when they are here, otherwise asked of the server
(``/tokenize``), so a remote GPU server is only a ``base_url`` away.
"""

from __future__ import annotations

import os
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Sequence

import httpx

from lcrag.core.paths import anchored
from lcrag.readers.base import ANSWER, Answer, Prompt, ReaderError
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
    logprobs = []
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


class VLLMReader:
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
    def read(self, prompt: Prompt) -> Answer:
        body = {
            "model": self.model,
            "messages": messages(prompt),
            "max_tokens": prompt.max_tokens or self.config.max_tokens,
            "temperature": self.config.temperature,
            "logprobs": True,
            "top_logprobs": TOP_LOGPROBS,
        }
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
        logprobs, first_top = answer_logprobs(data["choices"][0], self.config.answer_first_line and prompt.task == ANSWER)
        return Answer(
            text=text,
            prompt_tokens=int(usage["prompt_tokens"]),
            completion_tokens=int(usage.get("completion_tokens", 0)),
            latency_ms=latency_ms,
            model=self.model,
            unanswerable=prompt.allow_unanswerable and is_unanswerable(text),
            token_logprobs=logprobs,
            first_token_top=first_top,
            cached_prompt_tokens=cached_tokens(usage),
        )

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
            raise ReaderError(
                f"no reader answers at {self.url}; start the local one with `lcrag reader start`, "
                "or set reader.base_url to a running vLLM server"
            ) from None
        except httpx.TimeoutException:
            raise ReaderError(f"the reader at {self.url} did not answer within {self.config.timeout_s:.0f} s") from None
        if response.status_code != 200:
            detail = response.text[:300]
            if response.status_code == 404 and "model" in detail.lower():
                raise ReaderError(f"the reader at {self.url} does not serve model {self.model!r}; set reader.model to its name")
            raise ReaderError(f"the reader at {self.url} answered HTTP {response.status_code}: {detail}")
        return response.json()
