"""The dashboard's pre-aggregated tables, kept up to date by database triggers on insert.

Every dashboard query reads these small tables instead of scanning the ledger, so it costs
the same at 10 million rows as at 10 thousand (the ledger itself is read only by primary key,
or by a bounded index range for the latest escalations).

- `dash_hourly`, `dash_daily`: counts, costs and tokens per hour (day) x tenant x router label
  x adapter x router version x status x escalation reason. Totals, cost and escalations over
  time, router mix.
- `dash_confidence`, `dash_confidence_monthly`: per UTC day (month) x tenant x route key x
  confidence bin (width 0.01): queries, escalations, costs, feedback scores. Confidence
  histograms and the what-if panel.
- `dash_latency`, `dash_latency_monthly`: per UTC day (month) x tenant x route key x stage x
  latency bin (10 per decade). Latency percentiles.
- `dash_top`: the `TOP_K` most expensive queries per UTC day x tenant x route key.

Each family has a fine and a coarse level: a range reads whole coarse buckets from the coarse
table and only its ragged ends from the fine one (`levels.py`), so a query over 90 days reads
about 90 daily rows per group, not 2,160 hourly ones. The route key is the cascade's (adapter,
else router label, else `base`). Key columns are NOT NULL ('' stands for "none") so unique
keys work on every backend.
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

TOP_K = 20
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


def _bucket() -> sa.Column[Any]:
    """Start of the bucket's UTC hour, day or month."""
    return sa.Column("bucket", UTCDateTime(), nullable=False, primary_key=True)


def _counts_table(name: str) -> sa.Table:
    return sa.Table(
        name,
        metadata,
        _bucket(),
        _key("tenant"),
        _key("route"),  # the router's label
        _key("adapter"),
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


def _confidence_table(name: str) -> sa.Table:
    return sa.Table(
        name,
        metadata,
        _bucket(),
        _key("tenant"),
        _key("route"),  # the cascade route key
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


def _latency_table(name: str) -> sa.Table:
    return sa.Table(
        name,
        metadata,
        _bucket(),
        _key("tenant"),
        _key("route"),  # the cascade route key
        _key("stage"),
        sa.Column("bin", sa.Integer(), nullable=False, primary_key=True),
        _count("queries"),
        _score("sum_ms"),
    )


hourly_table = _counts_table("dash_hourly")
daily_table = _counts_table("dash_daily")
confidence_table = _confidence_table("dash_confidence")  # daily
confidence_monthly_table = _confidence_table("dash_confidence_monthly")
latency_table = _latency_table("dash_latency")  # daily
latency_monthly_table = _latency_table("dash_latency_monthly")
top_table = sa.Table(
    "dash_top",
    metadata,
    _bucket(),  # UTC day
    _key("tenant"),
    _key("route"),  # the cascade route key
    _key("query_id"),
    _money("cost_usd"),
    sa.Index("ix_dash_top_group_cost", "bucket", "tenant", "route", "cost_usd"),
)

COUNTS_TABLES = ((hourly_table, "hour"), (daily_table, "day"))
CONFIDENCE_TABLES = ((confidence_table, "day"), (confidence_monthly_table, "month"))
LATENCY_TABLES = ((latency_table, "day"), (latency_monthly_table, "month"))


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
