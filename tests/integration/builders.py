"""Domain values with every field set to something a round trip could get wrong."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from lfr.domain.alert import Alert
from lfr.domain.audit import AuditAction, AuditEvent
from lfr.domain.evaluation import EvaluationSummary
from lfr.domain.matching import Candidate
from lfr.domain.principal import Principal, PrincipalKind, Role
from lfr.domain.watchlist import Subject, Watchlist
from lfr.domain.window import DeploymentWindow
from tests.support import tiny_jpeg

T0 = datetime(2026, 11, 21, 10, 0, 0, 123456, tzinfo=UTC)


def window(window_id: str = "win-1", created_at: datetime = T0, **changes: object) -> DeploymentWindow:
    values: dict[str, object] = {
        "id": window_id,
        "purpose": "find wanted people — Ü",
        "legal_basis": "PACE s.1",
        "location": "High St",
        "camera_ids": frozenset({"cam-2", "cam-1"}),
        "watchlist_id": "wl-1",
        "watchlist_hash": "ab" * 32,
        "model_id": "model-a",
        "threshold": 0.812345678901234,
        "starts_at": T0 + timedelta(minutes=10, microseconds=7),
        "ends_at": T0 + timedelta(hours=2),
        "created_by": "sup",
        "created_at": created_at,
        "assigned_users": frozenset({"officer-b", "officer-a"}),
    }
    values.update(changes)
    return DeploymentWindow(**values)  # type: ignore[arg-type]


def watchlist(watchlist_id: str = "wl-1", created_at: datetime = T0, dimension: int = 4) -> Watchlist:
    return Watchlist(watchlist_id, "High St list", "model-a", dimension, "admin", created_at)


def subject(subject_id: str, watchlist_id: str = "wl-1", image: bytes | None = None) -> Subject:
    return Subject(
        subject_id, watchlist_id, f"ref-{subject_id}", "Jane Doe", "wanted", "warrant", "custody", image
    )


def alert(
    alert_id: str,
    window_id: str = "win-1",
    raised_at: datetime = T0,
    camera_id: str = "cam-1",
    source_ref: str | None = None,
    track_id: str | None = None,
) -> Alert:
    """By default each alert is its own track's (one alert per track and subject is the rule)."""
    return Alert(
        id=alert_id,
        window_id=window_id,
        camera_id=camera_id,
        track_id=f"t-{alert_id}" if track_id is None else track_id,
        subject_id="s-1",
        score=0.9123456789012345,
        threshold=0.8,
        candidates=(Candidate("s-1", 0.9123456789012345), Candidate("s-2", 0.41)),
        captured_at=raised_at - timedelta(microseconds=1500),
        raised_at=raised_at,
        crop_jpeg=tiny_jpeg(alert_id.encode()),
        model_id="model-a",
        source_ref=source_ref,
    )


def event(n: int, at: datetime = T0) -> AuditEvent:
    return AuditEvent(
        AuditAction.WINDOW_ARMED,
        "system",
        "window",
        f"win-{n}",
        at + timedelta(microseconds=n),
        {"n": n, "camera": "cam-1", "note": "ünïcode ✓", "nested": {"b": [1, 2.5, None], "a": True}},
    )


def principal(name: str, *roles: Role) -> Principal:
    return Principal(name, PrincipalKind.USER, frozenset(roles or {Role.OFFICER}))


def evaluation(eval_id: str, model_id: str, recorded_at: datetime) -> EvaluationSummary:
    return EvaluationSummary(eval_id, model_id, "lfw-v1", 0.61, True, "cd" * 32, "auditor", recorded_at)
