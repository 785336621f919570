"""Issue 10, across replicas: at most one alert per (window, camera, node session, track, subject), held by a
unique index rather than by each matcher looking first, so two replicas that get faces of one track at the
same moment cannot both raise an alert. The node session lives inside `source_ref` ("{session}:{seq}"),
which an index cannot take apart on both SQLite and PostgreSQL, so alerts gain a `node_session` column:
set for alerts with a track, NULL for alerts without one, which the partial index leaves unconstrained.

A database may already hold duplicates (raised by replicas before this migration). They are kept as they
were: the oldest alert of each track identity gets its node session, and is the one later faces update;
the later duplicates keep NULL, outside the constraint, still listed, decided and purged as before. No
alert, decision or audit record is changed or lost.

Revision ID: 0013
Revises: 0012 (the chain, not the numbers, is the order: 0003, 0007, 0006, 0008, 0004, 0012, 0013)
Create Date: 2026-11-30
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision: str | None = "0012"
branch_labels: str | None = None
depends_on: str | None = None

INDEX = "ix_alerts_window_id_camera_id_node_session_track_id_subject_id"
ONLY_WITH_SESSION = "node_session IS NOT NULL"
_BATCH = 1000


def key() -> sa.types.TypeEngine[str]:
    # Frozen here rather than imported from the schema module (see 0001).
    return sa.String(128).with_variant(sa.String(128, collation="C"), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("alerts") as batch:
        batch.add_column(sa.Column("node_session", key(), nullable=True))
    _give_sessions_to_the_oldest_alert_of_each_track()
    op.create_index(
        INDEX,
        "alerts",
        ["window_id", "camera_id", "node_session", "track_id", "subject_id"],
        unique=True,
        sqlite_where=sa.text(ONLY_WITH_SESSION),
        postgresql_where=sa.text(ONLY_WITH_SESSION),
    )


def _give_sessions_to_the_oldest_alert_of_each_track() -> None:
    alerts = sa.table(
        "alerts",
        sa.column("sequence", sa.BigInteger()),
        sa.column("window_id", sa.String()),
        sa.column("camera_id", sa.String()),
        sa.column("track_id", sa.String()),
        sa.column("subject_id", sa.String()),
        sa.column("source_ref", sa.String()),
        sa.column("node_session", sa.String()),
    )
    connection = op.get_bind()
    rows = connection.execute(
        sa.select(
            alerts.c.sequence,
            alerts.c.window_id,
            alerts.c.camera_id,
            alerts.c.track_id,
            alerts.c.subject_id,
            alerts.c.source_ref,
        )
        .where(alerts.c.track_id != "")
        .order_by(alerts.c.sequence)
    ).all()
    # The session is split off in Python, as the matcher splits it (lfr.domain.alert.node_session), frozen
    # here so a later change there cannot change what this migration did.
    seen: set[tuple[str, ...]] = set()
    oldest: list[dict[str, Any]] = []
    for sequence, window_id, camera_id, track_id, subject_id, source_ref in rows:
        session = source_ref.rpartition(":")[0] if source_ref else ""
        identity = (window_id, camera_id, session, track_id, subject_id)
        if identity not in seen:
            seen.add(identity)
            oldest.append({"b_sequence": sequence, "b_session": session})
    setting = (
        sa.update(alerts)
        .where(alerts.c.sequence == sa.bindparam("b_sequence"))
        .values(node_session=sa.bindparam("b_session"))
    )
    for start in range(0, len(oldest), _BATCH):
        connection.execute(setting, oldest[start : start + _BATCH])


def downgrade() -> None:
    op.drop_index(INDEX, table_name="alerts")
    with op.batch_alter_table("alerts") as batch:
        batch.drop_column("node_session")
