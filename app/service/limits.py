"""Admission control: a bounded number of questions answered at once and a
bounded number waiting; the rest are refused at once.

Reading is the expensive part and the reader has a fixed capacity, so an
unbounded queue only turns overload into timeouts for everyone. Refusing early
(429 with Retry-After) tells a client to back off while the server still answers
the questions it accepted in reasonable time.

The controller lives on the server's event loop: waiting costs no thread, and
its counters need no lock because only the loop touches them.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class Saturated(RuntimeError):
    """Every slot is busy and the queue is full; try again after ``retry_after_s``."""

    def __init__(self, retry_after_s: int) -> None:
        super().__init__(f"the server is answering as many questions as it can; retry in {retry_after_s} s")
        self.retry_after_s = retry_after_s


class AdmissionController:
    """At most ``max_in_flight`` questions run and ``max_queued`` wait for a slot,
    in arrival order; one more is refused with ``Saturated`` without waiting."""

    def __init__(self, max_in_flight: int, max_queued: int, retry_after_s: int) -> None:
        if max_in_flight < 1:
            raise ValueError(f"max_in_flight must be >= 1, got {max_in_flight}")
        if max_queued < 0:
            raise ValueError(f"max_queued must be >= 0, got {max_queued}")
        if retry_after_s < 1:
            raise ValueError(f"retry_after_s must be >= 1, got {retry_after_s}")
        self.max_in_flight = max_in_flight
        self.max_queued = max_queued
        self.retry_after_s = retry_after_s
        self._slots = asyncio.Semaphore(max_in_flight)  # binds to the loop on first use
        self._admitted = 0  # running + waiting
        self._running = 0

    @property
    def in_flight(self) -> int:
        return self._running

    @property
    def queued(self) -> int:
        return self._admitted - self._running

    @asynccontextmanager
    async def admit(self) -> AsyncIterator[None]:
        """Hold a slot for the body of the ``async with``; raise ``Saturated`` at
        once when the slots and the queue are full. A caller cancelled while
        waiting leaves the queue."""
        if self._admitted >= self.max_in_flight + self.max_queued:
            raise Saturated(self.retry_after_s)
        self._admitted += 1
        try:
            async with self._slots:
                self._running += 1
                try:
                    yield
                finally:
                    self._running -= 1
        finally:
            self._admitted -= 1
