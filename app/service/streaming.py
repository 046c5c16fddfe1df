"""Relaying one answer to a client while the reader writes it.

A strategy reads through the ``Toolkit``'s reader and knows nothing of clients.
For a streamed request the toolkit gets a ``StreamingTap`` in the reader's place:
it passes every call through, except that the read that gives the answer is
made with the reader's ``stream`` and each piece of its text is handed to a
``Relay`` as it arrives. The strategy still receives a whole ``Answer``, so the
outcome, the ledger row and the response are what a whole read gives.

Which read gives the answer is known before it is made only for some reads; a
read that may be followed by another is read whole (the client then gets the
answer in one piece at the end):

- a read that may decline (self-route's first read over the retrieved chunks,
  ``allow_unanswerable``): if it declines, ``lc`` reads again;
- a Chain-of-Agents worker's notes (``take-notes``): the manager reads after;
- every read of ``auto`` that follows a fitted router which decides after a
  first cheap read (that read may or may not be the answer): ``final_reads``.

Every other read ends its strategy, and at most one read per request is
streamed. The relay runs between a worker thread (the strategy) and the event
loop (the response): pieces go to the loop without blocking the thread, and a
client that goes away sets ``cancelled``, which the tap checks between pieces;
it then closes the reader's stream (the reader's server aborts the request,
its slot is free) and raises ``ReadCancelled`` out of the strategy.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

from lcrag.core.errors import LcragError
from lcrag.readers.base import ANSWER, Answer, Prompt

log = logging.getLogger("lcrag.service")

DELTA, DONE, FAILED = "delta", "done", "failed"


class ReadCancelled(LcragError):
    """The client of a streamed answer went away; the read was stopped."""


class Relay:
    """Events of one streamed request, from a worker thread to the event loop:
    ``(DELTA, text)`` pieces, then one ``(DONE, result)`` or ``(FAILED, error)``."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._events: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self.cancelled = threading.Event()
        self.streamed: list[str] = []  # the pieces relayed (the worker thread's view)

    # -- the worker thread
    def _put(self, kind: str, value: Any) -> None:
        try:
            self._loop.call_soon_threadsafe(self._events.put_nowait, (kind, value))
        except RuntimeError:  # the loop is closed: the server stopped, nobody listens
            self.cancelled.set()

    def delta(self, text: str) -> None:
        self.streamed.append(text)
        self._put(DELTA, text)

    def done(self, result: Any) -> None:
        self._put(DONE, result)

    def failed(self, error: BaseException) -> None:
        self._put(FAILED, error)

    # -- the event loop
    async def next(self) -> tuple[str, Any]:
        return await self._events.get()

    def cancel(self) -> None:
        self.cancelled.set()


def last_read_known(strategy: str, router) -> bool:
    """Whether the strategy's answering read can be told before it is made: always,
    except for ``auto`` following a fitted router that reads once to decide
    (``router.constant`` None) and may then read again."""
    return not (strategy == "auto" and router is not None and getattr(router, "constant", None) is None)


def may_give_the_answer(prompt: Prompt) -> bool:
    """Whether a read ends its strategy (see the module's notes): it answers the
    question and may not decline. A read that may decline, or one that takes notes
    for a later read, is followed by another when it does."""
    return prompt.task == ANSWER and not prompt.allow_unanswerable


class StreamingTap:
    """The reader as one streamed request sees it (see the module's notes). With
    ``final_reads`` False nothing is streamed (the strategy's last read cannot be
    told in advance) and the tap only passes calls through."""

    def __init__(self, reader, relay: Relay, final_reads: bool = True) -> None:
        self._reader = reader
        self._relay = relay
        self._final_reads = final_reads and callable(getattr(reader, "stream", None))
        self._streamed = False
        self.model = reader.model

    def __getattr__(self, name: str) -> Any:  # count_tokens, healthy, ...: the reader's own
        return getattr(self._reader, name)

    def _streams(self, prompt: Prompt) -> bool:
        return self._final_reads and not self._streamed and may_give_the_answer(prompt)

    def _check(self) -> None:
        if self._relay.cancelled.is_set():
            raise ReadCancelled("the client went away; the answer was not finished")

    def read(self, prompt: Prompt) -> Answer:
        self._check()
        if not self._streams(prompt):
            return self._reader.read(prompt)
        self._streamed = True
        with self._reader.stream(prompt) as pieces:
            for piece in pieces:
                self._check()  # leaving the with block closes the stream upstream
                self._relay.delta(piece)
            answer = pieces.answer
        self._check()
        if answer is None:  # a reader whose stream ended without its answer: a bug there
            raise RuntimeError(f"{type(self._reader).__name__}.stream ended without an answer")
        return answer

    def read_many(self, prompts: Sequence[Prompt]) -> list[Answer]:
        self._check()
        if len(prompts) == 1 and self._streams(prompts[0]):
            return [self.read(prompts[0])]
        return self._reader.read_many(prompts)


def run_relayed(work: Callable[[], Any], relay: Relay) -> None:
    """Run ``work`` (in a worker thread) and tell ``relay`` how it ended."""
    try:
        result = work()
    except BaseException as err:  # noqa: BLE001 - every ending reaches the response, which decides
        relay.failed(err)
    else:
        relay.done(result)
