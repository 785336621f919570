"""The relational schema. Migrations in lfr/adapters/storage/migrations must produce exactly this
(tests/integration/test_sql_migrations.py compares them)."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Double,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    text,
)

from lfr.adapters.storage.sql.types import UtcDateTime, key_type

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)

HASH = String(64)  # hex SHA-256
STATE = String(32)

windows = Table(
    "deployment_windows",
    metadata,
    Column("id", key_type(), primary_key=True),
    Column("purpose", Text, nullable=False),
    Column("legal_basis", Text, nullable=False),
    Column("location", Text, nullable=False),
    Column("camera_ids_json", Text, nullable=False),
    Column("watchlist_id", key_type(), nullable=False),
    Column("watchlist_hash", HASH, nullable=False),
    Column("model_id", key_type(), nullable=False),
    Column("threshold", Double, nullable=False),
    Column("starts_at", UtcDateTime, nullable=False),
    Column("ends_at", UtcDateTime, nullable=False),
    Column("created_by", key_type(), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("state", STATE, nullable=False),
    Column("assigned_users_json", Text, nullable=False),
    Column("authorised_by", key_type(), nullable=True),
    Column("authorised_at", UtcDateTime, nullable=True),
    Column("closed_by", key_type(), nullable=True),
    Column("closed_at", UtcDateTime, nullable=True),
    Column("close_reason", Text, nullable=False),
    Column("armed_recorded", Boolean, nullable=False),
    Column("version", Integer, nullable=False),
    Index(None, "state"),
)

watchlists = Table(
    "watchlists",
    metadata,
    Column("id", key_type(), primary_key=True),
    Column("name", Text, nullable=False),
    Column("model_id", key_type(), nullable=False),
    Column("dimension", Integer, nullable=False),
    Column("created_by", key_type(), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("state", STATE, nullable=False),
    Column("content_hash", String(64), nullable=False),
    Column("sealed_at", UtcDateTime, nullable=True),
    Column("destroyed_at", UtcDateTime, nullable=True),
)

subjects = Table(
    "watchlist_subjects",
    metadata,
    Column("id", key_type(), primary_key=True),
    Column("watchlist_id", key_type(), ForeignKey("watchlists.id"), nullable=False, index=True),
    Column("reference", Text, nullable=False),
    Column("display_name", Text, nullable=False),
    Column("category", Text, nullable=False),
    Column("reason", Text, nullable=False),
    Column("image_source", Text, nullable=False),
    Column("reference_image_jpeg", LargeBinary, nullable=True),
)

subject_embeddings = Table(
    "subject_embeddings",
    metadata,
    Column(
        "subject_id",
        key_type(),
        ForeignKey("watchlist_subjects.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("position", Integer, primary_key=True),
    Column("vector_f32le", LargeBinary, nullable=False),  # little-endian float32, one row of (n, d)
    # Where this template came from (migration 0012); NULL for subjects enrolled without them.
    Column("provenance", Text, nullable=True),
    Column("source_image_jpeg", LargeBinary, nullable=True),
)

alerts = Table(
    "alerts",
    metadata,
    # The store-assigned sequence doubles as the primary key so SQLite's AUTOINCREMENT (never reused,
    # even after a purge) applies; subscribers catch up by it.
    Column("sequence", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("id", key_type(), nullable=False, unique=True),
    Column("window_id", key_type(), nullable=False, index=True),
    Column("camera_id", key_type(), nullable=False),
    Column("track_id", key_type(), nullable=False),
    Column("subject_id", key_type(), nullable=False),
    Column("score", Double, nullable=False),
    Column("threshold", Double, nullable=False),
    Column("candidates_json", Text, nullable=False),
    Column("captured_at", UtcDateTime, nullable=False),
    Column("raised_at", UtcDateTime, nullable=False, index=True),
    Column("crop_jpeg", LargeBinary, nullable=False),
    Column("model_id", key_type(), nullable=False),
    Column("state", STATE, nullable=False),
    Column("outcome", STATE, nullable=True),
    Column("adjudicated_by", key_type(), nullable=True),
    Column("adjudicated_at", UtcDateTime, nullable=True),
    Column("notes", Text, nullable=False),
    Column("verified_by", key_type(), nullable=True),
    Column("verified_at", UtcDateTime, nullable=True),
    Column("version", Integer, nullable=False),
    # "{node session}:{seq}" of the observation (migration 0003): one alert per camera and source, so an
    # observation re-sent to another replica, or after a restart, cannot raise a second alert. Partial,
    # so alerts from nodes that name no session are not constrained (NULLs are distinct anyway).
    Column("source_ref", key_type(), nullable=True),
    # Store-wide change number (migration 0008): set on every add and update, in commit order, so feeds
    # follow new alerts and decisions alike by "revision > last seen".
    Column("revision", BigInteger, nullable=False, index=True, server_default="0"),
    Column("amended_by", key_type(), nullable=True),
    Column("amended_at", UtcDateTime, nullable=True),
    Column("amendment_reason", Text, nullable=False, server_default=""),
    # One alert per track identity (see node_session); later faces update it (migration 0012).
    Column("sightings", Integer, nullable=False, server_default="1"),
    Column("first_seen_at", UtcDateTime, nullable=True),
    Column("last_seen_at", UtcDateTime, nullable=True),
    # The node session of `source_ref` ("" when it named none), set once on insert for an alert with a
    # track and NULL for one without (migration 0013). With the unique index below it makes "one alert
    # per window, camera, node session, track and subject" hold across replicas: of two racing inserts,
    # one fails and its replica updates the other's alert. NULL also marks the later duplicates a
    # database held before the index existed: kept as they were, left outside the constraint.
    Column("node_session", key_type(), nullable=True),
    Index(
        None,
        "window_id",
        "camera_id",
        "node_session",
        "track_id",
        "subject_id",
        unique=True,
        sqlite_where=text("node_session IS NOT NULL"),
        postgresql_where=text("node_session IS NOT NULL"),
    ),
    Index(
        None,
        "camera_id",
        "source_ref",
        unique=True,
        sqlite_where=text("source_ref IS NOT NULL"),
        postgresql_where=text("source_ref IS NOT NULL"),
    ),
    sqlite_autoincrement=True,
)

audit_records = Table(
    "audit_records",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    # Verbatim isoformat text, offset included: the hash covers these exact characters.
    Column("at_iso", String(40), nullable=False),
    Column("actor", key_type(), nullable=False),
    Column("action", String(64), nullable=False),
    Column("subject_kind", String(64), nullable=False),
    Column("subject_id", key_type(), nullable=False),
    Column("details_json", Text, nullable=False),
    Column("prev_hash", HASH, nullable=False),
    Column("hash", HASH, nullable=False),
)

# One row, created by the first migration: appenders lock it, so the chain cannot fork, and it remembers
# the last record so that deleting records from the end is detectable.
audit_chain_head = Table(
    "audit_chain_head",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("seq", BigInteger, nullable=False),
    Column("hash", HASH, nullable=False),
    CheckConstraint("id = 1", name="single_row"),
)

# Signed checkpoints of the chain (migration 0004). Copies: the ones that count are also anchored outside
# the database, where its administrator cannot delete them.
audit_checkpoints = Table(
    "audit_checkpoints",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("key_id", String(64), nullable=False),
    Column("seq", BigInteger, nullable=False, index=True),
    Column("chain_hash", HASH, nullable=False),
    Column("at_iso", String(40), nullable=False),
    Column("signature", String(200), nullable=False),
)

# One row (migration 0008): the last alert revision handed out. Bumping it locks the row until commit, so
# revisions become visible in the order they were given, on every replica.
alert_revision_counter = Table(
    "alert_revision_counter",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("value", BigInteger, nullable=False),
    CheckConstraint("id = 1", name="single_row"),
)

observation_counts = Table(
    "observation_counts",
    metadata,
    Column("window_id", key_type(), primary_key=True),
    Column("camera_id", key_type(), primary_key=True),
    Column("outcome", String(32), primary_key=True),
    Column("faces", BigInteger, nullable=False),
)

principals = Table(
    "principals",
    metadata,
    Column("name", key_type(), primary_key=True),
    Column("kind", STATE, nullable=False),
    Column("roles_json", Text, nullable=False),
    Column("active", Boolean, nullable=False),
    Column("token_hash", HASH, nullable=True, unique=True),
    Column("password_hash", Text, nullable=True),
    # Bumped on sign-out: tablet cookies carry the generation they were issued under (migration 0002).
    Column("session_generation", Integer, nullable=False, server_default="0"),
    Column("token_expires_at", UtcDateTime, nullable=True),  # migration 0006; null: the token never expires
)

evaluations = Table(
    "evaluations",
    metadata,
    Column("id", key_type(), primary_key=True),
    Column("model_id", key_type(), nullable=False, index=True),
    Column("dataset_fingerprint", Text, nullable=False),
    Column("recommended_threshold", Double, nullable=False),
    Column("passed", Boolean, nullable=False),
    Column("report_sha256", HASH, nullable=False),
    Column("recorded_by", key_type(), nullable=False),
    Column("recorded_at", UtcDateTime, nullable=False),
    # The report itself (canonical JSON) and the index it evaluated: the gate's evidence (migration 0007).
    Column("index_type", key_type(), nullable=False, server_default="flat"),
    Column("report_json", Text, nullable=True),
)
