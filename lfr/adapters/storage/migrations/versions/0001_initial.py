"""Initial schema: windows, watchlists, alerts, audit chain, counters, accounts, evaluations.

Revision ID: 0001
Revises:
Create Date: 2026-05-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None

GENESIS_HASH = "0" * 64


def key() -> sa.types.TypeEngine[str]:
    # Frozen here rather than imported from the schema module, so later schema edits cannot change
    # what this migration did.
    return sa.String(128).with_variant(sa.String(128, collation="C"), "postgresql")


def ts() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "deployment_windows",
        sa.Column("id", key(), nullable=False),
        sa.Column("purpose", sa.Text(), nullable=False),
        sa.Column("legal_basis", sa.Text(), nullable=False),
        sa.Column("location", sa.Text(), nullable=False),
        sa.Column("camera_ids_json", sa.Text(), nullable=False),
        sa.Column("watchlist_id", key(), nullable=False),
        sa.Column("watchlist_hash", sa.String(64), nullable=False),
        sa.Column("model_id", key(), nullable=False),
        sa.Column("threshold", sa.Double(), nullable=False),
        sa.Column("starts_at", ts(), nullable=False),
        sa.Column("ends_at", ts(), nullable=False),
        sa.Column("created_by", key(), nullable=False),
        sa.Column("created_at", ts(), nullable=False),
        sa.Column("state", sa.String(32), nullable=False),
        sa.Column("assigned_users_json", sa.Text(), nullable=False),
        sa.Column("authorised_by", key(), nullable=True),
        sa.Column("authorised_at", ts(), nullable=True),
        sa.Column("closed_by", key(), nullable=True),
        sa.Column("closed_at", ts(), nullable=True),
        sa.Column("close_reason", sa.Text(), nullable=False),
        sa.Column("armed_recorded", sa.Boolean(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_deployment_windows"),
    )
    op.create_index("ix_deployment_windows_state", "deployment_windows", ["state"])

    op.create_table(
        "watchlists",
        sa.Column("id", key(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("model_id", key(), nullable=False),
        sa.Column("dimension", sa.Integer(), nullable=False),
        sa.Column("created_by", key(), nullable=False),
        sa.Column("created_at", ts(), nullable=False),
        sa.Column("state", sa.String(32), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("sealed_at", ts(), nullable=True),
        sa.Column("destroyed_at", ts(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_watchlists"),
    )
    op.create_table(
        "watchlist_subjects",
        sa.Column("id", key(), nullable=False),
        sa.Column("watchlist_id", key(), nullable=False),
        sa.Column("reference", sa.Text(), nullable=False),
        sa.Column("display_name", sa.Text(), nullable=False),
        sa.Column("category", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("image_source", sa.Text(), nullable=False),
        sa.Column("reference_image_jpeg", sa.LargeBinary(), nullable=True),
        sa.ForeignKeyConstraint(
            ["watchlist_id"], ["watchlists.id"], name="fk_watchlist_subjects_watchlist_id_watchlists"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_watchlist_subjects"),
    )
    op.create_index("ix_watchlist_subjects_watchlist_id", "watchlist_subjects", ["watchlist_id"])
    op.create_table(
        "subject_embeddings",
        sa.Column("subject_id", key(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("vector_f32le", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["subject_id"],
            ["watchlist_subjects.id"],
            name="fk_subject_embeddings_subject_id_watchlist_subjects",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("subject_id", "position", name="pk_subject_embeddings"),
    )

    op.create_table(
        "alerts",
        sa.Column(
            "sequence",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("id", key(), nullable=False),
        sa.Column("window_id", key(), nullable=False),
        sa.Column("camera_id", key(), nullable=False),
        sa.Column("track_id", key(), nullable=False),
        sa.Column("subject_id", key(), nullable=False),
        sa.Column("score", sa.Double(), nullable=False),
        sa.Column("threshold", sa.Double(), nullable=False),
        sa.Column("candidates_json", sa.Text(), nullable=False),
        sa.Column("captured_at", ts(), nullable=False),
        sa.Column("raised_at", ts(), nullable=False),
        sa.Column("crop_jpeg", sa.LargeBinary(), nullable=False),
        sa.Column("model_id", key(), nullable=False),
        sa.Column("state", sa.String(32), nullable=False),
        sa.Column("outcome", sa.String(32), nullable=True),
        sa.Column("adjudicated_by", key(), nullable=True),
        sa.Column("adjudicated_at", ts(), nullable=True),
        sa.Column("notes", sa.Text(), nullable=False),
        sa.Column("verified_by", key(), nullable=True),
        sa.Column("verified_at", ts(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("sequence", name="pk_alerts"),
        sa.UniqueConstraint("id", name="uq_alerts_id"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_alerts_raised_at", "alerts", ["raised_at"])
    op.create_index("ix_alerts_window_id", "alerts", ["window_id"])

    op.create_table(
        "audit_records",
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("at_iso", sa.String(40), nullable=False),
        sa.Column("actor", key(), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("subject_kind", sa.String(64), nullable=False),
        sa.Column("subject_id", key(), nullable=False),
        sa.Column("details_json", sa.Text(), nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_audit_records"),
    )
    head = op.create_table(
        "audit_chain_head",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.CheckConstraint("id = 1", name="ck_audit_chain_head_single_row"),
        sa.PrimaryKeyConstraint("id", name="pk_audit_chain_head"),
    )
    # The row appenders lock; it must exist before the first append, or two first appends could race.
    op.bulk_insert(head, [{"id": 1, "seq": 0, "hash": GENESIS_HASH}])

    op.create_table(
        "observation_counts",
        sa.Column("window_id", key(), nullable=False),
        sa.Column("camera_id", key(), nullable=False),
        sa.Column("outcome", sa.String(32), nullable=False),
        sa.Column("faces", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("window_id", "camera_id", "outcome", name="pk_observation_counts"),
    )
    op.create_table(
        "principals",
        sa.Column("name", key(), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("roles_json", sa.Text(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=True),
        sa.Column("password_hash", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("name", name="pk_principals"),
        sa.UniqueConstraint("token_hash", name="uq_principals_token_hash"),
    )
    op.create_table(
        "evaluations",
        sa.Column("id", key(), nullable=False),
        sa.Column("model_id", key(), nullable=False),
        sa.Column("dataset_fingerprint", sa.Text(), nullable=False),
        sa.Column("recommended_threshold", sa.Double(), nullable=False),
        sa.Column("passed", sa.Boolean(), nullable=False),
        sa.Column("report_sha256", sa.String(64), nullable=False),
        sa.Column("recorded_by", key(), nullable=False),
        sa.Column("recorded_at", ts(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_evaluations"),
    )
    op.create_index("ix_evaluations_model_id", "evaluations", ["model_id"])


def downgrade() -> None:
    for index, table in (
        ("ix_evaluations_model_id", "evaluations"),
        ("ix_alerts_window_id", "alerts"),
        ("ix_alerts_raised_at", "alerts"),
        ("ix_watchlist_subjects_watchlist_id", "watchlist_subjects"),
        ("ix_deployment_windows_state", "deployment_windows"),
    ):
        op.drop_index(index, table_name=table)
    for table in (
        "evaluations",
        "principals",
        "observation_counts",
        "audit_chain_head",
        "audit_records",
        "alerts",
        "subject_embeddings",
        "watchlist_subjects",
        "watchlists",
        "deployment_windows",
    ):
        op.drop_table(table)
