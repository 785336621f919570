from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row, bindparam, delete, func, insert, select, update

from lfr.adapters.storage.sql.audit import lock_chain_head
from lfr.adapters.storage.sql.schema import alert_revision_counter as counter
from lfr.adapters.storage.sql.schema import alerts as t
from lfr.adapters.storage.sql.sealing import opened, sealed
from lfr.adapters.storage.sql.tx import Tx
from lfr.domain.alert import Adjudication, Alert, AlertState, TrackIdentity
from lfr.domain.errors import NotFound, StaleUpdate, StoreUnavailable
from lfr.domain.matching import Candidate
from lfr.domain.ports import ImageSealer

ALERT_CHANNEL = "lfr_alert_changes"  # NOTIFY payload: a revision number

# Built once: raising an alert runs these on the matcher's hot path (see Tx's Params).
_UNSEALED = [c for c in t.c if c.name != "crop_jpeg"]  # listings and feeds never decrypt a crop
_INSERT = insert(t).returning(t.c.sequence)
_FOR_TRACK = select(*_UNSEALED).where(
    t.c.window_id == bindparam("window_id"),
    t.c.camera_id == bindparam("camera_id"),
    t.c.node_session == bindparam("node_session"),
    t.c.track_id == bindparam("track_id"),
    t.c.subject_id == bindparam("subject_id"),
)
_NEXT_REVISION = (
    update(counter).where(counter.c.id == 1).values(value=counter.c.value + 1).returning(counter.c.value)
)
_CHANGED_SINCE = select(*_UNSEALED).where(t.c.revision > bindparam("after")).order_by(t.c.revision)
_CHANGED_SINCE_ALL = _CHANGED_SINCE.limit(bindparam("limit"))
_CHANGED_SINCE_IN = _CHANGED_SINCE.where(t.c.window_id.in_(bindparam("windows", expanding=True))).limit(
    bindparam("limit")
)


class SqlAlerts:
    def __init__(self, tx: Tx, sealer: ImageSealer | None = None) -> None:
        self._tx = tx
        self._sealer = sealer

    def add(self, alert: Alert) -> Alert:
        # Subscribers catch up with "sequence > last seen", so sequences must become visible in order.
        # A database sequence alone does not promise that with concurrent writers (a lower number can
        # commit later); taking the audit chain lock first, which raising an alert needs anyway, does.
        lock_chain_head(self._tx)
        row = _to_row(alert)
        del row["sequence"]
        row["crop_jpeg"] = sealed(self._sealer, row["crop_jpeg"], f"alert:{alert.id}")
        row["revision"] = self._next_revision()
        inserted = self._tx.first(_INSERT, f"adding alert {alert.id}", may_conflict=True, params=row)
        if inserted is None:
            raise StoreUnavailable(f"adding alert {alert.id}: the database assigned no sequence")
        return dataclasses.replace(alert, sequence=int(inserted.sequence), revision=row["revision"])

    def get(self, alert_id: str) -> Alert:
        row = self._tx.first(select(t).where(t.c.id == alert_id), f"reading alert {alert_id}")
        if row is None:
            raise NotFound(f"no alert {alert_id}")
        return self._alert(row)

    def find_by_source(self, camera_id: str, source_ref: str) -> Alert | None:
        row = self._tx.first(
            select(t).where(t.c.camera_id == camera_id, t.c.source_ref == source_ref),
            f"reading camera {camera_id}'s alert by source",
        )
        return self._alert(row) if row is not None else None

    def find_for_track(self, identity: TrackIdentity) -> Alert | None:
        # The crop stays sealed unless replaced.
        row = self._tx.first(
            _FOR_TRACK,
            f"reading camera {identity.camera_id}'s alert by track",
            params={
                "window_id": identity.window_id,
                "camera_id": identity.camera_id,
                "node_session": identity.node_session,
                "track_id": identity.track_id,
                "subject_id": identity.subject_id,
            },
        )
        return _from_row(row) if row is not None else None

    def update(self, alert: Alert) -> Alert:
        # The chain lock before the revision counter, in the same order as `add`, so two writers can never
        # wait for each other (a decision's audit record needs the chain lock anyway).
        lock_chain_head(self._tx)
        row = _to_row(alert)
        # Assigned once by the store, never rewritten; a duplicate kept by migration 0013 keeps no session.
        del row["sequence"], row["node_session"]
        # A listed alert carries no crop: the stored one stays sealed as it was. A better face of the same
        # track brings a new crop, sealed like the first.
        if alert.crop_jpeg:
            row["crop_jpeg"] = sealed(self._sealer, row["crop_jpeg"], f"alert:{alert.id}")
        else:
            del row["crop_jpeg"]
        row["revision"] = self._next_revision()
        changed = self._tx.run(
            update(t).where(t.c.id == alert.id, t.c.version == alert.version - 1).values(row),
            f"updating alert {alert.id}",
        )
        if changed != 1:
            self.get(alert.id)
            raise StaleUpdate(f"alert {alert.id} changed concurrently")
        return dataclasses.replace(alert, revision=row["revision"])

    def changed_since(
        self, after_revision: int, window_ids: Sequence[str] | None = None, limit: int = 100
    ) -> list[Alert]:
        # No crop: none is decrypted for a feed.
        params: dict[str, Any] = {"after": after_revision, "limit": max(limit, 0)}
        query = _CHANGED_SINCE_ALL
        if window_ids is not None:
            query, params["windows"] = _CHANGED_SINCE_IN, list(window_ids)
        return [_from_row(r) for r in self._tx.rows(query, "listing changed alerts", params)]

    def last_revision(self) -> int:
        row = self._tx.first(select(counter.c.value).where(counter.c.id == 1), "reading the alert revision")
        return int(row.value) if row is not None else 0

    def _next_revision(self) -> int:
        """Takes the next revision; the counter row stays locked until commit, so revisions become visible
        in order. On PostgreSQL the commit also tells every listening replica (the payload is the number
        only, never alert content)."""
        row = self._tx.first(_NEXT_REVISION, "numbering an alert change")
        if row is None:
            raise StoreUnavailable("the alert revision counter is missing: the schema was not migrated")
        revision = int(row.value)
        if self._tx.dialect == "postgresql":
            self._tx.first(select(func.pg_notify(ALERT_CHANNEL, str(revision))), "announcing an alert change")
        return revision

    def find(
        self, window_ids: Sequence[str] | None = None, after_sequence: int = 0, limit: int = 100
    ) -> list[Alert]:
        # Every column but the crop: listings never carry one, so never decrypt one.
        columns = [c for c in t.c if c.name != "crop_jpeg"]
        query = (
            select(*columns).where(t.c.sequence > after_sequence).order_by(t.c.sequence).limit(max(limit, 0))
        )
        if window_ids is not None:
            query = query.where(t.c.window_id.in_(list(window_ids)))
        return [_from_row(r) for r in self._tx.rows(query, "listing alerts")]

    def find_for_subject(
        self, window_id: str, subject_id: str, up_to_sequence: int, limit: int = 1000
    ) -> list[Alert]:
        latest = (
            select(*[c for c in t.c if c.name != "crop_jpeg"])
            .where(t.c.window_id == window_id, t.c.subject_id == subject_id, t.c.sequence <= up_to_sequence)
            .order_by(t.c.sequence.desc())
            .limit(max(limit, 0))
        )
        rows = self._tx.rows(latest, f"reading subject {subject_id}'s alerts in window {window_id}")
        return [_from_row(r) for r in reversed(rows)]

    def purge_raised_before(self, cutoff: datetime) -> int:
        return self._tx.run(delete(t).where(t.c.raised_at < cutoff), "purging alerts")

    def _alert(self, row: Row[Any]) -> Alert:
        alert = _from_row(row)
        return dataclasses.replace(
            alert, crop_jpeg=opened(self._sealer, alert.crop_jpeg, f"alert:{alert.id}")
        )


