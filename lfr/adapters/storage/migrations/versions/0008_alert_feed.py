"""Alerts carry a store-wide change number (`revision`), so live feeds on every replica follow new alerts
and decisions alike and resume after the last change they saw; and a supervisor's amendment of a decided
alert is kept beside the original decision.

Revision ID: 0008
Revises: 0006 (0003 in the feed branch; re-chained after main's head when merging main)
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision: str | None = "0006"
branch_labels: str | None = None
depends_on: str | None = None


def key() -> sa.types.TypeEngine[str]:
    # Frozen here rather than imported from the schema module (see 0001).
    return sa.String(128).with_variant(sa.String(128, collation="C"), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("alerts") as batch:
        batch.add_column(sa.Column("revision", sa.BigInteger(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("amended_by", key(), nullable=True))
        batch.add_column(sa.Column("amended_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("amendment_reason", sa.Text(), nullable=False, server_default=""))
    op.create_index("ix_alerts_revision", "alerts", ["revision"])
    counter = op.create_table(
        "alert_revision_counter",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("id = 1", name="ck_alert_revision_counter_single_row"),
        sa.PrimaryKeyConstraint("id", name="pk_alert_revision_counter"),
    )
    # Existing alerts keep their order: their revision is their sequence, and counting goes on from there.
    op.execute("UPDATE alerts SET revision = sequence")
    op.execute(
        sa.insert(counter).from_select(
            ["id", "value"],
            sa.select(sa.literal(1), sa.func.coalesce(sa.func.max(sa.column("sequence")), 0)).select_from(
                sa.table("alerts")
            ),
        )
    )


def downgrade() -> None:
    op.drop_table("alert_revision_counter")
    op.drop_index("ix_alerts_revision", table_name="alerts")
    with op.batch_alter_table("alerts") as batch:
        batch.drop_column("amendment_reason")
        batch.drop_column("amended_at")
        batch.drop_column("amended_by")
        batch.drop_column("revision")
