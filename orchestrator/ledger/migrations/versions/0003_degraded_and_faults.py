"""Ledger columns for backend faults: `degraded` and `faults`.

Revision ID: 0003
Revises: 0002
Create Date: 2025-01-03

`degraded`: the low-confidence small answer was returned because the large model failed.
`faults`: the deployments that failed while answering, comma-separated in the order they
failed (`router`, `small`, `large`); NULL when none did.

Plain ADD / DROP COLUMN on both backends (SQLite >= 3.35 drops columns in place): batch mode
would copy the table on SQLite and lose the dashboard triggers of revision 0002.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "ledger", sa.Column("degraded", sa.Boolean(), nullable=False, server_default=sa.false())
    )
    op.add_column("ledger", sa.Column("faults", sa.String(), nullable=True))


def downgrade() -> None:
    op.drop_column("ledger", "faults")
    op.drop_column("ledger", "degraded")
