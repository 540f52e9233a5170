"""`Ledger`: the request path's handle on the cost ledger.

`record()` only appends to an in-memory queue under a lock (microseconds, never raises); a
background thread (`worker.Worker`) writes batches. Reads see rows still queued or spooled,
so a client can fetch its row right after its response.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import exc
from sqlalchemy.engine import Engine

from orchestrator.ledger import reader
from orchestrator.ledger.engine import (
    describe,
    make_engine,
    migrate,
    parse_url,
    prepare_sqlite_file,
    unavailable_message,
)
from orchestrator.ledger.errors import LedgerError, LedgerUnavailable, UnknownQueryError
from orchestrator.ledger.row import LedgerRow
from orchestrator.ledger.spool import Spool
from orchestrator.ledger.worker import Worker

log = logging.getLogger("spillway.ledger")

# Spooled rows kept in memory for get() while the database is down; older ones stay on disk.
SPOOLED_INDEX_MAX = 100_000


@dataclass(frozen=True)
class LedgerStats:
    """Counters since start (rows_*, write_failures) and current gauges (queued, spooled)."""

    rows_recorded: int = 0
    rows_written: int = 0  # committed to the database, including replayed ones
    batches_written: int = 0
    write_failures: int = 0  # database write attempts that failed (each spooled its batch)
    rows_spooled: int = 0
    rows_rejected: int = 0  # refused by the database; kept in <spool>.rejected or the log
    rows_dropped: int = 0  # recorded after close(), not a LedgerRow, or lost at shutdown
    queued: int = 0
    spooled: int = 0
    database_available: bool = True


class Ledger:
    """The cost ledger: one row per query, written in batches off the request path.

    `url` is `sqlite:///path` or `postgresql+psycopg://...`. With `spool_path`, rows that
    cannot reach the database are appended (fsync'd) to that JSONL file and replayed when it
    returns; without it they wait in memory. Use `start()` / `close()` or a `with` block.
    """

    def __init__(
        self,
        url: str,
        *,
        batch_size: int = 500,
        flush_interval_s: float = 0.2,
        spool_path: Path | None = None,
        retry_interval_s: float = 1.0,
        busy_timeout_ms: int = 5000,
        connect_timeout_s: float = 5.0,
    ):
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        if flush_interval_s <= 0 or retry_interval_s <= 0:
            raise ValueError("flush_interval_s and retry_interval_s must be positive seconds")
        self.url = parse_url(url)  # raises ValueError naming the accepted URL forms
        self.batch_size = batch_size
        self.flush_interval_s = flush_interval_s
        self.retry_interval_s = retry_interval_s
        self.spool_path = Path(spool_path) if spool_path is not None else None
        self._busy_timeout_ms = busy_timeout_ms
        self._connect_timeout_s = connect_timeout_s
        self._cv = threading.Condition(threading.Lock())
        self._queue: deque[LedgerRow] = deque()
        self._unwritten: dict[str, LedgerRow] = {}  # queued or being written
        self._spooled_index: dict[str, LedgerRow] = {}
        self._counts = {
            f.name: 0 for f in fields(LedgerStats) if f.name.startswith(("rows", "b", "w"))
        }
        self._available = True
        self._spool_len = 0
        self._handled = 0
        self._closing = self._flush_wanted = self._force_retry = False
        self._engine: Engine | None = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Ledger:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ----- lifecycle ------------------------------------------------------------------------
    def start(self, *, require_database: bool = True) -> None:
        """Create or migrate the schema (Alembic `upgrade head`) and start the writer thread.

        If the database cannot be reached: raises `LedgerUnavailable`, or with
        `require_database=False` starts anyway, spooling rows until the database appears.
        """
        if self._thread is not None:
            return
        prepare_sqlite_file(self.url)
        engine = make_engine(
            self.url,
            busy_timeout_ms=self._busy_timeout_ms,
            connect_timeout_s=self._connect_timeout_s,
        )
        schema_ready = True
        try:
            migrate(engine)
        except LedgerError as error:
            if require_database:
                engine.dispose()
                raise
            log.warning("ledger starts without its database: %s", error)
            schema_ready = False
        spool = Spool(self.spool_path)
        self._engine = engine
        self._spool_len = len(spool)
        worker = Worker(self, engine, spool, schema_ready=schema_ready)
        self._thread = threading.Thread(
            target=worker.run, name="spillway-ledger-writer", daemon=True
        )
        self._thread.start()
        atexit.register(self.close)  # interpreter exit flushes even if the owner forgot

    def close(self, timeout: float = 30.0) -> bool:
        """Write every recorded row (to the database, else the spool) and stop the writer.

        Returns False if rows could not be saved in time or were held only in memory.
        """
        with self._cv:
            if self._closing:
                return self._thread is None or not self._thread.is_alive()
            self._closing = True
            self._cv.notify_all()
        atexit.unregister(self.close)
        if self._thread is None:  # never started: nowhere to write the queue
            self._drop(list(self._queue), "the ledger was closed without being started")
            return not self._queue
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.error(
                "ledger writer still busy after %ss; %d rows queued", timeout, len(self._queue)
            )
            return False
        if self._engine is not None:
            self._engine.dispose()
        return self._counts["rows_dropped"] == 0

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every row recorded before this call is committed to the database.

        Also retries the database at once if it was down. False on timeout (the rows are still
        queued or spooled, not lost).
        """
        deadline = time.monotonic() + timeout
        with self._cv:
            target = self._counts["rows_recorded"]
            self._flush_wanted = self._force_retry = True
            self._cv.notify_all()
            while self._handled < target or self._spool_len:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._thread is None or not self._thread.is_alive():
                    return False
                self._cv.wait(remaining)
        return True

    # ----- the request path -----------------------------------------------------------------
    def record(self, row: LedgerRow) -> None:
        """Queue `row` for writing. Thread-safe, non-blocking; never raises."""
        try:
            if not isinstance(row, LedgerRow):
                raise TypeError(f"Ledger.record takes a LedgerRow, got {type(row).__name__}")
            with self._cv:
                if self._closing:
                    raise RuntimeError("the ledger is closed")
                self._queue.append(row)
                self._unwritten[row.query_id] = row
                self._counts["rows_recorded"] += 1
                if len(self._queue) == self.batch_size:
                    self._cv.notify_all()
        except Exception as error:
            self._drop([row], str(error))

    def get(self, query_id: str) -> dict[str, Any] | None:
        """The row of `query_id` as a dict of LedgerRow fields (None if unknown), including
        rows not yet written. Raises `LedgerUnavailable` if it must ask a database that is down."""
        with self._cv:
            row = self._unwritten.get(query_id) or self._spooled_index.get(query_id)
        if row is not None:
            return row.model_dump()
        engine = self._require_engine()
        try:
            return reader.fetch_row(engine, query_id)
        except exc.DBAPIError as error:
            raise LedgerUnavailable(unavailable_message(engine, error)) from error

    def iter_rows(
        self,
        since: datetime | None = None,
        until: datetime | None = None,
        tenant: str | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Stored rows with since <= created_at < until, oldest first, streamed in chunks.
        Rows still queued are not included: `flush()` first to include them."""
        engine = self._require_engine()
        try:
            yield from reader.iter_rows(engine, since=since, until=until, tenant=tenant)
        except exc.DBAPIError as error:
            raise LedgerUnavailable(unavailable_message(engine, error)) from error

    def add_feedback(
        self,
        query_id: str,
        score: float,
        *,
        correct: bool | None = None,
        comment: str | None = None,
        created_at: datetime | None = None,
    ) -> int:
        """Store a quality judgement of a query's answer; returns the feedback id."""
        if isinstance(score, bool) or not 0.0 <= float(score) <= 1.0:
            raise ValueError(f"score must be a number in [0, 1], got {score!r}")
        reader.require_aware("created_at", created_at)
        if self.get(query_id) is None:
            raise UnknownQueryError(f"no ledger row for query {query_id!r}; check the query id")
        values = {
            "query_id": query_id,
            "created_at": created_at or datetime.now(UTC),
            "score": float(score),
            "correct": correct,
            "comment": comment,
        }
        engine = self._require_engine()
        try:
            return reader.insert_feedback(engine, values)
        except exc.DBAPIError as error:
            raise LedgerUnavailable(unavailable_message(engine, error)) from error

    def feedback(self, query_id: str) -> list[dict[str, Any]]:
        """Feedback stored for `query_id`, oldest first."""
        engine = self._require_engine()
        try:
            return reader.fetch_feedback(engine, query_id)
        except exc.DBAPIError as error:
            raise LedgerUnavailable(unavailable_message(engine, error)) from error

    @property
    def stats(self) -> LedgerStats:
        with self._cv:
            return LedgerStats(
                **self._counts,
                queued=len(self._queue),
                spooled=self._spool_len,
                database_available=self._available,
            )

    # ----- used by the writer thread --------------------------------------------------------
    def _take_batch(self) -> tuple[list[LedgerRow], bool]:
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

    def _take_forced_retry(self) -> bool:
        with self._cv:
            forced, self._force_retry = self._force_retry, False
            return forced

    def _batch_handled(self, count: int, spool_len: int) -> None:
        with self._cv:
            self._handled += count
            self._spool_len = spool_len
            self._cv.notify_all()

    def _committed(self, rows: list[LedgerRow], *, spooled: bool) -> None:
        with self._cv:
            index = self._spooled_index if spooled else self._unwritten
            for row in rows:
                index.pop(row.query_id, None)
            self._counts["rows_written"] += len(rows)
            self._counts["batches_written"] += 1

    def _spooled(self, rows: list[LedgerRow]) -> None:
        with self._cv:
            for row in rows:
                self._unwritten.pop(row.query_id, None)
                self._spooled_index[row.query_id] = row
            while len(self._spooled_index) > SPOOLED_INDEX_MAX:
                del self._spooled_index[next(iter(self._spooled_index))]
            self._counts["rows_spooled"] += len(rows)

    def _spool_cleared(self) -> None:
        with self._cv:
            self._spooled_index.clear()
            self._spool_len = 0
            self._cv.notify_all()

    def _rejected(self, row: LedgerRow) -> None:
        with self._cv:
            self._unwritten.pop(row.query_id, None)
            self._spooled_index.pop(row.query_id, None)
            self._counts["rows_rejected"] += 1

    def _count(self, name: str, amount: int) -> None:
        with self._cv:
            self._counts[name] += amount

    def _set_available(self, available: bool) -> None:
        with self._cv:
            self._available = available

    def _drop(self, rows: list[Any], reason: str) -> None:
        for row in rows:
            text = row.model_dump_json() if isinstance(row, LedgerRow) else repr(row)
            log.error("ledger row dropped (%s): %s", reason, text)
        self._count("rows_dropped", len(rows))

    def _require_engine(self) -> Engine:
        if self._engine is None:
            raise LedgerError(f"the ledger at {describe(self.url)} is not started; call start()")
        return self._engine
