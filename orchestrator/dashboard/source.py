"""The dashboard's handle on the ledger database: its own engine, and read connections that
first fold SQLite's pending rows into the rollups. A database that cannot answer is a
`StatsUnavailable` (the HTTP routes make it a 503)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, TypeAlias

import sqlalchemy as sa
from sqlalchemy import event, exc

from cascade.policy import CascadePolicy
from orchestrator.ledger.engine import describe, first_line, is_unavailable, make_engine
from orchestrator.ledger.rollup import hourly_table
from orchestrator.ledger.triggers import fold_pending

PolicyLike: TypeAlias = CascadePolicy | Mapping[str, float]
PolicySource: TypeAlias = PolicyLike | Callable[[], PolicyLike]


def threshold_lookup(policy: PolicySource) -> Callable[[str], float | None]:
    """route -> current threshold. A mapping may give a default under the key "*"."""

    def lookup(route: str) -> float | None:
        current = policy() if callable(policy) else policy
        if isinstance(current, CascadePolicy):
            return current.for_route(route).threshold
        value = current.get(route, current.get("*"))
        return float(value) if value is not None else None

    return lookup


class StatsUnavailable(Exception):
    """The ledger database cannot answer a stats query; `code` says why, for the client."""

    def __init__(self, message: str, *, code: str = "service_unavailable"):
        super().__init__(message)
        self.message = message
        self.code = code


class StatsSource:
    """Read access to the ledger's rollups. The engine is created on first use."""

    def __init__(self, ledger_url: str):
        self.ledger_url = ledger_url
        self._engine: sa.Engine | None = None
        self._checked = False
        self._lock = threading.Lock()

    @property
    def engine(self) -> sa.Engine:
        with self._lock:
            if self._engine is None:
                self._engine = make_engine(self.ledger_url)
                if self._engine.dialect.name == "sqlite":
                    event.listen(self._engine, "connect", _sqlite_temp_in_memory)
            return self._engine

    @contextmanager
    def connect(self) -> Iterator[sa.Connection]:
        """A read connection over up-to-date rollups; StatsUnavailable if the database cannot
        answer."""
        engine = self.engine
        try:
            self._check_schema(engine)
            fold_pending(engine)
            with engine.connect() as connection:
                yield connection
        except exc.DBAPIError as error:
            if not is_unavailable(error):
                raise
            raise StatsUnavailable(
                f"the ledger database at {describe(engine.url)} cannot answer: {first_line(error)}"
            ) from error

    def _check_schema(self, engine: sa.Engine) -> None:
        if self._checked:
            return
        if not sa.inspect(engine).has_table(hourly_table.name):
            raise StatsUnavailable(
                f"the ledger at {describe(engine.url)} has no dashboard rollups yet: run the "
                "ledger migrations (`spillway ledger migrate`, or start the service once)",
                code="ledger_not_migrated",
            )
        self._checked = True

    def close(self) -> None:
        with self._lock:
            if self._engine is not None:
                self._engine.dispose()
                self._engine = None


def _sqlite_temp_in_memory(dbapi_connection: Any, _record: Any) -> None:
    # Folding pending rows sorts and groups; temp files would cost more than the work.
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA temp_store = MEMORY")
    finally:
        cursor.close()