def _to_row(a: Alert) -> dict[str, Any]:
    return {
        "sequence": a.sequence,
        "id": a.id,
        "window_id": a.window_id,
        "camera_id": a.camera_id,
        "track_id": a.track_id,
        "subject_id": a.subject_id,
        "score": a.score,
        "threshold": a.threshold,
        "candidates_json": json.dumps([[c.subject_id, c.score] for c in a.candidates]),
        "captured_at": a.captured_at,
        "raised_at": a.raised_at,
        "crop_jpeg": bytes(a.crop_jpeg),
        "model_id": a.model_id,
        "state": a.state.value,
        "outcome": a.outcome.value if a.outcome is not None else None,
        "adjudicated_by": a.adjudicated_by,
        "adjudicated_at": a.adjudicated_at,
        "notes": a.notes,
        "verified_by": a.verified_by,
        "verified_at": a.verified_at,
        "version": a.version,
        "source_ref": a.source_ref,
        "sightings": a.sightings,
        "node_session": identity.node_session if (identity := a.track_identity) is not None else None,
        "first_seen_at": a.first_seen_at,
        "last_seen_at": a.last_seen_at,
        "revision": a.revision,
        "amended_by": a.amended_by,
        "amended_at": a.amended_at,
        "amendment_reason": a.amendment_reason,
    }


def _from_row(r: Row[Any]) -> Alert:
    return Alert(
        id=r.id,
        window_id=r.window_id,
        camera_id=r.camera_id,
        track_id=r.track_id,
        subject_id=r.subject_id,
        score=r.score,
        threshold=r.threshold,
        candidates=tuple(Candidate(str(sid), float(score)) for sid, score in json.loads(r.candidates_json)),
        captured_at=r.captured_at,
        raised_at=r.raised_at,
        crop_jpeg=bytes(r.crop_jpeg) if "crop_jpeg" in r._fields else b"",
        model_id=r.model_id,
        sequence=int(r.sequence),
        state=AlertState(r.state),
        outcome=Adjudication(r.outcome) if r.outcome is not None else None,
        adjudicated_by=r.adjudicated_by,
        adjudicated_at=r.adjudicated_at,
        notes=r.notes,
        verified_by=r.verified_by,
        verified_at=r.verified_at,
        version=r.version,
        source_ref=r.source_ref,
        sightings=int(r.sightings),
        first_seen_at=r.first_seen_at,
        last_seen_at=r.last_seen_at,
        revision=int(r.revision),
        amended_by=r.amended_by,
        amended_at=r.amended_at,
        amendment_reason=r.amendment_reason,
    )
