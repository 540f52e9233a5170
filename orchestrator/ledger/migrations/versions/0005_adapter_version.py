"""Ledger column `adapter_version`: the adapter version that answered (`legal@3`).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03

Adapters are versioned at run time (`spillway adapters add|promote|rollback`); `adapter` keeps
the name (the cascade's route), `adapter_version` records which version of it ran, so the
dashboard can compare versions. Nullable: old rows and queries without an adapter have none.
Plain ADD / DROP COLUMN, as in revisions 0003 and 0004.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("ledger", sa.Column("adapter_version", sa.String(), nullable=True))


def downgrade() -> None:
    op.drop_column("ledger", "adapter_version")
