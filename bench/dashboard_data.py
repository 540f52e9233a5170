# ruff: noqa: E501  (SQL reads best on one line)
"""Synthetic ledger rows for the dashboard benchmark, generated inside the database.

Rows are computed in SQL from their index `i` (a recursive CTE on SQLite, generate_series on
PostgreSQL) with fixed pseudo-random streams `h_k(i) = (i * P_k mod M) / M`, so a run is
reproducible and inserts run at the database's own speed, not Python's. The mix: 5 tenants
(skewed), 8 router labels, 7 % abstentions (no adapter), 3 % sent to the large model directly,
1 % failures, 2 % skipped as predicted hard, small-model confidence skewed high with a 0.6
threshold; two router versions; spread evenly over `days` days ending at `END`.
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa

END = datetime(2025, 7, 1, tzinfo=UTC)
LABELS = ("legal", "medical", "code", "math", "finance", "support", "travel", "general")
PRIMES = (2654435761, 2246822519, 3266489917, 668265263, 374761393, 1181783497, 2034174143,
          1597334677, 3812015801, 433494437, 1500450271)  # fmt: skip
MODULUS = 1000003
THRESHOLD = 0.6


def _h(dialect: str, k: int) -> str:
    draw = f"((i * {PRIMES[k]}) % {MODULUS}) / {MODULUS}.0"
    return f"({draw})::double precision" if dialect == "postgresql" else draw


def _index(dialect: str, expression: str, n: int) -> str:
    if dialect == "postgresql":
        return f"floor(({expression}) * {n})::integer"
    return f"CAST(({expression}) * {n} AS INTEGER)"


def _pick(index: str, names: tuple[str, ...]) -> str:
    whens = " ".join(f"WHEN {i} THEN '{name}'" for i, name in enumerate(names))
    return f"(CASE {index} {whens} END)"


def _money(dialect: str, expression: str) -> str:
    return (
        f"round(({expression})::numeric, 10)"
        if dialect == "postgresql"
        else f"round({expression}, 10)"
    )


def _created_at(dialect: str, rows: int, days: int) -> str:
    step = days * 86400 / rows
    start = END.timestamp() - days * 86400
    if dialect == "postgresql":
        return f"to_timestamp({start} + i * {step})"
    return f"strftime('%Y-%m-%d %H:%M:%f', {start} + i * {step}, 'unixepoch') || '000'"


def _inner(dialect: str, rows: int, days: int) -> str:
    """Per-row draws: h0..h10 and the row's kind."""
    draws = ", ".join(f"{_h(dialect, k)} AS h{k}" for k in range(len(PRIMES)))
    return (
        f"SELECT i, {draws}, {_created_at(dialect, rows, days)} AS created_at, "
        f"CASE WHEN {_h(dialect, 4)} < 0.01 THEN 'error' WHEN {_h(dialect, 3)} < 0.03 THEN 'large' "
        f"WHEN {_h(dialect, 6)} < 0.02 THEN 'hard' ELSE 'small' END AS kind"
    )


