"""Ledger column `query_text` and feedback column `route`, for router training from traffic.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23

`ledger.query_text`: the text the router labelled, kept only for tenants that opted in
(`tenants[].keep_query_text`); NULL otherwise. `feedback.route`: the label the router should
have chosen, when the feedback corrects the route. Both nullable, so old rows stay valid.

Plain ADD / DROP COLUMN, as in revision 0003 (batch mode would copy the tables on SQLite and
lose the dashboard triggers).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("ledger", sa.Column("query_text", sa.Text(), nullable=True))
    op.add_column("feedback", sa.Column("route", sa.String(), nullable=True))


def downgrade() -> None:
    op.drop_column("feedback", "route")
    op.drop_column("ledger", "query_text")
