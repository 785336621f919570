"""Protobuf <-> domain conversions. Pure functions; no service calls, no I/O."""

from __future__ import annotations

import itertools
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import numpy as np
from google.protobuf.timestamp_pb2 import Timestamp

from lfr.domain.alert import Adjudication, Alert, AlertState
from lfr.domain.audit import AuditRecord, ChainVerification
from lfr.domain.checkpoint import Checkpoint
from lfr.domain.errors import InvalidInput
from lfr.domain.evaluation import EquityVerdict, EvaluationSummary
from lfr.domain.observation import FaceQuality, Observation, ObservationResult, Outcome
from lfr.domain.watchlist import Subject, TemplateImage, Watchlist, WatchlistState
from lfr.domain.window import DeploymentWindow, WindowSpec, WindowState
from lfr.services.watchlists import SubjectSpec
from lfr.v1 import control_pb2 as pb
from lfr.v1 import ingest_pb2 as ipb

MAX_DIMENSION = 4096
# A node session becomes part of an alert's source reference (a 128-character column); nodes pick 32 hex
# characters.
MAX_NODE_SESSION = 64
MAX_TRACK_ID = 128  # the alerts.track_id column


class MalformedObservation(InvalidInput):
    """An observation whose bytes cannot even be decoded; rejected on its own, the stream goes on."""


# --- time -----------------------------------------------------------------------------------------------


def timestamp(when: datetime | None) -> Timestamp | None:
    if when is None:
        return None
    stamp = Timestamp()
    stamp.FromDatetime(when.astimezone(UTC))
    return stamp


