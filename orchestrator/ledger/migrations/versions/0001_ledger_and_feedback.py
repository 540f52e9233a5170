"""Create the ledger (one row per query) and the feedback table.

Revision ID: 0001
Revises:
Create Date: 2025-01-01

Plain SQLAlchemy types: the TypeDecorators in orchestrator.ledger.schema only convert values
at the driver, their DDL is what is written here.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_TEXT_COLUMNS_NULLABLE = (
    "error_type",
    "route",
    "router_version",
    "adapter",
    "answered_by",
    "confidence_signal",
    "escalation_reason",
)


def _ledger_columns() -> list[sa.Column[Any]]:
    text = {name: sa.Column(name, sa.String(), nullable=True) for name in _TEXT_COLUMNS_NULLABLE}
    money = sa.Numeric(20, 10)
    return [
        sa.Column("query_id", sa.String(), primary_key=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("tenant", sa.String(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("http_status", sa.Integer(), nullable=False),
        text["error_type"],
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("model_requested", sa.String(), nullable=False),
        sa.Column("stream", sa.Boolean(), nullable=False),
        text["route"],
        sa.Column("route_probability", sa.Double(), nullable=True),
        text["router_version"],
        text["adapter"],
        text["answered_by"],
        sa.Column("confidence", sa.Double(), nullable=True),
        text["confidence_signal"],
        sa.Column("threshold", sa.Double(), nullable=True),
        sa.Column("escalated", sa.Boolean(), nullable=False),
        text["escalation_reason"],
        *(
            sa.Column(f"{model}_{kind}_tokens", sa.Integer(), nullable=False, server_default="0")
            for model in ("small", "large")
            for kind in ("prompt", "completion")
        ),
        *(
            sa.Column(name, money, nullable=False, server_default="0")
            for name in ("cost_small_usd", "cost_large_usd", "cost_usd", "baseline_cost_usd")
        ),
        *(
            sa.Column(f"latency_{stage}_ms", sa.Double(), nullable=True)
            for stage in ("router", "small", "large", "total")
        ),
    ]


def upgrade() -> None:
    op.create_table("ledger", *_ledger_columns())
    op.create_index("ix_ledger_created_at", "ledger", ["created_at", "query_id"])
    op.create_index("ix_ledger_tenant_created_at", "ledger", ["tenant", "created_at"])
    op.create_index("ix_ledger_route", "ledger", ["route"])
    op.create_table(
        "feedback",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("query_id", sa.String(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("score", sa.Double(), nullable=False),
        sa.Column("correct", sa.Boolean(), nullable=True),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.CheckConstraint("score >= 0 AND score <= 1", name="ck_feedback_score_range"),
    )
    op.create_index("ix_feedback_query_id", "feedback", ["query_id"])
    op.create_index("ix_feedback_created_at", "feedback", ["created_at"])


def downgrade() -> None:
    op.drop_table("feedback")
    op.drop_table("ledger")
