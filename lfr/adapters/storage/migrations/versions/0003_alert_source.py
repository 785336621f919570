"""Alerts remember the observation they came from ("{node session}:{seq}"), unique per camera, so an
observation re-sent to another replica or after a restart cannot raise a second alert.

Revision ID: 0003
Revises: 0002
Create Date: 2026-05-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None

INDEX = "ix_alerts_camera_id_source_ref"
# Partial: alerts from nodes that name no session are not constrained, and the index stays small.
ONLY_WITH_SOURCE = "source_ref IS NOT NULL"


def key() -> sa.types.TypeEngine[str]:
    # Frozen here rather than imported from the schema module (see 0001).
    return sa.String(128).with_variant(sa.String(128, collation="C"), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("alerts") as batch:
        batch.add_column(sa.Column("source_ref", key(), nullable=True))
    op.create_index(
        INDEX,
        "alerts",
        ["camera_id", "source_ref"],
        unique=True,
        sqlite_where=sa.text(ONLY_WITH_SOURCE),
        postgresql_where=sa.text(ONLY_WITH_SOURCE),
    )


def downgrade() -> None:
    op.drop_index(INDEX, table_name="alerts")
    with op.batch_alter_table("alerts") as batch:
        batch.drop_column("source_ref")
