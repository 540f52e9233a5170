"""The ledger's background writer: batches queued rows into the database, or the spool.

One thread owns the database writes and the spool. Rows go to the database in batches, each
one transaction that skips query_ids already stored (`inserts.insert_rows`), so replaying the
spool after an outage can never duplicate a row. When the database is unavailable the batch
is spooled and the database is tried again after `retry_interval_s`; the spool is replayed
before new rows.
A row the database refuses (a constraint or value error) is isolated and set aside in the
spool's `.rejected` file instead of blocking the rows around it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from sqlalchemy.engine import Engine

from orchestrator.ledger.engine import describe, first_line, is_row_error, migrate
from orchestrator.ledger.inserts import insert_rows
from orchestrator.ledger.row import LedgerRow
from orchestrator.ledger.spool import Spool

if TYPE_CHECKING:
    from orchestrator.ledger.rowqueue import RowQueue

log = logging.getLogger("spillway.ledger")


class Worker:
    """State and steps of the writer thread."""

    def __init__(
        self,
        rows: RowQueue,
        engine: Engine,
        spool: Spool,
        *,
        schema_ready: bool,
        retry_interval_s: float,
        on_saved: Callable[[list[LedgerRow]], None] | None = None,
    ):
        self.rows = rows
        self.retry_interval_s = retry_interval_s
        self.engine = engine
        self.spool = spool
        self.schema_ready = schema_ready
        self.available = schema_ready
        self.retry_at = 0.0
        self.on_saved = on_saved  # told which rows are in the database or the spool file

    # ----- the loop -------------------------------------------------------------------------
    def run(self) -> None:
        while True:
            batch, stopping = self.rows.take_batch()
            try:
                self.handle(batch, force=self.rows.take_forced_retry())
            except Exception:  # the writer must outlive any bug: keep the rows, log, go on
                log.exception("ledger writer failed; keeping %d rows in the spool", len(batch))
                self._spool_rows(batch)
            self._saved(batch)
            self.rows.batch_handled(len(batch), len(self.spool))
            if stopping:
                self._finish()
                return

    def handle(self, batch: list[LedgerRow], *, force: bool = False) -> None:
        """Write `batch` (after any spooled rows) to the database, or spool it."""
        try_db = self.available or force or time.monotonic() >= self.retry_at
        if try_db and len(self.spool):
            try_db = self._replay()
        if not batch:
            return
        if try_db and self._write(batch):
            return
        self._spool_rows(batch)

    def _saved(self, batch: list[LedgerRow]) -> None:
        """Tell the journal the batch is saved, unless the spool could only hold it in memory
        (then the journal keeps its copy for the next start)."""
        if self.on_saved is not None and batch and not self.spool.in_memory:
            try:
                self.on_saved(batch)
            except Exception:
                log.exception("could not release %d journaled rows", len(batch))

    def _finish(self) -> None:
        """On close: a last attempt at the spool; rows only held in memory are reported lost."""
        if len(self.spool):
            self.handle([], force=True)
        lost = self.spool.take_memory()
        for row in lost:  # the log is their last copy: it must hold the whole row
            log.error("ledger row lost at shutdown (no spool file): %s", row.model_dump_json())
        if lost:
            self.rows.count("rows_dropped", len(lost))
        self.rows.batch_handled(0, len(self.spool))

    # ----- database -------------------------------------------------------------------------
    def _write(self, rows: list[LedgerRow]) -> bool:
        try:
            self._store(rows)
        except Exception as error:
            self._mark_down(error)
            return False
        self._mark_up()
        return True

    def _replay(self) -> bool:
        """Insert every spooled row; the spool is emptied only when all are committed."""
        try:
            replayed = self.spool.drain(
                self.rows.batch_size, lambda chunk: self._store(chunk, spooled=True)
            )
        except Exception as error:
            self._mark_down(error)
            return False
        self.rows.spool_cleared()
        self._mark_up()
        log.info("ledger spool replayed: %d rows", replayed)
        return True

    def _store(self, rows: list[LedgerRow], *, spooled: bool = False) -> None:
        """Commit `rows`; isolate and reject rows the database refuses. Raises only errors that
        mean "try again later" (the database is down, locked, or its schema is missing)."""
        if not self.schema_ready:
            migrate(self.engine)
            self.schema_ready = True
        try:
            with self.engine.begin() as connection:
                insert_rows(connection, rows)
        except Exception as error:
            if not is_row_error(error):
                raise
            if len(rows) == 1:
                self._reject(rows[0], error)
            else:
                for row in rows:
                    self._store([row], spooled=spooled)
            return
        self.rows.committed(rows, spooled=spooled)

    def _reject(self, row: LedgerRow, error: BaseException) -> None:
        where = self.spool.reject([row.model_dump_json()])
        log.error(
            "ledger row %s refused by the database (%s); set aside in %s",
            row.query_id,
            first_line(error),
            where or "the log",
        )
        self.rows.rejected(row)

    def _mark_down(self, error: BaseException) -> None:
        self.rows.count("write_failures", 1)
        self.retry_at = time.monotonic() + self.retry_interval_s
        if self.available:
            log.warning(
                "ledger database %s unavailable (%s); spooling rows to %s and retrying every %ss",
                describe(self.engine.url),
                first_line(error),
                self.spool.path or "memory",
                self.retry_interval_s,
            )
        self.available = False
        self.rows.set_available(False)

    def _mark_up(self) -> None:
        if not self.available:
            log.warning("ledger database %s is back", describe(self.engine.url))
        self.available = True
        self.rows.set_available(True)

    def _spool_rows(self, rows: list[LedgerRow]) -> None:
        if rows:
            self.spool.append(rows)
            self.rows.spooled(rows)
