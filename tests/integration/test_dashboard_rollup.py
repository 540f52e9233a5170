"""The rollup tables, kept by triggers as the ledger writes, hold exactly what a direct
computation over the rows gives: on SQLite and on PostgreSQL, with feedback stored before
and after its row, replayed (duplicate) rows, and rows still pending a fold on SQLite."""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa

from orchestrator.ledger import Ledger, LedgerRow
from orchestrator.ledger.engine import make_engine
from orchestrator.ledger.reader import insert_feedback
from orchestrator.ledger.rollup import (
    STAGES,
    TOP_K,
    confidence_bin,
    latency_bin,
    metadata,
    top_table,
)
from orchestrator.ledger.triggers import fold_pending, triggers_present
from tests.postgres import postgres_server  # noqa: F401

START = datetime(2025, 5, 1, 22, tzinfo=UTC)


def random_rows(count: int, seed: int = 7) -> list[LedgerRow]:
    rng = random.Random(seed)
    rows = []
    for i in range(count):
        route = rng.choice(["math", "code", None])
        adapter = route if route and rng.random() < 0.8 else None
        conf = None if rng.random() < 0.1 else rng.random()
        signal = None if conf is None else rng.choice(["mean_prob"] * 9 + ["difficulty"])
        escalated = conf is not None and conf < 0.5
        small = Decimal(rng.randint(0, 5000)) / Decimal(10**6)
        large = Decimal(rng.randint(1, 90000)) / Decimal(10**6) if escalated else Decimal(0)
        lat = [None if rng.random() < 0.2 else 10 ** rng.uniform(-0.5, 4.5) for _ in STAGES]
        rows.append(
            LedgerRow(
                query_id=f"r{i:05d}",
                created_at=START + timedelta(seconds=rng.randint(0, 3 * 86400)),
                tenant=rng.choice(["t1", "t2", "t3"]),
                status="ok" if rng.random() < 0.95 else "error",
                http_status=200,
                model_requested="auto",
                route=route,
                adapter=adapter,
                router_version=rng.choice(["v1", "v2", None]),
                confidence=conf,
                confidence_signal=signal,
                escalated=escalated,
                escalation_reason="low_confidence" if escalated else None,
                small_prompt_tokens=rng.randint(0, 900),
                small_completion_tokens=rng.randint(0, 300),
                large_prompt_tokens=rng.randint(0, 900) if escalated else 0,
                large_completion_tokens=rng.randint(0, 300) if escalated else 0,
                cost_small_usd=small,
                cost_large_usd=large,
                cost_usd=small + large,
                baseline_cost_usd=large or small * 9,
                latency_router_ms=lat[0],
                latency_small_ms=lat[1],
                latency_large_ms=lat[2],
                latency_total_ms=lat[3],
            )
        )
    return rows


def _floor(t: datetime, unit: str) -> datetime:
    t = t.replace(minute=0, second=0, microsecond=0)
    if unit == "hour":
        return t
    return t.replace(hour=0) if unit == "day" else t.replace(hour=0, day=1)


def _key(r: LedgerRow) -> str:
    return r.adapter or r.route or "base"


def _add(
    table: dict[tuple[Any, ...], list[float]], key: tuple[Any, ...], values: list[Any]
) -> None:
    table[key] = [
        a + float(b)
        for a, b in zip(table.setdefault(key, [0.0] * len(values)), values, strict=True)
    ]


