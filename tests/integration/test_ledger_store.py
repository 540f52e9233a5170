"""The ledger on a real database, SQLite and PostgreSQL: exact round trips, batching,
concurrency, reads of queued rows, time-range streaming, feedback."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestrator.ledger import FIELDS, Ledger, LedgerRow, UnknownQueryError, reader
from orchestrator.ledger.engine import current_revision, head_revision, make_engine
from tests.postgres import database_url
from tests.unit.test_ledger_row import T0, make_row

__all__ = ["database_url"]  # fixture used by this module

SLOW_FLUSH = 30.0  # seconds: the writer only wakes for full batches, flush() or close()


def stored_ids(url: str) -> list[str]:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            return list(connection.scalars(sa.text("SELECT query_id FROM ledger")))
    finally:
        engine.dispose()


def varied_rows() -> list[LedgerRow]:
    plus_five = datetime(2025, 6, 1, 23, 59, 59, 999999, tzinfo=UTC) + timedelta(hours=5)
    return [
        make_row(),
        make_row(
            query_id="err-1", status="error", http_status=503, error_type="unavailable",
            error_message="both models failed — réessayez", route=None, route_probability=None,
            router_version=None, adapter=None, answered_by=None, confidence=None,
            confidence_signal=None, threshold=None, escalated=False, escalation_reason=None,
            small_prompt_tokens=0, small_completion_tokens=0, large_prompt_tokens=0,
            large_completion_tokens=0, cost_small_usd=0, cost_large_usd=0, cost_usd=0,
            baseline_cost_usd=0, latency_router_ms=None, latency_small_ms=None,
            latency_large_ms=None, latency_total_ms=0.0, stream=True, created_at=plus_five,
        ),
        make_row(
            query_id="big", cost_usd=Decimal("99999.9999999999"),
            baseline_cost_usd=Decimal("0.0000000001"), latency_total_ms=1e-9,
            route_probability=1.0, confidence=0.0, threshold=1.0, small_prompt_tokens=2**31 - 1,
        ),
    ]  # fmt: skip


def test_schema_is_migrated_to_head_and_matches_the_row(database_url: str) -> None:
    with Ledger(database_url) as ledger:
        pass
    Ledger(database_url).start()  # a second start finds the schema done
    engine = make_engine(database_url)
    try:
        assert current_revision(engine) == head_revision()
        inspector = sa.inspect(engine)
        assert [c["name"] for c in inspector.get_columns("ledger")] == list(FIELDS)
        indexes = {i["name"] for i in inspector.get_indexes("ledger")}
        assert {"ix_ledger_created_at", "ix_ledger_tenant_created_at", "ix_ledger_route"} <= indexes
        assert "feedback" in inspector.get_table_names()
    finally:
        engine.dispose()
    assert ledger.stats.rows_recorded == 0


def test_rows_round_trip_exactly(database_url: str) -> None:
    rows = varied_rows()
    with Ledger(database_url) as ledger:
        for row in rows:
            ledger.record(row)
        assert ledger.flush(10)
        for row in rows:
            assert ledger.get(row.query_id) == row.model_dump()
        streamed = list(ledger.iter_rows())
    assert streamed == sorted(
        (r.model_dump() for r in rows), key=lambda r: (r["created_at"], r["query_id"])
    )
    for got in streamed:
        assert got["created_at"].utcoffset() == timedelta(0)
        assert isinstance(got["cost_usd"], Decimal)


@settings(
    max_examples=5, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    amounts=st.lists(
        st.decimals(min_value=0, max_value=Decimal("99999.9999999999"), places=10),
        min_size=1,
        max_size=40,
    )
)
def test_money_round_trips_exactly_property(database_url: str, amounts: list[Decimal]) -> None:
    rows = [
        make_row(query_id=f"m{time.monotonic_ns()}-{i}", cost_usd=a) for i, a in enumerate(amounts)
    ]
    with Ledger(database_url) as ledger:
        for row in rows:
            ledger.record(row)
        assert ledger.flush(10)
        engine = make_engine(database_url)
        try:
            for row in rows:
                assert reader.fetch_row(engine, row.query_id)["cost_usd"] == row.cost_usd  # type: ignore[index]
        finally:
            engine.dispose()


def test_full_batches_are_written_without_waiting(database_url: str) -> None:
    with Ledger(database_url, batch_size=10, flush_interval_s=SLOW_FLUSH) as ledger:
        for i in range(25):
            ledger.record(make_row(query_id=f"b{i}"))
        deadline = time.monotonic() + 10
        while ledger.stats.rows_written < 20 and time.monotonic() < deadline:
            time.sleep(0.02)
        stats = ledger.stats
        assert (stats.rows_written, stats.batches_written, stats.queued) == (20, 2, 5)
        assert ledger.get("b24") == make_row(query_id="b24").model_dump()  # still queued
        assert "b24" not in stored_ids(database_url)
        assert ledger.flush(10)
        assert ledger.stats.rows_written == 25 and ledger.stats.queued == 0
    assert len(stored_ids(database_url)) == 25


def test_queued_rows_are_readable_at_once(database_url: str) -> None:
    with Ledger(database_url, flush_interval_s=SLOW_FLUSH) as ledger:
        row = make_row(query_id="fresh")
        ledger.record(row)
        assert ledger.get("fresh") == row.model_dump()
        assert ledger.get("missing") is None
    assert stored_ids(database_url) == ["fresh"]  # close() wrote it


def test_concurrent_records_then_close_keep_every_row(database_url: str) -> None:
    threads, per_thread = 8, 250
    ledger = Ledger(database_url, batch_size=100)
    ledger.start()
    start = threading.Barrier(threads)

    def work(t: int) -> None:
        start.wait()
        for i in range(per_thread):
            ledger.record(make_row(query_id=f"t{t}-{i}"))

    workers = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert ledger.close()
    ids = stored_ids(database_url)
    assert len(ids) == threads * per_thread
    assert set(ids) == {f"t{t}-{i}" for t in range(threads) for i in range(per_thread)}
    assert ledger.stats.rows_written == threads * per_thread


def test_duplicate_query_ids_are_stored_once(database_url: str) -> None:
    with Ledger(database_url) as ledger:
        ledger.record(make_row(query_id="dup", tenant="first"))
        assert ledger.flush(10)
        ledger.record(make_row(query_id="dup", tenant="second"))
        assert ledger.flush(10)
    assert stored_ids(database_url) == ["dup"]


def test_iter_rows_filters_by_time_and_tenant(database_url: str) -> None:
    rows = [
        make_row(query_id=f"r{i}", created_at=T0 + timedelta(minutes=i), tenant=("a", "b")[i % 2])
        for i in range(10)
    ]
    with Ledger(database_url) as ledger:
        for row in reversed(rows):
            ledger.record(row)
        assert ledger.flush(10)
        ids = lambda **kw: [r["query_id"] for r in ledger.iter_rows(**kw)]  # noqa: E731
        assert ids() == [f"r{i}" for i in range(10)]
        since, until = T0 + timedelta(minutes=3), T0 + timedelta(minutes=7)
        assert ids(since=since, until=until) == ["r3", "r4", "r5", "r6"]  # until is exclusive
        assert ids(since=since, tenant="b") == ["r3", "r5", "r7", "r9"]
        assert ids(until=T0) == []
        with pytest.raises(ValueError, match="timezone-aware"):
            ids(since=datetime(2025, 1, 1))


def test_iter_rows_pages_through_equal_timestamps(database_url: str) -> None:
    rows = [make_row(query_id=f"same{i:02d}") for i in range(11)]  # all at T0
    with Ledger(database_url) as ledger:
        for row in rows:
            ledger.record(row)
        assert ledger.flush(10)
    engine = make_engine(database_url)
    try:
        got = [r["query_id"] for r in reader.iter_rows(engine, chunk_rows=3)]
    finally:
        engine.dispose()
    assert got == [r.query_id for r in rows]


def test_feedback(database_url: str) -> None:
    with Ledger(database_url, flush_interval_s=SLOW_FLUSH) as ledger:
        ledger.record(make_row(query_id="fb"))  # still queued: feedback is accepted anyway
        first = ledger.add_feedback("fb", 0.25, correct=False, comment="wrong statute")
        second = ledger.add_feedback("fb", 1, created_at=T0)
        assert second > first
        got = ledger.feedback("fb")
        assert [(f["score"], f["correct"], f["comment"]) for f in got] == [
            (0.25, False, "wrong statute"),
            (1.0, None, None),
        ]
        assert got[1]["created_at"] == T0
        with pytest.raises(UnknownQueryError):
            ledger.add_feedback("nope", 0.5)
        for bad in (1.5, -0.1, True):
            with pytest.raises(ValueError, match=r"\[0, 1\]"):
                ledger.add_feedback("fb", bad)
        with pytest.raises(ValueError, match="timezone-aware"):
            ledger.add_feedback("fb", 0.5, created_at=datetime(2025, 1, 1))


def test_bad_input_to_record_never_raises(database_url: str) -> None:
    ledger = Ledger(database_url)
    ledger.start()
    ledger.record({"query_id": "not a row"})  # type: ignore[arg-type]
    ledger.record(make_row(query_id="ok"))
    assert ledger.close() is False  # something was dropped: close says so
    ledger.record(make_row(query_id="late"))  # after close: dropped, logged, no exception
    assert ledger.stats.rows_dropped == 2
    assert stored_ids(database_url) == ["ok"]


def test_a_row_the_database_refuses_is_set_aside(database_url: str, tmp_path: Path) -> None:
    spool = tmp_path / "spool.jsonl"
    bad = LedgerRow.model_construct(**{**make_row(query_id="bad").model_dump(), "tenant": None})
    with Ledger(database_url, spool_path=spool) as ledger:
        for row in (make_row(query_id="g0"), bad, make_row(query_id="g1")):
            ledger.record(row)
        assert ledger.flush(10)
        assert ledger.stats.rows_rejected == 1
    assert sorted(stored_ids(database_url)) == ["g0", "g1"]
    assert '"bad"' in (tmp_path / "spool.jsonl.rejected").read_text()
