"""State shared by the request threads and the writer thread, behind one lock.

Request threads append rows (`put`); the writer takes batches (`take_batch`) and reports what
became of them (`committed`, `spooled`, `rejected`). Rows stay findable (`find`) until they
are committed, so a client can read its row right after its response.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, fields

from orchestrator.ledger.row import LedgerRow

# Spooled rows kept in memory for find() while the database is down; older ones stay on disk.
SPOOLED_INDEX_MAX = 100_000


@dataclass(frozen=True)
class LedgerStats:
    """Counters since start (rows_*, batches_written, write_failures) and current gauges."""

    rows_recorded: int = 0
    rows_written: int = 0  # committed to the database, including replayed ones
    batches_written: int = 0
    write_failures: int = 0  # database write attempts that failed (each spooled its batch)
    rows_spooled: int = 0
    rows_rejected: int = 0  # refused by the database; kept in <spool>.rejected or the log
    rows_dropped: int = 0  # recorded after close(), not a LedgerRow, or lost at shutdown
    rows_journaled: int = 0  # made durable in the local journal (0 without one)
    batches_journaled: int = 0  # the journal's group commits: one fdatasync each
    rows_recovered: int = 0  # adopted from the journal of a process that died
    write_journal_seconds: float = 0.0  # spent in the journal's writes and fdatasyncs
    queued: int = 0  # waiting for the writer now
    spooled: int = 0  # in the spool now, waiting for the database
    database_available: bool = True


_COUNTERS = tuple(f.name for f in fields(LedgerStats) if f.name.startswith(("rows_", "b", "w")))


class RowQueue:
    def __init__(self, batch_size: int, flush_interval_s: float):
        self.batch_size = batch_size
        self.flush_interval_s = flush_interval_s
        self._cv = threading.Condition(threading.Lock())
        self._queue: deque[LedgerRow] = deque()
        self._unwritten: dict[str, LedgerRow] = {}  # queued or being written
        self._spooled: dict[str, LedgerRow] = {}
        self._counts = dict.fromkeys(_COUNTERS, 0)
        self._available = True
        self._spool_len = 0
        self._handled = 0
        self._closing = self._flush_wanted = self._force_retry = False

    # ----- request threads ------------------------------------------------------------------
    def put(self, row: LedgerRow) -> None:
        with self._cv:
            if self._closing:
                raise RuntimeError("the ledger is closed")
            self._queue.append(row)
            self._unwritten[row.query_id] = row
            self._counts["rows_recorded"] += 1
            if len(self._queue) == self.batch_size:
                self._cv.notify_all()

    def find(self, query_id: str) -> LedgerRow | None:
        with self._cv:
            return self._unwritten.get(query_id) or self._spooled.get(query_id)

    def wait_flushed(self, timeout: float, writer_alive: threading.Thread | None) -> bool:
        """Wake the writer (and its database retry) and wait until every row recorded so far
        is committed; False on timeout or without a running writer."""
        deadline = time.monotonic() + timeout
        with self._cv:
            target = self._counts["rows_recorded"]
            self._flush_wanted = self._force_retry = True
            self._cv.notify_all()
            while self._handled < target or self._spool_len:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or writer_alive is None or not writer_alive.is_alive():
                    return False
                self._cv.wait(remaining)
        return True

    def close(self) -> bool:
        """Refuse new rows and wake the writer to finish; False if already closing."""
        with self._cv:
            if self._closing:
                return False
            self._closing = True
            self._cv.notify_all()
            return True

    def drain_unstarted(self) -> list[LedgerRow]:
        with self._cv:
            rows = list(self._queue)
            self._queue.clear()
            return rows

    def stats(self) -> LedgerStats:
        with self._cv:
            return LedgerStats(
                **self._counts,
                queued=len(self._queue),
                spooled=self._spool_len,
                database_available=self._available,
            )

    # ----- the writer thread ----------------------------------------------------------------
    def take_batch(self) -> tuple[list[LedgerRow], bool]:
        """Up to batch_size rows, waiting at most flush_interval_s for a full batch.
        The flag says the ledger is closing and this is the last batch."""
        deadline = time.monotonic() + self.flush_interval_s
        with self._cv:
            while len(self._queue) < self.batch_size and not (self._closing or self._flush_wanted):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cv.wait(remaining)
            count = min(self.batch_size, len(self._queue))
            batch = [self._queue.popleft() for _ in range(count)]
            if not self._queue:
                self._flush_wanted = False
            return batch, self._closing and not self._queue

    def take_forced_retry(self) -> bool:
        with self._cv:
            forced, self._force_retry = self._force_retry, False
            return forced

    def batch_handled(self, count: int, spool_len: int) -> None:
        with self._cv:
            self._handled += count
            self._spool_len = spool_len
            self._cv.notify_all()

    def committed(self, rows: list[LedgerRow], *, spooled: bool) -> None:
        with self._cv:
            index = self._spooled if spooled else self._unwritten
            for row in rows:
                index.pop(row.query_id, None)
            self._counts["rows_written"] += len(rows)
            self._counts["batches_written"] += 1

    def spooled(self, rows: list[LedgerRow]) -> None:
        with self._cv:
            for row in rows:
                self._unwritten.pop(row.query_id, None)
                self._spooled[row.query_id] = row
            while len(self._spooled) > SPOOLED_INDEX_MAX:
                del self._spooled[next(iter(self._spooled))]
            self._counts["rows_spooled"] += len(rows)

    def spool_cleared(self) -> None:
        with self._cv:
            self._spooled.clear()
            self._spool_len = 0
            self._cv.notify_all()

    def rejected(self, row: LedgerRow) -> None:
        with self._cv:
            self._unwritten.pop(row.query_id, None)
            self._spooled.pop(row.query_id, None)
            self._counts["rows_rejected"] += 1

    def count(self, name: str, amount: int) -> None:
        with self._cv:
            self._counts[name] += amount

    def set_available(self, available: bool) -> None:
        with self._cv:
            self._available = available
