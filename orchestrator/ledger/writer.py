"""`Ledger`: the request path's handle on the cost ledger.

`record()` never blocks and never raises: it appends to an in-memory queue under a lock, or
with a journal hands the row to the journal's committer, and returns a future that completes
once the row is durable on this host (at once without a journal). A background thread
(`worker.Worker`) writes batches to the database. Reads see rows still queued or spooled, so a
client can fetch its row right after its response.
"""

from __future__ import annotations

import atexit
import logging
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import replace
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
from orchestrator.ledger.journal import Journal, JournalStats
from orchestrator.ledger.row import LedgerRow
from orchestrator.ledger.rowqueue import LedgerStats, RowQueue
from orchestrator.ledger.spool import Spool
from orchestrator.ledger.worker import Worker

log = logging.getLogger("spillway.ledger")


class Ledger:
    """The cost ledger: one row per query, written in batches off the request path.

    `url` is `sqlite:///path` or `postgresql+psycopg://...`. With `spool_path`, rows that
    cannot reach the database are appended (fsync'd) to that JSONL file and replayed when it
    returns; without it they wait in memory. With `journal_dir`, every row is fsync'd to a
    local journal before `record`'s future completes, and rows a killed process journaled but
    had not saved are adopted at the next start on that directory (journal.py). Use `start()`
    / `close()` or a `with` block.
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
        journal_dir: Path | None = None,
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
        self._rows = RowQueue(batch_size, flush_interval_s)
        self._engine: Engine | None = None
        self._thread: threading.Thread | None = None
        self._journal = Journal(Path(journal_dir)) if journal_dir is not None else None

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
        self._rows.batch_handled(0, len(spool))
        worker = Worker(
            self._rows,
            engine,
            spool,
            schema_ready=schema_ready,
            retry_interval_s=self.retry_interval_s,
            on_saved=self._journal.release if self._journal is not None else None,
        )
        self._thread = threading.Thread(
            target=worker.run, name="spillway-ledger-writer", daemon=True
        )
        self._thread.start()
        if self._journal is not None:
            recovered = self._journal.start(then=self._rows.put)
            if recovered:
                log.warning("ledger: %d journaled rows of a stopped process queued", recovered)
        atexit.register(self.close)  # interpreter exit flushes even if the owner forgot

    def close(self, timeout: float = 30.0) -> bool:
        """Write every recorded row (to the database, else the spool) and stop the writer.

        Returns False if rows could not be saved in time, or any row was dropped (see stats).
        """
        if self._journal is not None:
            self._journal.drain(timeout)  # every journaled row reaches the queue first
        if not self._rows.close():
            return self._thread is None or not self._thread.is_alive()
        atexit.unregister(self.close)
        if self._thread is None:  # never started: nowhere to write the queue
            unwritten = self._rows.drain_unstarted()
            self._drop(unwritten, "the ledger was closed without being started")
            return not unwritten
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.error("ledger writer still busy after %ss: %s", timeout, self._rows.stats())
            return False
        if self._engine is not None:
            self._engine.dispose()
        if self._journal is not None:
            self._journal.close()
        return self._rows.stats().rows_dropped == 0

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every row recorded before this call is committed to the database.

        Also retries the database at once if it was down. False on timeout (the rows are still
        queued or spooled, not lost).
        """
        return self._rows.wait_flushed(timeout, self._thread)

    # ----- the request path -----------------------------------------------------------------
    def record(self, row: LedgerRow) -> Future[None]:
        """Queue `row` for writing. Thread-safe, non-blocking; never raises.

        The future completes when the row is durable on this host: at once without a journal
        (the row is in memory), after the journal's group commit with one. A row that cannot
        be queued is dropped (logged, counted) and its future completes too: the request path
        never waits on, nor fails because of, the ledger."""
        try:
            if not isinstance(row, LedgerRow):
                raise TypeError(f"Ledger.record takes a LedgerRow, got {type(row).__name__}")
            if self._journal is not None and self._thread is not None:
                return self._journal.append(row)
            self._rows.put(row)
        except Exception as error:
            self._drop([row], str(error))
        return _done()

    def get(self, query_id: str) -> dict[str, Any] | None:
        """The row of `query_id` as a dict of LedgerRow fields (None if unknown), including
        rows not yet written. Raises `LedgerUnavailable` if it must ask a database that is down."""
        row = self._rows.find(query_id)
        if row is None and self._journal is not None:
            row = self._journal.find(query_id)
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
        route: str | None = None,
        created_at: datetime | None = None,
    ) -> int:
        """Store a quality judgement of a query's answer (and, with ``route``, the label the
        router should have chosen); returns the feedback id."""
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
            "route": route,
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
        stats = self._rows.stats()
        journal = self._journal.stats() if self._journal is not None else None
        if journal is None:
            return stats
        return replace(
            stats,
            rows_journaled=journal.rows_journaled,
            batches_journaled=journal.syncs,
            rows_recovered=journal.rows_recovered,
            write_journal_seconds=journal.sync_seconds,
        )

    @property
    def journal_stats(self) -> JournalStats | None:
        """The journal's counters, or None without a journal."""
        return self._journal.stats() if self._journal is not None else None

    # ----- internals ------------------------------------------------------------------------
    def _drop(self, rows: list[Any], reason: str) -> None:
        for row in rows:
            text = row.model_dump_json() if isinstance(row, LedgerRow) else repr(row)
            log.error("ledger row dropped (%s): %s", reason, text)
        self._rows.count("rows_dropped", len(rows))

    def _require_engine(self) -> Engine:
        if self._engine is None:
            raise LedgerError(f"the ledger at {describe(self.url)} is not started; call start()")
        return self._engine


def _done() -> Future[None]:
    done: Future[None] = Future()
    done.set_result(None)
    return done
