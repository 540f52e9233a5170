"""The journal: a query's row made durable on the ingress host before its response leaves.

`Journal.append(row)` hands the row to a committer thread and returns a future that completes
once the row is written and `fdatasync`'d to the current segment file. The committer writes
every row waiting at that moment with one `write` and one `fdatasync` (group commit), so
concurrent requests share the cost of a sync instead of queueing behind one each. Only then is
the row passed on (`Journal.start`'s `then`: the ledger's queue to the database), so the
database writer only ever sees journaled rows.

Segments: a journal writes `<dir>/<owner>-<n>.jsonl` files and holds an exclusive `flock` on
each until it deletes it. The ledger's writer calls `release(rows)` once rows are in the
database (or its fsync'd spool); a segment that is no longer written to and whose rows are all
released is deleted. After a crash (SIGKILL, OOM, a lost node process) the dead owner's
segments are left unlocked: the next journal started on the same directory adopts their rows
(`start` → `_recover`: rewritten into its own segment, then passed on like new rows) and
deletes them. The database insert skips query_ids it already holds, so a row that was both
committed and still journaled when its process died is stored once.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from orchestrator.ledger.row import LedgerRow

__all__ = ["Journal", "JournalStats"]

log = logging.getLogger("spillway.ledger")

# A new segment after this many rows or seconds: small files that are deleted soon after.
SEGMENT_ROWS = 5000
SEGMENT_AGE_S = 10.0


@dataclass(frozen=True)
class JournalStats:
    rows_journaled: int = 0
    syncs: int = 0  # group commits: rows_journaled / syncs is the mean group size
    rows_recovered: int = 0  # adopted from the segments of a process that died
    write_failures: int = 0  # rows passed on without being durable (the disk refused them)
    sync_seconds: float = 0.0  # time spent writing and syncing, all group commits together
    segments: int = 0  # segment files this journal holds now


@dataclass
class _Segment:
    number: int
    path: Path
    fd: int
    opened: float = field(default_factory=time.monotonic)
    rows: int = 0
    outstanding: int = 0  # rows written here and not yet released


class Journal:
    """Append-only, fsync'd, group-committed row journal of one ledger in one process."""

    def __init__(self, directory: Path, *, segment_rows: int = SEGMENT_ROWS):
        self.directory = Path(directory)
        self._owner = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._segment_rows = segment_rows
        self._cv = threading.Condition(threading.Lock())
        self._pending: list[tuple[LedgerRow, Future[None]]] = []
        self._pending_ids: dict[str, LedgerRow] = {}
        self._segments: dict[int, _Segment] = {}
        self._segment_of: dict[str, int] = {}
        self._current: _Segment | None = None
        self._counts = {"rows_journaled": 0, "syncs": 0, "rows_recovered": 0}
        self._counts["write_failures"] = 0
        self._sync_seconds = 0.0
        self._then: Callable[[LedgerRow], None] = lambda row: None
        self._closing = False
        self._thread: threading.Thread | None = None

    # ----- lifecycle ------------------------------------------------------------------------
    def start(self, then: Callable[[LedgerRow], None]) -> int:
        """Open a segment, adopt the segments of dead processes (passing their rows to `then`)
        and start committing. Returns the number of rows recovered."""
        self._then = then
        self.directory.mkdir(parents=True, exist_ok=True)
        self._current = self._open_segment(0)
        recovered = self._recover()
        self._thread = threading.Thread(
            target=self._run, name="spillway-ledger-journal", daemon=True
        )
        self._thread.start()
        return recovered

    def drain(self, timeout: float = 30.0) -> None:
        """Refuse new rows and wait until every appended one is written and passed on."""
        with self._cv:
            self._closing = True
            self._cv.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)

    def close(self) -> None:
        """After the writer has finished: delete fully released segments, keep the others
        (their rows were not saved; the next start on this directory adopts them)."""
        self.drain()
        with self._cv:
            self._current = None
            for segment in list(self._segments.values()):
                if segment.outstanding == 0:
                    self._delete(segment)
                else:
                    kept = segment.outstanding
                    log.warning("ledger journal %s keeps %d rows", segment.path, kept)
                    os.close(segment.fd)
            self._segments.clear()

    # ----- the request path -----------------------------------------------------------------
    def append(self, row: LedgerRow) -> Future[None]:
        """Queue `row` for the next group commit; the future completes when it is durable."""
        done: Future[None] = Future()
        with self._cv:
            if self._closing:
                raise RuntimeError("the ledger journal is closed")
            self._pending.append((row, done))
            self._pending_ids[row.query_id] = row
            self._cv.notify()
        return done

    def find(self, query_id: str) -> LedgerRow | None:
        """A row appended but not yet committed."""
        with self._cv:
            return self._pending_ids.get(query_id)

    def release(self, rows: list[LedgerRow]) -> None:
        """`rows` are saved elsewhere now: their segments may go once no row there is left."""
        with self._cv:
            for row in rows:
                number = self._segment_of.pop(row.query_id, None)
                segment = self._segments.get(number) if number is not None else None
                if segment is not None:
                    segment.outstanding -= 1
                    if segment.outstanding <= 0 and segment is not self._current:
                        self._delete(segment)

    def stats(self) -> JournalStats:
        with self._cv:
            return JournalStats(
                **self._counts, sync_seconds=self._sync_seconds, segments=len(self._segments)
            )

    # ----- the committer thread -------------------------------------------------------------
    def _run(self) -> None:
        while True:
            with self._cv:
                while not self._pending and not self._closing:
                    self._cv.wait()
                batch, self._pending = self._pending, []
                if not batch and self._closing:
                    return
            self._commit(batch)

    def _commit(self, batch: list[tuple[LedgerRow, Future[None]]]) -> None:
        rows = [row for row, _ in batch]
        durable = self._write(rows)
        with self._cv:
            for row in rows:
                self._pending_ids.pop(row.query_id, None)
        for row, done in batch:
            self._pass_on(row)
            done.set_result(None)
        if not durable:
            self._count("write_failures", len(rows))

    def _write(self, rows: list[LedgerRow]) -> bool:
        """Append `rows` to the current segment with one write and one fdatasync."""
        segment = self._current_for_write()
        data = "".join(row.model_dump_json() + "\n" for row in rows).encode("utf-8")
        started = time.perf_counter()
        try:
            _write_all(segment.fd, data)
            os.fdatasync(segment.fd)
        except OSError as error:  # the rows still go to the database; only durability is lost
            log.error("cannot write the ledger journal %s: %s", segment.path, error)
            return False
        with self._cv:
            self._sync_seconds += time.perf_counter() - started
            segment.rows += len(rows)
            segment.outstanding += len(rows)
            for row in rows:
                self._segment_of[row.query_id] = segment.number
            self._counts["rows_journaled"] += len(rows)
            self._counts["syncs"] += 1
        return True

    def _current_for_write(self) -> _Segment:
        """The segment to append to, a new one when the current is full or old."""
        with self._cv:
            current = self._current
            assert current is not None, "the journal is not started"
            full = current.rows >= self._segment_rows
            old = current.rows and time.monotonic() - current.opened > SEGMENT_AGE_S
            if not (full or old):
                return current
        fresh = self._open_segment(current.number + 1)
        with self._cv:
            self._current = fresh
            if current.outstanding <= 0:
                self._delete(current)
        return fresh

    def _pass_on(self, row: LedgerRow) -> None:
        try:
            self._then(row)
        except Exception:  # the ledger counts and logs what it cannot queue
            log.exception("ledger row %s could not be queued after journaling", row.query_id)

    def _count(self, name: str, amount: int) -> None:
        with self._cv:
            self._counts[name] += amount

    # ----- files ----------------------------------------------------------------------------
    def _open_segment(self, number: int) -> _Segment:
        path = self.directory / f"{self._owner}-{number:06d}.jsonl"
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
        _sync_directory(self.directory)  # the new name survives a crash too
        segment = _Segment(number, path, fd)
        with self._cv:
            self._segments[number] = segment
        return segment

    def _delete(self, segment: _Segment) -> None:
        """Unlink, then unlock (closing the fd): nobody adopts a file being deleted."""
        try:
            segment.path.unlink(missing_ok=True)
        finally:
            os.close(segment.fd)
            self._segments.pop(segment.number, None)

    def _recover(self) -> int:
        """Adopt the rows of every segment no live journal holds, then delete those files."""
        recovered = 0
        for path in sorted(self.directory.glob("*.jsonl")):
            if path.name.startswith(self._owner + "-"):
                continue
            with _OrphanSegment(path) as orphan:
                rows = orphan.rows
                if rows is None:
                    continue  # a live process holds it
                orphan.keep = bool(rows) and not self._write(rows)  # not durable here: keep it
                for row in rows:
                    self._pass_on(row)
                recovered += len(rows)
                log.warning("ledger journal: recovered %d rows from %s", len(rows), path.name)
        self._count("rows_recovered", recovered)
        return recovered


