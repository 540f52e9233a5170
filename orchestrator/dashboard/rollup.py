"""The dashboard's pre-aggregated tables, kept up to date by database triggers on insert.

Every dashboard query reads these small tables instead of scanning the ledger, so it costs
the same at 10 million rows as at 10 thousand (the ledger itself is read only by primary key,
or by a bounded index range for the latest escalations).

- `dash_hourly`: counts, costs and tokens per hour x tenant x route x adapter x router version
  x status x escalation reason. Cost and escalation over time, router mix, totals.
- `dash_confidence`: per UTC day x tenant x route x adapter x confidence bin (width 0.01):
  queries, escalations, costs and feedback scores. Confidence histograms and the what-if panel.
- `dash_latency`: per UTC day x tenant x route x adapter x stage x latency bin (10 per decade).
  Latency percentiles.
- `dash_top`: the `TOP_K` most expensive queries per UTC day x tenant x route x adapter.

Key columns are NOT NULL ('' stands for "none") so unique keys work on every backend.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from orchestrator.ledger.schema import Money, UTCDateTime

CONFIDENCE_BINS = 100
"""Confidence bin `b` holds confidences in [b/100, (b+1)/100); 1.0 falls in the last bin."""

BIN_EPSILON = 1e-9
"""Added before truncating confidence * 100, so a logged 0.58 (a double just below 0.58) falls
in bin 58, as `0.58 < 0.58` is false for the cascade policy too."""

TOP_K = 50
"""Most expensive queries kept per day and group; the endpoint's largest `limit`."""

STAGES = ("router", "small", "large", "total")

# Latency bin edges in milliseconds: 10 per decade from 1 ms to 10 minutes. Bin b holds
# values in [EDGES[b-1], EDGES[b]); bin 0 is below 1 ms, the last bin is 10 minutes or more.
LATENCY_EDGES: tuple[float, ...] = tuple(round(10 ** (k / 10), 4) for k in range(0, 59))

metadata = sa.MetaData()


def _key(name: str) -> sa.Column[Any]:
    return sa.Column(name, sa.String(), nullable=False, primary_key=True)


def _count(name: str) -> sa.Column[Any]:
    return sa.Column(name, sa.BigInteger(), nullable=False, server_default="0")


def _money(name: str) -> sa.Column[Any]:
    return sa.Column(name, Money(), nullable=False, server_default="0")


def _score(name: str) -> sa.Column[Any]:
    return sa.Column(name, sa.Double(), nullable=False, server_default="0")


def _bucket(name: str) -> sa.Column[Any]:
    return sa.Column(name, UTCDateTime(), nullable=False, primary_key=True)


def _group() -> list[sa.Column[Any]]:
    return [_key("tenant"), _key("route"), _key("adapter")]


hourly_table = sa.Table(
    "dash_hourly",
    metadata,
    _bucket("hour"),
    *_group(),
    _key("router_version"),
    _key("status"),
    sa.Column("escalated", sa.Boolean(), nullable=False, primary_key=True),
    _key("reason"),
    _count("queries"),
    _count("with_confidence"),
    _money("cost_usd"),
    _money("baseline_cost_usd"),
    _money("cost_small_usd"),
    _money("cost_large_usd"),
    _count("small_prompt_tokens"),
    _count("small_completion_tokens"),
    _count("large_prompt_tokens"),
    _count("large_completion_tokens"),
)

confidence_table = sa.Table(
    "dash_confidence",
    metadata,
    _bucket("day"),
    *_group(),
    sa.Column("bin", sa.Integer(), nullable=False, primary_key=True),
    _count("queries"),
    _count("escalated"),
    _money("cost_usd"),
    _money("cost_small_usd"),
    _money("baseline_cost_usd"),
    # Feedback on the answers given: by the small model (accepted) or the large (escalated).
    _count("fb_small_n"),
    _score("fb_small_score"),
    _count("fb_large_n"),
    _score("fb_large_score"),
)

latency_table = sa.Table(
    "dash_latency",
    metadata,
    _bucket("day"),
    *_group(),
    _key("stage"),
    sa.Column("bin", sa.Integer(), nullable=False, primary_key=True),
    _count("queries"),
    _score("sum_ms"),
)

top_table = sa.Table(
    "dash_top",
    metadata,
    _bucket("day"),
    *_group(),
    _key("query_id"),
    _money("cost_usd"),
    sa.Index("ix_dash_top_group_cost", "day", "tenant", "route", "adapter", "cost_usd"),
)

TABLES = (hourly_table, confidence_table, latency_table, top_table)


def key_columns(table: sa.Table) -> list[str]:
    return [column.name for column in table.primary_key.columns]


def latency_bin_bounds(bin_index: int) -> tuple[float, float]:
    """[lower, upper) milliseconds of a latency bin (the last bin's upper bound is its lower
    bound times the bin ratio, for interpolation)."""
    if bin_index <= 0:
        return 0.0, LATENCY_EDGES[0]
    lower = LATENCY_EDGES[min(bin_index, len(LATENCY_EDGES)) - 1]
    if bin_index < len(LATENCY_EDGES):
        return lower, LATENCY_EDGES[bin_index]
    return lower, lower * 10**0.1


def latency_bin(value_ms: float) -> int:
    """The bin of a latency (Python mirror of the SQL expression; used in tests)."""
    return sum(1 for edge in LATENCY_EDGES if edge <= value_ms)


def confidence_bin(confidence: float) -> int:
    return min(CONFIDENCE_BINS - 1, int(confidence * CONFIDENCE_BINS + BIN_EPSILON))
