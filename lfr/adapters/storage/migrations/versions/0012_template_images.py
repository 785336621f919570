"""Each enrolled template keeps its provenance and the face crop of its source image (issue 10:
multi-image enrolment), erased with the template on destroy and purge.

Revision ID: 0012
Revises: 0007
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision: str | None = "0007"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    with op.batch_alter_table("subject_embeddings") as batch:
        batch.add_column(sa.Column("provenance", sa.Text(), nullable=True))
        batch.add_column(sa.Column("source_image_jpeg", sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("subject_embeddings") as batch:
        batch.drop_column("source_image_jpeg")
        batch.drop_column("provenance")
