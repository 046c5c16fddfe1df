"""Group commit: rows of questions answered at the same time go into the ledger
in one write.

Each ``Ledger.record`` opens the DuckDB file, commits and closes it (so other
processes can use the file between writes), which costs about 100 ms, and one
thread of a process writes at a time. Written one by one, concurrent questions
queue behind each other's writes and the ledger caps the server's throughput.
Here the first caller to arrive becomes the writer: it records every row that
is waiting in one call, and again until nothing waits; the others block until
the batch holding their rows is committed, so an answer's row id is always
stored before the answer is returned.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from concurrent.futures import Future

from lcrag.pipeline.ledger import Ledger, LedgerRow


class GroupCommitLedger:
    """Stands in for a ``Ledger`` where rows are recorded (``record``)."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.path = ledger.path
        self._lock = threading.Lock()
        self._waiting: list[tuple[list[LedgerRow], Future]] = []
        self._writing = False

    def record(self, rows: Sequence[LedgerRow]) -> int:
        """Store ``rows`` (with whatever else is waiting); returns once they are committed."""
        done: Future = Future()
        with self._lock:
            self._waiting.append((list(rows), done))
            lead = not self._writing
            self._writing = True
        if lead:
            self._write_until_empty()
        return done.result()

    def _write_until_empty(self) -> None:
        while True:
            with self._lock:
                batch, self._waiting = self._waiting, []
                if not batch:
                    self._writing = False
                    return
            try:
                self.ledger.record([row for rows, _ in batch for row in rows])
            except BaseException as err:  # every waiter learns why its rows are not stored
                for _, done in batch:
                    done.set_exception(err)
            else:
                for rows, done in batch:
                    done.set_result(len(rows))
