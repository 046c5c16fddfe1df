"""Whether the reader answers, asked at most every few seconds.

A health endpoint is polled often (load balancers, monitors); asking the reader
every time would add load exactly when it is struggling. One probe runs at a
time and its answer is reused for ``cache_s`` seconds.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

log = logging.getLogger("lcrag.service")


class ReaderProbe:
    def __init__(self, reader, cache_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        if cache_s < 0:
            raise ValueError(f"cache_s must be >= 0, got {cache_s}")
        self._reader = reader
        self._cache_s = cache_s
        self._clock = clock
        self._lock = threading.Lock()
        self._checked_at: float | None = None
        self._reachable = False

    def reachable(self) -> bool:
        with self._lock:
            now = self._clock()
            if self._checked_at is None or now - self._checked_at >= self._cache_s:
                self._reachable = self._probe()
                self._checked_at = self._clock()
            return self._reachable

    def _probe(self) -> bool:
        try:
            return bool(self._reader.healthy())
        except Exception as err:  # noqa: BLE001 - a failing probe means "not reachable", never a 500
            log.warning("reader health probe failed: %s", err)
            return False
