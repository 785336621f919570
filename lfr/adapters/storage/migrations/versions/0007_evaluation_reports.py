"""Evaluations keep their report (canonical JSON) and the index type they evaluated, so the equity gate
judges the evidence itself. Rows recorded before have no report and count as no evidence.

Revision ID: 0007
Revises: 0003
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None


def key() -> sa.types.TypeEngine[str]:
    # Frozen here rather than imported from the schema module (see 0001).
    return sa.String(128).with_variant(sa.String(128, collation="C"), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("evaluations") as batch:
        batch.add_column(sa.Column("index_type", key(), nullable=False, server_default="flat"))
        batch.add_column(sa.Column("report_json", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("evaluations") as batch:
        batch.drop_column("report_json")
        batch.drop_column("index_type")
