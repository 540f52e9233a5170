"""Ledger column `signals`: every confidence signal of the small answer, as a JSON object.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03

`confidence` and `confidence_signal` keep the one signal that decided; `signals` keeps all of
them (`{"mean_prob": 0.91, "geometric_mean": 0.88, ...}`, the response's `spillway.signals`),
so `spillway cascade calibrate --from-ledger --signal learned` can fit the logistic regression
over the signals from feedback on live answers. JSON text, the same on SQLite and PostgreSQL.
Nullable: old rows, and queries with no scored small answer, have none.
Plain ADD / DROP COLUMN, as in revisions 0003 to 0005.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("ledger", sa.Column("signals", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column("ledger", "signals")
