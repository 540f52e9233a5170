"""The ledger when its database is unavailable: rows go to the spool, come back when the
database does, none lost and none duplicated (issue 6). SQLite is made unavailable by
another connection holding its write lock; PostgreSQL by stopping the server."""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from orchestrator.ledger import Ledger, LedgerUnavailable
from tests.integration.test_ledger_store import stored_ids
from tests.postgres import PostgresServer, PostgresUnavailable, database_url, start_server
from tests.unit.test_ledger_row import make_row

__all__ = ["database_url"]  # fixture used by this module

FAST = {"batch_size": 50, "busy_timeout_ms": 100, "retry_interval_s": 0.2, "connect_timeout_s": 2}


def wait_for(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting for the ledger writer"
        time.sleep(0.02)


def record_many(ledger: Ledger, prefix: str, count: int, threads: int = 4) -> list[str]:
    ids = [f"{prefix}{i}" for i in range(count)]

    def work(part: list[str]) -> None:
        for query_id in part:
            ledger.record(make_row(query_id=query_id))

    workers = [threading.Thread(target=work, args=(ids[t::threads],)) for t in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return ids


def assert_exactly(url: str, expected: list[str]) -> None:
    stored = stored_ids(url)
    assert len(stored) == len(set(stored)), "duplicate rows"
    assert sorted(stored) == sorted(expected)


class SqliteLock:
    """Hold the SQLite write lock from another connection: the ledger's writes time out."""

    def __init__(self, path: Path):
        self.connection = sqlite3.connect(path, isolation_level=None)

    def __enter__(self) -> SqliteLock:
        self.connection.execute("BEGIN IMMEDIATE")
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.connection.execute("ROLLBACK")
        self.connection.close()


def test_sqlite_outage_spools_then_recovers_in_process(tmp_path: Path) -> None:
    db, spool = tmp_path / "ledger.db", tmp_path / "spool.jsonl"
    url = f"sqlite:///{db}"
    ledger = Ledger(url, spool_path=spool, **FAST)  # type: ignore[arg-type]
    ledger.start()
    before = record_many(ledger, "a", 120)
    assert ledger.flush(10)
    with SqliteLock(db):
        during = record_many(ledger, "b", 300)
        wait_for(lambda: ledger.stats.rows_spooled == 300)
        stats = ledger.stats
        assert stats.write_failures >= 1 and not stats.database_available
        assert len(spool.read_text().splitlines()) == 300
        assert ledger.get("b150") == make_row(query_id="b150").model_dump()  # from the spool
        assert ledger.flush(timeout=0.3) is False
    after = record_many(ledger, "c", 80)
    assert ledger.flush(10)
    assert ledger.stats.database_available and ledger.stats.spooled == 0
    assert ledger.close()
    assert spool.read_text() == ""
    assert_exactly(url, before + during + after)


def test_rows_spooled_at_shutdown_are_replayed_by_the_next_start(tmp_path: Path) -> None:
    db, spool = tmp_path / "ledger.db", tmp_path / "spool.jsonl"
    url = f"sqlite:///{db}"
    Ledger(url).start()  # the schema exists; then the database becomes unavailable
    first = Ledger(url, spool_path=spool, **FAST)  # type: ignore[arg-type]
    with SqliteLock(db):
        first.start(require_database=False)
        ids = record_many(first, "s", 200)
        assert first.close()  # everything is in the spool file: nothing lost
        assert first.stats.rows_written == 0
    assert len(spool.read_text().splitlines()) == 200
    with Ledger(url, spool_path=spool, **FAST) as second:  # type: ignore[arg-type]
        assert second.flush(10)
    assert_exactly(url, ids)


def test_spool_left_by_a_crash_is_replayed_once(database_url: str, tmp_path: Path) -> None:
    rows = [make_row(query_id=f"c{i}") for i in range(10)]
    with Ledger(database_url) as ledger:  # c0..c3 reached the database before the crash
        for row in rows[:4]:
            ledger.record(row)
    spool = tmp_path / "spool.jsonl"
    torn = '{"query_id": "torn", "created_at": "20'
    spool.write_text("".join(row.model_dump_json() + "\n" for row in rows) + torn)
    with Ledger(database_url, spool_path=spool) as ledger:
        assert ledger.flush(10)
        assert ledger.stats.rows_written == 10  # c0..c3 skipped by the database, not duplicated
    assert_exactly(database_url, [row.query_id for row in rows])
    assert '"torn"' in (tmp_path / "spool.jsonl.rejected").read_text()


def test_without_a_spool_file_rows_lost_at_shutdown_are_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = tmp_path / "ledger.db"
    ledger = Ledger(f"sqlite:///{db}", **FAST)  # type: ignore[arg-type]
    ledger.start()
    with SqliteLock(db), caplog.at_level(logging.ERROR, "spillway.ledger"):
        ledger.record(make_row(query_id="only-in-memory"))
        assert ledger.close() is False
    assert ledger.stats.rows_dropped == 1
    assert '"query_id":"only-in-memory"' in caplog.text  # the log keeps the whole row


# ----- PostgreSQL: stop the server under load, start it again -------------------------------
@pytest.fixture(scope="module")
def own_server() -> Iterator[PostgresServer]:
    """A server of our own: these tests stop and start it."""
    try:
        server = start_server()
    except PostgresUnavailable as error:
        pytest.skip(f"no PostgreSQL server: {error}")
    try:
        yield server
    finally:
        server.destroy()


@pytest.mark.postgres
def test_postgres_outage_under_load_loses_nothing(
    own_server: PostgresServer, tmp_path: Path
) -> None:
    url = own_server.create_database()
    spool = tmp_path / "spool.jsonl"
    ledger = Ledger(url, spool_path=spool, **FAST)  # type: ignore[arg-type]
    ledger.start()
    before = record_many(ledger, "a", 150)
    assert ledger.flush(10)
    own_server.stop()
    try:
        during = record_many(ledger, "b", 300)
        wait_for(lambda: ledger.stats.rows_spooled >= 300)
        assert not ledger.stats.database_available and ledger.stats.write_failures >= 1
        assert ledger.get("b7") == make_row(query_id="b7").model_dump()
        with pytest.raises(LedgerUnavailable, match="cannot reach"):
            ledger.get("not-recorded")
    finally:
        own_server.start()
    after = record_many(ledger, "c", 100)
    assert ledger.flush(30)
    assert ledger.close()
    assert_exactly(url, before + during + after)


@pytest.mark.postgres
def test_postgres_down_at_start(own_server: PostgresServer, tmp_path: Path) -> None:
    url = own_server.create_database()
    spool = tmp_path / "spool.jsonl"
    own_server.stop()
    try:
        with pytest.raises(LedgerUnavailable, match="cannot reach the ledger database"):
            Ledger(url, **FAST).start()  # type: ignore[arg-type]
        ledger = Ledger(url, spool_path=spool, **FAST)  # type: ignore[arg-type]
        ledger.start(require_database=False)  # serve anyway; the schema comes later
        ids = record_many(ledger, "d", 120)
        wait_for(lambda: ledger.stats.rows_spooled == 120)
    finally:
        own_server.start()
    assert ledger.flush(30)
    assert ledger.close()
    assert_exactly(url, ids)
