"""The spool: rows that could not reach the database, kept until it comes back.

With a path, rows are appended to a JSONL file, one `write` + `fsync` per batch, so a row the
writer has spooled survives a crash; a torn last line (a crash mid-write) is set aside in
`<path>.rejected` when replayed. Without a path, or when the file cannot be written, rows are
kept in memory (and are lost if the process ends before the database returns).

Several processes (ingress replicas) may share one spool file: appends and the
replay-then-truncate are serialized with an exclusive `flock` on `<path>.lock`, so a row
appended by one process is never truncated unread by another.
"""

from __future__ import annotations

import fcntl
import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from pydantic import ValidationError

from orchestrator.ledger.row import LedgerRow

log = logging.getLogger("spillway.ledger")


class Spool:
    """Oldest-first store of unwritten rows. Used by the writer thread only."""

    def __init__(self, path: Path | None):
        self.path = path
        self._memory: list[LedgerRow] = []
        self._file_rows = 0
        if path is not None:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                self._file_rows = _count_lines(path)
            except OSError as error:  # the service must still start; appends will say more
                log.error("cannot read the ledger spool %s: %s", path, error)
            if self._file_rows:
                log.warning("ledger spool %s holds %d rows from before", path, self._file_rows)

    def __len__(self) -> int:
        return self._file_rows + len(self._memory)

    @property
    def in_memory(self) -> int:
        return len(self._memory)

    def append(self, rows: list[LedgerRow]) -> None:
        """Keep `rows`: durably in the file when there is one, else in memory."""
        if self.path is not None:
            try:
                with self._locked():
                    self._append_file(self._memory + rows)  # and rows held after a failure
                self._memory.clear()
                return
            except OSError as error:
                log.error(
                    "cannot write the ledger spool %s (%s); holding rows in memory",
                    self.path,
                    error,
                )
        self._memory.extend(rows)

    def drain(self, size: int, store: Callable[[list[LedgerRow]], None]) -> int:
        """Pass every held row to `store` in chunks of `size`, then forget them all.

        If `store` raises, nothing is forgotten (the next drain starts over, which is why the
        database insert must ignore rows already present). Returns the number of rows.
        """
        count = 0
        with self._locked():
            for chunk in self.read_chunks(size):
                store(chunk)
                count += len(chunk)
            self._clear()
        return count

    def take_memory(self) -> list[LedgerRow]:
        """Remove and return the rows held only in memory."""
        rows, self._memory = self._memory, []
        return rows

    def read_chunks(self, size: int) -> Iterator[list[LedgerRow]]:
        """Every held row in chunks of `size`, file first; unparsable lines go to .rejected."""
        chunk: list[LedgerRow] = []
        for row in self._iter_file():
            chunk.append(row)
            if len(chunk) >= size:
                yield chunk
                chunk = []
        for row in self._memory:
            chunk.append(row)
            if len(chunk) >= size:
                yield chunk
                chunk = []
        if chunk:
            yield chunk

    def _clear(self) -> None:
        self._memory.clear()
        if self.path is not None and self.path.exists():
            with open(self.path, "r+b") as handle:
                handle.truncate(0)
                os.fsync(handle.fileno())
        self._file_rows = 0

    @contextmanager
    def _locked(self) -> Iterator[None]:
        if self.path is None:
            yield
            return
        lock_path = self.path.with_name(self.path.name + ".lock")
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock

    def reject(self, lines: list[str]) -> Path | None:
        """Set aside text that cannot become a row; returns where it went."""
        if self.path is None:
            for line in lines:
                log.error("ledger row rejected (no spool file to keep it): %s", line)
            return None
        target = self.path.with_name(self.path.name + ".rejected")
        with open(target, "a", encoding="utf-8") as handle:
            handle.writelines(line.rstrip("\n") + "\n" for line in lines)
            handle.flush()
            os.fsync(handle.fileno())
        return target

    def _append_file(self, rows: list[LedgerRow]) -> None:
        assert self.path is not None
        data = "".join(row.model_dump_json() + "\n" for row in rows).encode("utf-8")
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)
        self._file_rows += len(rows)

    def _iter_file(self) -> Iterator[LedgerRow]:
        if self.path is None or not self.path.exists():
            return
        with open(self.path, encoding="utf-8", errors="replace") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    yield LedgerRow.model_validate_json(line)
                except ValidationError as error:
                    where = self.reject([line])
                    log.error(
                        "ledger spool %s line %d is not a row (%s); moved to %s",
                        self.path,
                        number,
                        error.errors()[0]["msg"],
                        where,
                    )


def _count_lines(path: Path) -> int:
    if not path.exists():
        return 0
    with open(path, "rb") as handle:
        return sum(1 for line in handle if line.strip())