class _OrphanSegment:
    """Context manager over segment `path`: `rows` are its rows if no live process holds its
    lock (None otherwise); on a clean exit the file is deleted, still under the lock, unless
    `keep` was set."""

    def __init__(self, path: Path):
        self.path = path
        self.fd = -1
        self.rows: list[LedgerRow] | None = None
        self.keep = False

    def __enter__(self) -> _OrphanSegment:
        try:
            self.fd = os.open(self.path, os.O_RDONLY)
        except OSError:  # already gone
            return self
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # held by its owner, alive
            os.close(self.fd)
            self.fd = -1
            return self
        self.rows = list(_read_rows(self.path))
        return self

    def __exit__(self, kind: type[BaseException] | None, *rest: object) -> None:
        if self.fd < 0:
            return
        try:
            if kind is None and not self.keep:
                self.path.unlink(missing_ok=True)
        finally:
            os.close(self.fd)


def _read_rows(path: Path) -> Iterator[LedgerRow]:
    """Every whole row of a segment; a torn last line (a crash mid-write) was never
    acknowledged to anyone and is skipped."""
    with open(path, encoding="utf-8", errors="replace") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                yield LedgerRow.model_validate_json(line)
            except ValidationError:
                log.warning("ledger journal %s line %d is torn; skipped", path.name, number)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _sync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
