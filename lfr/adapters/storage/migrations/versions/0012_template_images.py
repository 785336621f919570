"""Issue 10. Each enrolled template keeps its provenance and the face crop of its source image, erased
with the template on destroy and purge. An alert counts the faces of its track that matched its subject
(one alert per window, camera, track and subject; later faces update it) and when they were seen.

Revision ID: 0012
Revises: 0004 (the chain, not the numbers, is the order: 0003, 0007, 0006, 0008, 0004, 0012)
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision: str | None = "0004"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    with op.batch_alter_table("subject_embeddings") as batch:
        batch.add_column(sa.Column("provenance", sa.Text(), nullable=True))
        batch.add_column(sa.Column("source_image_jpeg", sa.LargeBinary(), nullable=True))
    with op.batch_alter_table("alerts") as batch:
        batch.add_column(sa.Column("sightings", sa.Integer(), nullable=False, server_default="1"))
        batch.add_column(sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("alerts") as batch:
        batch.drop_column("last_seen_at")
        batch.drop_column("first_seen_at")
        batch.drop_column("sightings")
    with op.batch_alter_table("subject_embeddings") as batch:
        batch.drop_column("source_image_jpeg")
        batch.drop_column("provenance")
