"""Dashboard rollups: pre-aggregated tables kept current by insert triggers, and a backfill.

Revision ID: 0002
Revises: 0001
Create Date: 2025-01-02

See orchestrator/ledger/rollup.py (the tables), rollup_sql.py (what the triggers run) and
triggers.py (how each backend runs it). On PostgreSQL, CREATE TRIGGER locks `ledger` against
writes until this migration commits, so no row inserted meanwhile is missed or counted twice.
"""

from __future__ import annotations

from alembic import op

from orchestrator.ledger import triggers

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    triggers.create_rollups(op.get_bind())


def downgrade() -> None:
    triggers.drop_rollups(op.get_bind())