def from_timestamp(stamp: Timestamp, what: str) -> datetime:
    """An unset Timestamp reads as 1970; refuse it rather than pretend the camera meant that."""
    seconds, nanos = stamp.seconds, stamp.nanos
    if seconds == 0 and nanos == 0:
        raise InvalidInput(f"{what} is required")
    # What Timestamp.ToDatetime(tzinfo=UTC) returns, checked the same way, at 60% of its cost (it runs for
    # every observation on the hot path).
    # Outside what a datetime can hold: refused as protobuf's own conversion refuses it.
    if not _MIN_SECONDS <= seconds <= _MAX_SECONDS:
        raise InvalidInput(
            f"{what} is out of range (seconds {seconds} must be in range [{_MIN_SECONDS}, {_MAX_SECONDS}])"
        )
    if not 0 <= nanos < 1_000_000_000:
        raise InvalidInput(f"{what} is out of range (nanos {nanos} must be in range [0, 999999999])")
    return _EPOCH + timedelta(seconds=seconds, microseconds=nanos // 1000)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MIN_SECONDS, _MAX_SECONDS = -62135596800, 253402300799  # 0001-01-01 .. 9999-12-31T23:59:59, as protobuf's


# --- embeddings -----------------------------------------------------------------------------------------


def embedding_from_bytes(payload: bytes, dimension: int) -> np.ndarray:
    """Little-endian float32 values, `dimension` of them. Returns a private writable copy so the service
    can wipe it: the protobuf's own immutable bytes cannot be overwritten from Python."""
    if not 1 <= dimension <= MAX_DIMENSION:
        raise MalformedObservation(f"declared dimension {dimension} is outside 1..{MAX_DIMENSION}")
    if len(payload) != 4 * dimension:
        raise MalformedObservation(
            f"embedding has {len(payload)} bytes, expected {4 * dimension} for dimension {dimension}"
        )
    return _private_floats(payload)


def _private_floats(payload: bytes) -> np.ndarray:
    if _LITTLE_ENDIAN:  # one copy, into a bytearray the array then views (writable, so it can be wiped)
        return np.frombuffer(bytearray(payload), dtype=np.float32)
    return np.frombuffer(payload, dtype="<f4").astype(np.float32, copy=True)


_LITTLE_ENDIAN = sys.byteorder == "little"


def embedding_to_bytes(vector: np.ndarray) -> bytes:
    return np.ascontiguousarray(vector, dtype="<f4").tobytes()


# --- ingest ---------------------------------------------------------------------------------------------


def observation(message: ipb.Observation, node_session: str = "") -> Observation:
    """Raises MalformedObservation (an InvalidInput) if the message cannot become an Observation.
    `node_session` is its batch's: with the seq it names the observation for the store (`source_ref`)."""
    _check_node_session(node_session)
    return _observation(message, node_session, None, {})


def observations(
    batch: ipb.ObservationBatch, positions: Sequence[int] | None = None
) -> list[Observation | MalformedObservation]:
    """The batch's observations at `positions` (all by default), each an Observation or why it cannot be
    one: what `observation` gives or raises for each, with what the batch shares checked once and its
    packed embeddings (`embeddings_f32le`) taken in one copy, which each Observation's vector views."""
    items = batch.observations
    wanted = range(len(items)) if positions is None else positions
    session = batch.node_session
    try:
        _check_node_session(session)
    except MalformedObservation as exc:
        return [exc] * len(wanted)
    vectors = packed_embeddings(batch, wanted) if batch.embeddings_f32le else None
    decoded: list[Observation | MalformedObservation] = []
    times: dict[tuple[int, int], datetime] = {}  # the faces of one frame share its capture time
    for i, position in enumerate(wanted):
        vector = vectors[i] if vectors is not None else None
        try:
            decoded.append(_observation(items[position], session, vector, times))
        except MalformedObservation as exc:
            if isinstance(vector, np.ndarray):
                vector.fill(0)
            decoded.append(exc)
    return decoded


def packed_embeddings(
    batch: ipb.ObservationBatch, positions: Sequence[int]
) -> list[np.ndarray | MalformedObservation]:
    """The embeddings at `positions` from the batch's `embeddings_f32le`: views into one private writable
    copy (so the service can wipe each; the rows of other positions are wiped here at once), or why an
    observation's share cannot be read."""
    payload, items = batch.embeddings_f32le, batch.observations
    dimensions = [item.dimension for item in items]
    expected = 4 * sum(dimensions)
    if len(payload) != expected:
        refusal = MalformedObservation(
            f"embeddings_f32le has {len(payload)} bytes, expected {expected} for the observations' declared "
            "dimensions (4 bytes each)"
        )
        return [refusal] * len(positions)
    flat = _private_floats(payload)
    first = dimensions[0] if dimensions else 0
    if (
        1 <= first <= MAX_DIMENSION
        and dimensions.count(first) == len(dimensions)
        and not any(item.embedding_f32le for item in items)
    ):
        # What camera nodes send: one model, so one dimension, and no embedding of its own. Rows of one
        # reshaped view; only the rows of positions not taken (re-sends) need wiping here.
        rows = flat.reshape(len(dimensions), first)
        if len(positions) != len(dimensions):
            unwanted = np.ones(len(dimensions), dtype=bool)
            unwanted[list(positions)] = False
            rows[unwanted] = 0
        return [rows[position] for position in positions]
    ends = list(itertools.accumulate(dimensions))
    kept = np.zeros(len(flat), dtype=bool)
    taken: list[np.ndarray | MalformedObservation] = []
    for position in positions:
        dimension, end = dimensions[position], ends[position]
        if not 1 <= dimension <= MAX_DIMENSION:
            taken.append(
                MalformedObservation(f"declared dimension {dimension} is outside 1..{MAX_DIMENSION}")
            )
        elif items[position].embedding_f32le:
            taken.append(
                MalformedObservation(
                    "embedding sent twice: in the observation and in the batch's embeddings_f32le"
                )
            )
        else:
            taken.append(flat[end - dimension : end])
            kept[end - dimension : end] = True
    if not kept.all():
        flat[~kept] = 0  # re-sends, refusals and malformed shares: no copy of them outlives this call
    return taken


def _check_node_session(node_session: str) -> None:
    if len(node_session) > MAX_NODE_SESSION:
        raise MalformedObservation(f"node_session is longer than {MAX_NODE_SESSION} characters")
    # Both end up in the alert's row: text the database would refuse (too long, a NUL character) must be
    # refused here, with its observation, or one camera could make alerts unstorable and so suspend
    # matching for every camera (see lfr/services/durability.py).
    if not (node_session.isascii() and node_session.isprintable()):
        raise MalformedObservation("node_session must be printable ASCII")


def _observation(
    message: ipb.Observation,
    node_session: str,
    packed: np.ndarray | MalformedObservation | None,
    times: dict[tuple[int, int], datetime],
) -> Observation:
    """`packed`: this observation's share of its batch's packed embeddings (None: its own field).
    `times`: capture times already converted in this batch, by (seconds, nanos)."""
    if len(message.track_id) > MAX_TRACK_ID or not message.track_id.isprintable():
        raise MalformedObservation(f"track_id must be printable text of at most {MAX_TRACK_ID} characters")
    stamp = message.captured_at
    key = (stamp.seconds, stamp.nanos)
    captured_at = times.get(key)
    if captured_at is None:
        try:
            captured_at = from_timestamp(stamp, "captured_at")
        except (InvalidInput, ValueError, OverflowError) as exc:
            raise MalformedObservation(f"captured_at: {exc}") from exc
        times[key] = captured_at
    if not message.model_id:
        raise MalformedObservation("model_id is required")
    if packed is None:
        vector = embedding_from_bytes(message.embedding_f32le, message.dimension)
    elif isinstance(packed, MalformedObservation):
        raise packed
    else:
        vector = packed
    return Observation(
        camera_id=message.camera_id,
        captured_at=captured_at,
        track_id=message.track_id,
        model_id=message.model_id,
        vector=vector,
        crop_jpeg=bytearray(message.crop_jpeg),
        quality=_quality(message.quality) if message.HasField("quality") else _NO_QUALITY,
        source_ref=f"{node_session}:{message.seq}" if node_session else None,
    )


def _quality(quality: ipb.FaceQuality) -> FaceQuality:
    return FaceQuality(
        detector_score=quality.detector_score,
        face_width_px=quality.face_width_px,
        face_height_px=quality.face_height_px,
        interocular_px=quality.interocular_px,
        sharpness=quality.sharpness,
        yaw_deg=quality.yaw_deg,
        pitch_deg=quality.pitch_deg,
    )


_NO_QUALITY = FaceQuality()  # what an unset message field reads as: all zeros (FaceQuality is frozen)


_OUTCOMES = {
    Outcome.NOT_ARMED: ipb.OUTCOME_NOT_ARMED,
    Outcome.NO_MATCH: ipb.OUTCOME_NO_MATCH,
    Outcome.ALERT: ipb.OUTCOME_ALERT,
    Outcome.REJECTED: ipb.OUTCOME_REJECTED,
}


def observation_result(seq: int, result: ObservationResult) -> ipb.ObservationResult:
    return ipb.ObservationResult(
        seq=seq,
        outcome=_OUTCOMES[result.outcome],
        alert_id=result.alert_id or "",
        reject_code=str(result.reject_code) if result.reject_code is not None else "",
        reason=result.reason,
    )


# --- windows --------------------------------------------------------------------------------------------

_WINDOW_STATES = {
    WindowState.PENDING: pb.WINDOW_STATE_PENDING,
    WindowState.AUTHORISED: pb.WINDOW_STATE_AUTHORISED,
    WindowState.CLOSED: pb.WINDOW_STATE_CLOSED,
}


def window_spec(request: pb.CreateWindowRequest) -> WindowSpec:
    if not request.HasField("starts_at") or not request.HasField("ends_at"):
        raise InvalidInput("starts_at and ends_at are required")
    return WindowSpec(
        purpose=request.purpose,
        legal_basis=request.legal_basis,
        location=request.location,
        camera_ids=frozenset(request.camera_ids),
        watchlist_id=request.watchlist_id,
        threshold=request.threshold,
        starts_at=from_timestamp(request.starts_at, "starts_at"),
        ends_at=from_timestamp(request.ends_at, "ends_at"),
        assigned_users=frozenset(request.assigned_users),
    )


def window(w: DeploymentWindow, now: datetime) -> pb.Window:
    return pb.Window(
        id=w.id,
        purpose=w.purpose,
        legal_basis=w.legal_basis,
        location=w.location,
        camera_ids=sorted(w.camera_ids),
        watchlist_id=w.watchlist_id,
        watchlist_hash=w.watchlist_hash,
        model_id=w.model_id,
        threshold=w.threshold,
        starts_at=timestamp(w.starts_at),
        ends_at=timestamp(w.ends_at),
        state=_WINDOW_STATES[w.state],
        armed=w.is_armed(now),
        created_by=w.created_by,
        authorised_by=w.authorised_by or "",
        authorised_at=timestamp(w.authorised_at),
        closed_by=w.closed_by or "",
        closed_at=timestamp(w.closed_at),
        close_reason=w.close_reason,
        assigned_users=sorted(w.assigned_users),
    )


def equity_verdict(verdict: EquityVerdict, gate: str) -> pb.EquityVerdict:
    return pb.EquityVerdict(
        outcome=verdict.outcome.value,
        reasons=list(verdict.reasons),
        evaluation_id=verdict.evaluation_id or "",
        gate=gate,
    )


def evaluation_record(summary: EvaluationSummary, watchlist_sizes: Sequence[int]) -> pb.EvaluationRecord:
    return pb.EvaluationRecord(
        id=summary.id,
        model_id=summary.model_id,
        index_type=summary.index_type,
        dataset_fingerprint=summary.dataset_fingerprint,
        passed=summary.passed,
        recommended_threshold=summary.recommended_threshold,
        watchlist_sizes=list(watchlist_sizes),
        report_sha256=summary.report_sha256,
        recorded_by=summary.recorded_by,
        recorded_at=timestamp(summary.recorded_at),
    )


# --- watchlists -----------------------------------------------------------------------------------------

_WATCHLIST_STATES = {
    WatchlistState.DRAFT: pb.WATCHLIST_STATE_DRAFT,
    WatchlistState.SEALED: pb.WATCHLIST_STATE_SEALED,
    WatchlistState.DESTROYED: pb.WATCHLIST_STATE_DESTROYED,
}


def watchlist(w: Watchlist, subject_count: int) -> pb.Watchlist:
    return pb.Watchlist(
        id=w.id,
        name=w.name,
        model_id=w.model_id,
        dimension=w.dimension,
        state=_WATCHLIST_STATES[w.state],
        content_hash=w.content_hash,
        created_by=w.created_by,
        created_at=timestamp(w.created_at),
        subject_count=subject_count,
    )


def subject_spec(request: pb.AddSubjectRequest) -> SubjectSpec:
    return SubjectSpec(
        reference=request.reference,
        display_name=request.display_name,
        category=request.category,
        reason=request.reason,
        image_source=request.image_source,
        reference_image_jpeg=request.reference_image_jpeg or None,
        templates=template_images(request),
    )


def template_images(request: pb.AddSubjectRequest) -> tuple[TemplateImage, ...]:
    provenance, images = list(request.template_provenance), list(request.template_images_jpeg)
    if images and len(images) != len(provenance):
        raise InvalidInput(f"{len(images)} template images but {len(provenance)} provenance entries")
    return tuple(
        TemplateImage(p, images[i] if images and images[i] else None) for i, p in enumerate(provenance)
    )


def subject_embeddings(request: pb.AddSubjectRequest) -> np.ndarray:
    if not request.embeddings_f32le:
        raise InvalidInput("a subject needs at least one embedding")
    try:
        rows = [embedding_from_bytes(e, request.dimension) for e in request.embeddings_f32le]
    except MalformedObservation as exc:
        raise InvalidInput(str(exc)) from exc
    return np.stack(rows)


def subject(s: Subject) -> pb.Subject:
    return pb.Subject(
        id=s.id,
        watchlist_id=s.watchlist_id,
        reference=s.reference,
        display_name=s.display_name,
        category=s.category,
        reason=s.reason,
        image_source=s.image_source,
    )


# --- alerts ---------------------------------------------------------------------------------------------

_ALERT_STATES = {
    AlertState.RAISED: pb.ALERT_STATE_RAISED,
    AlertState.AWAITING_VERIFICATION: pb.ALERT_STATE_AWAITING_VERIFICATION,
    AlertState.ADJUDICATED: pb.ALERT_STATE_ADJUDICATED,
}
_ADJUDICATIONS = {
    Adjudication.CONFIRMED: pb.ADJUDICATION_CONFIRMED,
    Adjudication.FALSE_ALERT: pb.ADJUDICATION_FALSE_ALERT,
    Adjudication.NOT_ENGAGED: pb.ADJUDICATION_NOT_ENGAGED,
}
_ADJUDICATIONS_BACK = {v: k for k, v in _ADJUDICATIONS.items()}


def adjudication(value: int) -> Adjudication:
    try:
        return _ADJUDICATIONS_BACK[value]  # type: ignore[index]
    except KeyError:
        raise InvalidInput("outcome must be confirmed, false_alert or not_engaged") from None


def alert(a: Alert, with_crop: bool = False, feed_revision: int | None = None) -> pb.Alert:
    return pb.Alert(
        id=a.id,
        sequence=a.sequence,
        window_id=a.window_id,
        camera_id=a.camera_id,
        track_id=a.track_id,
        subject_id=a.subject_id,
        score=a.score,
        threshold=a.threshold,
        candidates=[pb.Candidate(subject_id=c.subject_id, score=c.score) for c in a.candidates],
        captured_at=timestamp(a.captured_at),
        raised_at=timestamp(a.raised_at),
        crop_jpeg=a.crop_jpeg if with_crop else b"",
        state=_ALERT_STATES[a.state],
        outcome=_ADJUDICATIONS[a.outcome] if a.outcome is not None else pb.ADJUDICATION_UNSPECIFIED,
        adjudicated_by=a.adjudicated_by or "",
        adjudicated_at=timestamp(a.adjudicated_at),
        notes=a.notes,
        verified_by=a.verified_by or "",
        version=a.version,
        feed_revision=feed_revision or 0,
        amended_by=a.amended_by or "",
    )


# --- audit ----------------------------------------------------------------------------------------------


def audit_record(r: AuditRecord) -> pb.AuditRecord:
    return pb.AuditRecord(
        seq=r.seq,
        at=timestamp(r.at),
        actor=r.actor,
        action=r.action,
        subject_kind=r.subject_kind,
        subject_id=r.subject_id,
        details_json=r.details_json,
        prev_hash=r.prev_hash,
        hash=r.hash,
        at_iso=r.at.isoformat(timespec="microseconds"),
    )


def audit_record_from_proto(r: pb.AuditRecord) -> AuditRecord:
    """Rebuilds the exact hashed record (from at_iso), so an exported log can be verified offline."""
    return AuditRecord(
        seq=r.seq,
        at=datetime.fromisoformat(r.at_iso),
        actor=r.actor,
        action=r.action,
        subject_kind=r.subject_kind,
        subject_id=r.subject_id,
        details_json=r.details_json,
        prev_hash=r.prev_hash,
        hash=r.hash,
    )


def verification(v: ChainVerification) -> pb.VerifyResponse:
    return pb.VerifyResponse(
        ok=v.ok,
        records_checked=v.records_checked,
        first_bad_seq=v.first_bad_seq or 0,
        reason=v.reason,
        checkpoints_checked=v.checkpoints_checked,
        anchored_seq=v.anchored_seq,
    )


def audit_checkpoint(c: Checkpoint) -> pb.AuditCheckpoint:
    return pb.AuditCheckpoint(
        key_id=c.key_id,
        seq=c.seq,
        chain_hash=c.chain_hash,
        at_iso=c.at.isoformat(timespec="microseconds"),
        signature=c.signature,
    )