def expected(rows: list[LedgerRow], feedback: dict[str, list[float]]) -> dict[str, Any]:
    want: dict[str, Any] = defaultdict(dict)
    tops: dict[tuple[Any, ...], list[float]] = defaultdict(list)
    for r in rows:
        counts: list[Any] = [
            1, r.confidence is not None, r.cost_usd, r.baseline_cost_usd, r.cost_small_usd,
            r.cost_large_usd, r.small_prompt_tokens, r.small_completion_tokens,
            r.large_prompt_tokens, r.large_completion_tokens,
        ]  # fmt: skip
        labels = (r.tenant, r.route or "", r.adapter or "", r.router_version or "", r.status)
        for name, unit in (("dash_hourly", "hour"), ("dash_daily", "day")):
            key: tuple[Any, ...] = (_floor(r.created_at, unit), *labels, r.escalated)
            _add(want[name], (*key, r.escalation_reason or ""), counts)
        if r.confidence is not None and r.confidence_signal != "difficulty":
            scores = feedback.get(r.query_id, [])
            fb = (
                [0, 0, len(scores), sum(scores)]
                if r.escalated
                else [len(scores), sum(scores), 0, 0]
            )
            values = [1, r.escalated, r.cost_usd, r.cost_small_usd, r.baseline_cost_usd, *fb]
            for name, unit in (("dash_confidence", "day"), ("dash_confidence_monthly", "month")):
                bin_index = confidence_bin(r.confidence)
                _add(want[name], (_floor(r.created_at, unit), r.tenant, _key(r), bin_index), values)
        for stage in STAGES:
            ms = getattr(r, f"latency_{stage}_ms")
            if ms is not None:
                for name, unit in (("dash_latency", "day"), ("dash_latency_monthly", "month")):
                    bucket = _floor(r.created_at, unit)
                    _add(want[name], (bucket, r.tenant, _key(r), stage, latency_bin(ms)), [1, ms])
        tops[(_floor(r.created_at, "day"), r.tenant, _key(r))].append(float(r.cost_usd))
    want["dash_top"] = {k: sorted(v, reverse=True)[:TOP_K] for k, v in tops.items()}
    return dict(want)


def stored(engine: sa.Engine) -> dict[str, Any]:
    got: dict[str, Any] = {}
    with engine.connect() as c:
        for table in metadata.sorted_tables:
            if table.name == "dash_top":
                continue
            keys = len(table.primary_key.columns)
            got[table.name] = {
                tuple(row[:keys]): [float(v) for v in row[keys:]]
                for row in c.execute(sa.select(table))
            }
        top: dict[tuple[Any, ...], list[float]] = defaultdict(list)
        for row in c.execute(sa.select(top_table)):
            top[tuple(row[:3])].append(float(row.cost_usd))
    got["dash_top"] = {k: sorted(v, reverse=True) for k, v in top.items()}
    return got


def assert_same(actual: dict[Any, list[float]], wanted: dict[Any, list[float]]) -> None:
    assert set(actual) == set(wanted)
    for key, values in wanted.items():
        assert actual[key] == pytest.approx(values, rel=1e-9, abs=1e-9), key


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def ledger_url(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'ledger.db'}"
    else:
        yield request.getfixturevalue("postgres_server").create_database()


def test_rollups_match_the_rows(ledger_url: str) -> None:
    rows = random_rows(5000)
    early, late = rows[::37], rows[5::23]  # feedback stored before / after its row
    feedback: dict[str, list[float]] = defaultdict(list)
    engine = make_engine(ledger_url)
    with Ledger(ledger_url, batch_size=500) as ledger:
        with engine.connect() as c:
            assert triggers_present(c)
        for i, row in enumerate(early):
            insert_feedback(
                engine, {"query_id": row.query_id, "created_at": START, "score": (i % 5) / 4}
            )
            feedback[row.query_id].append((i % 5) / 4)
        for row in rows + rows[:300]:  # the last 300 are replays: the database skips them
            ledger.record(row)
        assert ledger.flush(120)
        for i, row in enumerate(late):
            ledger.add_feedback(row.query_id, (i % 3) / 2)
            feedback[row.query_id].append((i % 3) / 2)
    fold_pending(engine)
    want, got = expected(rows, feedback), stored(engine)
    engine.dispose()
    assert set(got) == set(want) and len(got) == 7
    for name, table in want.items():
        assert_same(got[name], table)
