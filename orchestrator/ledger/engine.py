"""Engines for the ledger database and the schema migrations that prepare it."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event, exc
from sqlalchemy.engine import URL, Engine

from orchestrator.ledger.errors import LedgerError, LedgerUnavailable
from orchestrator.ledger.schema import LEDGER_TABLE, VERSION_TABLE

log = logging.getLogger("spillway.ledger")

URL_HELP = "use sqlite:///path/to/ledger.db or postgresql+psycopg://user:password@host:5432/db"
# Any 64-bit number, the same in every process: serializes concurrent migrations on PostgreSQL.
MIGRATION_LOCK_ID = 0x5350_494C_4C57_4159 & 0x7FFF_FFFF_FFFF_FFFF


def parse_url(url: str | URL) -> URL:
    """Validate a ledger URL; `postgresql://` and `postgres://` mean the psycopg 3 driver."""
    try:
        parsed = sa.make_url(url)
    except (exc.ArgumentError, ValueError) as error:
        raise ValueError(
            f"ledger URL {url!r} is not a database URL ({error}); {URL_HELP}"
        ) from None
    backend = parsed.get_backend_name()
    if backend == "postgres" or parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise ValueError(f"ledger URL {describe(parsed)!r}: unsupported database; {URL_HELP}")
    if parsed.get_backend_name() == "sqlite" and parsed.database in (None, "", ":memory:"):
        raise ValueError(
            "the ledger needs a file: an in-memory SQLite database is private to one "
            f"connection; {URL_HELP}"
        )
    return parsed


def describe(url: str | URL) -> str:
    """The URL with its password hidden, for messages and logs."""
    return sa.make_url(url).render_as_string(hide_password=True)


def sqlite_path(url: URL) -> Path | None:
    return Path(url.database) if url.get_backend_name() == "sqlite" and url.database else None


def make_engine(
    url: str | URL, *, busy_timeout_ms: int = 5000, connect_timeout_s: float = 5.0
) -> Engine:
    """An engine tuned for the ledger: SQLite in WAL mode, PostgreSQL with liveness checks."""
    parsed = parse_url(url)
    if parsed.get_backend_name() == "sqlite":
        engine = sa.create_engine(parsed, connect_args={"timeout": busy_timeout_ms / 1000})
        _sqlite_pragmas(engine, busy_timeout_ms)
        return engine
    return sa.create_engine(
        parsed,
        pool_pre_ping=True,
        pool_size=4,
        max_overflow=4,
        connect_args={"connect_timeout": max(1, round(connect_timeout_s))},
    )


def _sqlite_pragmas(engine: Engine, busy_timeout_ms: int) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        try:
            # busy_timeout first: switching to WAL needs a lock another process may hold.
            cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA synchronous = NORMAL")
        finally:
            cursor.close()


def prepare_sqlite_file(url: URL) -> None:
    """Create the SQLite file's directory, so a fresh checkout needs no setup."""
    path = sqlite_path(url)
    if path is not None and not path.parent.exists():
        path.parent.mkdir(parents=True, exist_ok=True)


def is_unavailable(error: BaseException) -> bool:
    """Whether a failure means "the database cannot be reached now" rather than a bad row."""
    if isinstance(error, exc.DBAPIError):
        if error.connection_invalidated:
            return True
        return isinstance(error, exc.OperationalError | exc.InterfaceError)
    return isinstance(error, exc.TimeoutError | exc.DisconnectionError | OSError)


def is_row_error(error: BaseException) -> bool:
    """Whether a failed insert is the rows' fault (a constraint, a value the column refuses),
    so retrying the same rows can never succeed. Anything else is retried later."""
    if isinstance(error, exc.IntegrityError | exc.DataError):
        return True
    if isinstance(error, exc.DBAPIError):
        return False
    if isinstance(error, exc.StatementError):  # raised while binding parameters
        error = error.orig if error.orig is not None else error
    return isinstance(error, ValueError | TypeError | UnicodeError | OverflowError)


def alembic_config() -> Any:
    """Alembic settings built in code: the scripts ship inside the package, no alembic.ini."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", "orchestrator.ledger:migrations")
    return config


def migrate(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to `revision`. Concurrent callers are safe: PostgreSQL serializes them
    with an advisory lock; on SQLite the loser of a race finds the schema done and retries."""
    from alembic import command

    config = alembic_config()
    for attempt in (1, 2, 3):
        try:
            with engine.begin() as connection:
                config.attributes["connection"] = connection
                command.upgrade(config, revision)
            return
        except exc.DBAPIError as error:
            if is_unavailable(error) and not _is_locked(error):
                raise LedgerUnavailable(unavailable_message(engine, error)) from error
            if attempt == 3:
                raise LedgerError(
                    f"migrating the ledger at {describe(engine.url)} failed: {first_line(error)}"
                ) from error
            log.info("ledger migration raced another process; retrying")
            time.sleep(0.2 * attempt)


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
        return context.get_current_revision()  # type: ignore[no-any-return]


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "the ledger migrations have no head revision"
    return head  # type: ignore[no-any-return]


def check_ledger_exists(engine: Engine) -> None:
    """For readers: fail clearly when the URL points at a database without a ledger."""
    try:
        present = sa.inspect(engine).has_table(LEDGER_TABLE)
    except exc.DBAPIError as error:
        raise LedgerUnavailable(unavailable_message(engine, error)) from error
    if not present:
        raise LedgerError(
            f"{describe(engine.url)} has no ledger table; check the URL, or create the schema "
            "with `spillway ledger migrate --db URL` (the service also creates it on start)"
        )


def _is_locked(error: exc.DBAPIError) -> bool:
    return "locked" in str(error.orig).lower() or "already exists" in str(error.orig).lower()


def first_line(error: BaseException) -> str:
    orig = getattr(error, "orig", None) or error
    text = str(orig).strip()
    return text.splitlines()[0] if text else type(orig).__name__


def unavailable_message(engine: Engine, error: BaseException) -> str:
    return (
        f"cannot reach the ledger database at {describe(engine.url)}: {first_line(error)}. "
        "Check the URL and that the database server is running and accepts connections."
    )
