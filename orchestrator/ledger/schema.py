"""Tables of the ledger database (SQLAlchemy Core) and the two column types they need.

The Alembic migrations in `orchestrator/migrations/versions/` create exactly these tables with
plain SQLAlchemy types; the `TypeDecorator`s here only change how values cross the driver:

- `Money`: NUMERIC(20, 10) on both backends. PostgreSQL stores it exactly. SQLite has no
  decimal type and keeps a double, which holds any amount below 100,000 USD with 10 decimal
  places exactly (at most 15 significant digits); values are read back as `Decimal` quantized
  to 10 places, so a row round-trips exactly. Sums over many rows on SQLite are doubles.
- `UTCDateTime`: TIMESTAMP WITH TIME ZONE on PostgreSQL; on SQLite a naive UTC text
  timestamp with microseconds (fixed width, so text order is time order). Both read back as
  aware UTC datetimes; binding a naive datetime is an error.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeEngine

from orchestrator.ledger.row import MONEY_PLACES, quantize_money

LEDGER_TABLE = "ledger"
FEEDBACK_TABLE = "feedback"
# Alembic's version table; named for the ledger so a shared PostgreSQL database can hold others.
VERSION_TABLE = "spillway_ledger_version"


class Money(sa.TypeDecorator[Decimal]):
    """USD amounts: exact NUMERIC(20, 10), `Decimal` in and out on every backend."""

    impl = sa.Numeric(20, MONEY_PLACES)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":  # SQLAlchemy would warn about float conversion; we do it
            return dialect.type_descriptor(sa.Numeric(20, MONEY_PLACES, asdecimal=False))
        return dialect.type_descriptor(sa.Numeric(20, MONEY_PLACES))

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        amount = value if isinstance(value, Decimal) else Decimal(str(value))
        return float(amount) if dialect.name == "sqlite" else amount

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        if isinstance(value, float):
            value = repr(value)  # shortest decimal that round-trips the double
        return quantize_money(Decimal(value))


class UTCDateTime(sa.TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        if not isinstance(value, datetime) or value.utcoffset() is None:
            raise ValueError(f"expected a timezone-aware datetime, got {value!r}")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)  # type: ignore[no-any-return]
        return value.astimezone(UTC)  # type: ignore[no-any-return]


metadata = sa.MetaData()


def _text(name: str, *, nullable: bool = True) -> sa.Column[Any]:
    return sa.Column(name, sa.String(), nullable=nullable)


def _tokens(name: str) -> sa.Column[Any]:
    return sa.Column(name, sa.Integer(), nullable=False, server_default="0")


def _money(name: str) -> sa.Column[Any]:
    return sa.Column(name, Money(), nullable=False, server_default="0")


def _millis(name: str) -> sa.Column[Any]:
    return sa.Column(name, sa.Double(), nullable=True)


ledger_table = sa.Table(
    LEDGER_TABLE,
    metadata,
    sa.Column("query_id", sa.String(), primary_key=True),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    _text("tenant", nullable=False),
    _text("status", nullable=False),
    sa.Column("http_status", sa.Integer(), nullable=False),
    _text("error_type"),
    sa.Column("error_message", sa.Text(), nullable=True),
    _text("model_requested", nullable=False),
    sa.Column("stream", sa.Boolean(), nullable=False),
    _text("route"),
    sa.Column("route_probability", sa.Double(), nullable=True),
    _text("router_version"),
    _text("adapter"),
    _text("answered_by"),
    sa.Column("confidence", sa.Double(), nullable=True),
    _text("confidence_signal"),
    sa.Column("threshold", sa.Double(), nullable=True),
    sa.Column("escalated", sa.Boolean(), nullable=False),
    _text("escalation_reason"),
    _tokens("small_prompt_tokens"),
    _tokens("small_completion_tokens"),
    _tokens("large_prompt_tokens"),
    _tokens("large_completion_tokens"),
    _money("cost_small_usd"),
    _money("cost_large_usd"),
    _money("cost_usd"),
    _money("baseline_cost_usd"),
    _millis("latency_router_ms"),
    _millis("latency_small_ms"),
    _millis("latency_large_ms"),
    _millis("latency_total_ms"),
    sa.Column("degraded", sa.Boolean(), nullable=False, server_default=sa.false()),
    _text("faults"),
    # Only for tenants with keep_query_text (migration 0004); NULL otherwise.
    sa.Column("query_text", sa.Text(), nullable=True),
    # The adapter version that answered, `name@N` (migration 0005); NULL: no adapter.
    _text("adapter_version"),
    # Every confidence signal of the small answer, a JSON object (migration 0006); NULL: none.
    sa.Column("signals", sa.Text(), nullable=True),
    # (created_at, query_id) serves time-range scans and keyset pagination in one index.
    sa.Index("ix_ledger_created_at", "created_at", "query_id"),
    sa.Index("ix_ledger_tenant_created_at", "tenant", "created_at"),
    sa.Index("ix_ledger_route", "route"),
)

feedback_table = sa.Table(
    FEEDBACK_TABLE,
    metadata,
    sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
    # No foreign key: feedback may arrive while its ledger row is still queued.
    sa.Column("query_id", sa.String(), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("score", sa.Double(), nullable=False),
    sa.Column("correct", sa.Boolean(), nullable=True),
    sa.Column("comment", sa.Text(), nullable=True),
    sa.Column("route", sa.String(), nullable=True),  # a corrected route (migration 0004)
    sa.CheckConstraint("score >= 0 AND score <= 1", name="ck_feedback_score_range"),
    sa.Index("ix_feedback_query_id", "query_id"),
    sa.Index("ix_feedback_created_at", "created_at"),
)
