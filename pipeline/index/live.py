"""The live generation of an index, as a long-running reader (the query API) sees it:
switched to a newly published generation without a restart."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from lcrag.pipeline.index.folder import IndexStateError, generation_path, is_generational, live_name, live_path
from lcrag.pipeline.index.search import IndexReader

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Generation:
    """One generation opened for search."""

    name: str
    corpus: IndexReader  # the strategies' Corpus


class _Opened:
    def __init__(self, name: str, corpus) -> None:
        self.name = name
        self.corpus = corpus
        self.users = 0
        self.retired = False


def caching_factory(factory: Callable) -> Callable:
    """One encoder per encoder config, shared by every generation a server opens."""
    cache: dict = {}
    lock = threading.Lock()

    def make(config):
        with lock:
            if config not in cache:
                cache[config] = factory(config)
            return cache[config]

    return make


class LiveIndex:
    """The live generation of an index, switched to a newly published one without
    a restart. A question holds its generation from ``acquire`` to the end, so a
    switch never pulls the index out from under it; a retired generation is
    closed when its last question finishes."""

    def __init__(self, root: Path, encoder_factory: Callable, check_interval_s: float = 0.25) -> None:
        self.root = Path(root)
        self._factory = caching_factory(encoder_factory)
        self._check_interval_s = check_interval_s
        self._lock = threading.Lock()
        self._switch_lock = threading.Lock()
        self._checked_at = 0.0
        name, folder = live_path(self.root)
        self._current = _Opened(name, self._open(folder))
        self._closed = False

    def _open(self, folder: Path) -> IndexReader:
        """A generation opened whole, search parts included: a server finds out that an index
        cannot be searched here when it starts or swaps, and no first question pays the load."""
        reader = IndexReader(folder, self._factory)
        try:
            reader.retrievers  # noqa: B018 -- opens the encoder, vectors and BM25 now
        except BaseException:
            reader.close()
            raise
        return reader

    def current_name(self) -> str:
        return self._current.name

    def refresh(self) -> bool:
        """Switch to the published generation if it changed; True when it did.
        A generation that cannot be opened is logged and the current one kept."""
        if not is_generational(self.root):
            return False
        with self._switch_lock:
            name = live_name(self.root)
            if name is None or name == self._current.name:
                return False
            try:
                corpus = self._open(generation_path(self.root, name))
            except Exception as err:  # noqa: BLE001 - keep serving the current generation
                log.warning("could not open generation %s (%s); still serving %s", name, err, self._current.name)
                return False
            with self._lock:
                old, self._current = self._current, _Opened(name, corpus)
                old.retired = True
                close_now = old.users == 0
            if close_now:
                old.corpus.close()
            log.info("switched from generation %s to %s", old.name, name)
            return True

    def _maybe_refresh(self) -> None:
        now = time.monotonic()
        if now - self._checked_at >= self._check_interval_s:
            self._checked_at = now
            self.refresh()

    @contextmanager
    def acquire(self) -> Iterator[Generation]:
        if self._closed:
            raise IndexStateError("the live index is closed")
        self._maybe_refresh()
        with self._lock:
            entry = self._current
            entry.users += 1
        try:
            yield Generation(entry.name, entry.corpus)
        finally:
            with self._lock:
                entry.users -= 1
                close_now = entry.retired and entry.users == 0
            if close_now:
                entry.corpus.close()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            entry = self._current
            entry.retired = True
            close_now = entry.users == 0
        if close_now:
            entry.corpus.close()

    def __enter__(self) -> LiveIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