def select_rows(dialect: str, rows: int, days: int) -> str:
    """SELECT producing ledger columns for i in the source's range (see `insert_sql`)."""
    tenant = _pick(_index(dialect, "h0 * h0", 5), tuple(f"tenant-{t}" for t in range(5)))
    label = _pick(_index(dialect, "h1", len(LABELS)), LABELS)
    conf = "(h5 * (2 - h5))"  # skewed towards 1
    small_in, small_out = "(50 + (i * 7) % 900)", "(20 + (i * 13) % 300)"
    small_cost = f"({small_in} * 0.0000001 + {small_out} * 0.0000002)"
    large_cost = f"({small_in} * 0.0000025 + {small_out} * 0.00001)"
    escalated = f"(kind = 'hard' OR (kind = 'small' AND {conf} < {THRESHOLD}))"
    ran_large = f"({escalated} OR kind = 'large')"
    ran_small = "(kind = 'small' OR (kind = 'error' AND h7 < 0.5))"
    columns = {
        "query_id": "'q-' || CAST(i AS TEXT)",
        "created_at": "created_at",
        "tenant": tenant,
        "status": "CASE WHEN kind = 'error' THEN 'error' ELSE 'ok' END",
        "http_status": "CASE WHEN kind = 'error' THEN 503 ELSE 200 END",
        "model_requested": "CASE WHEN kind = 'large' THEN 'large-model' ELSE 'auto' END",
        "stream": "(i % 3 = 0)",
        "route": f"CASE WHEN kind = 'large' THEN NULL ELSE {label} END",
        "route_probability": "CASE WHEN kind = 'large' THEN NULL ELSE 0.3 + 0.7 * h2 END",
        "router_version": f"CASE WHEN kind = 'large' THEN NULL WHEN i < {rows // 2} THEN 'router-v1' ELSE 'router-v2' END",
        "adapter": f"CASE WHEN kind = 'large' OR h2 < 0.07 THEN NULL ELSE {label} END",
        "answered_by": f"CASE WHEN kind = 'error' THEN NULL WHEN {ran_large} THEN 'large-model' ELSE 'small-model' END",
        "confidence": f"CASE WHEN kind = 'small' THEN {conf} WHEN kind = 'hard' THEN h8 * 0.3 END",
        "confidence_signal": "CASE WHEN kind = 'small' THEN 'mean_prob' WHEN kind = 'hard' THEN 'difficulty' END",
        "threshold": f"CASE WHEN kind IN ('small', 'hard') THEN {THRESHOLD} END",
        "escalated": escalated,
        "escalation_reason": f"CASE WHEN kind = 'hard' THEN 'predicted_hard' WHEN {escalated} THEN 'low_confidence' END",
        "small_prompt_tokens": f"CASE WHEN {ran_small} THEN {small_in} ELSE 0 END",
        "small_completion_tokens": f"CASE WHEN {ran_small} THEN {small_out} ELSE 0 END",
        "large_prompt_tokens": f"CASE WHEN {ran_large} THEN {small_in} ELSE 0 END",
        "large_completion_tokens": f"CASE WHEN {ran_large} THEN {small_out} ELSE 0 END",
        "cost_small_usd": _money(dialect, f"CASE WHEN {ran_small} THEN {small_cost} ELSE 0 END"),
        "cost_large_usd": _money(dialect, f"CASE WHEN {ran_large} THEN {large_cost} ELSE 0 END"),
        "cost_usd": _money(dialect, f"CASE WHEN {ran_small} THEN {small_cost} ELSE 0 END + CASE WHEN {ran_large} THEN {large_cost} ELSE 0 END"),
        "baseline_cost_usd": _money(dialect, f"CASE WHEN {ran_small} OR {ran_large} THEN {large_cost} ELSE 0 END"),
        "latency_router_ms": "CASE WHEN kind = 'large' THEN NULL ELSE 2 + 8 * h9 END",
        "latency_small_ms": f"CASE WHEN {ran_small} THEN 80 + 900 * h10 * h10 END",
        "latency_large_ms": f"CASE WHEN {ran_large} THEN 400 + 4000 * h8 * h8 END",
        "latency_total_ms": f"10 + 2 + 8 * h9 + CASE WHEN {ran_small} THEN 80 + 900 * h10 * h10 ELSE 0 END + CASE WHEN {ran_large} THEN 400 + 4000 * h8 * h8 ELSE 0 END",
    }  # fmt: skip
    listing = ", ".join(f"{expression} AS {name}" for name, expression in columns.items())
    return f"SELECT {listing} FROM ({_inner(dialect, rows, days)} FROM seq) AS d"


def insert_sql(dialect: str, rows: int, days: int) -> str:
    """INSERT of rows with index in [:lo, :hi)."""
    columns = ", ".join(
        name for name in (
            "query_id", "created_at", "tenant", "status", "http_status", "model_requested", "stream",
            "route", "route_probability", "router_version", "adapter", "answered_by", "confidence",
            "confidence_signal", "threshold", "escalated", "escalation_reason", "small_prompt_tokens",
            "small_completion_tokens", "large_prompt_tokens", "large_completion_tokens",
            "cost_small_usd", "cost_large_usd", "cost_usd", "baseline_cost_usd", "latency_router_ms",
            "latency_small_ms", "latency_large_ms", "latency_total_ms",
        )
    )  # fmt: skip
    body = select_rows(dialect, rows, days)
    if dialect == "postgresql":
        return f"INSERT INTO ledger ({columns}) {body.replace('FROM seq', 'FROM generate_series(CAST(:lo AS BIGINT), CAST(:hi AS BIGINT) - 1) AS seq(i)')}"
    seq = "WITH RECURSIVE seq(i) AS (SELECT :lo UNION ALL SELECT i + 1 FROM seq WHERE i + 1 < :hi) "
    return f"{seq}INSERT INTO ledger ({columns}) {body}"


def fill(
    engine: sa.Engine, rows: int, days: int, chunk: int = 250_000, progress: bool = True
) -> None:
    """Insert `rows` synthetic rows in chunks (each its own transaction)."""
    statement = sa.text(insert_sql(engine.dialect.name, rows, days))
    for lo in range(0, rows, chunk):
        with engine.begin() as connection:
            connection.execute(statement, {"lo": lo, "hi": min(rows, lo + chunk)})
        if progress:
            print(f"  {min(rows, lo + chunk):,} / {rows:,} rows", flush=True)
