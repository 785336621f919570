"""The matcher's hot path: gate, validate, search, decide; keep a match as a durable alert, forget the rest.

Runs synchronously on a batch (the gRPC adapter micro-batches across camera streams and calls this in a
worker thread) because FAISS is fastest on batches and SQLite commits are cheapest grouped.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np

from lfr.domain.alert import Alert, AlertState, node_session
from lfr.domain.audit import AuditAction, AuditEvent
from lfr.domain.clock import Clock
from lfr.domain.embedding import require_model
from lfr.domain.errors import Conflict, InvalidInput, LfrError, ModelMismatch, StaleUpdate
from lfr.domain.matching import Candidate, MatchDecision, decide, normalise_queries
from lfr.domain.observation import TRACKS_COUNTER, Observation, ObservationResult, Outcome, RejectCode
from lfr.domain.ports import (
    AlertPublisher,
    CropValidator,
    IngestMetrics,
    UnitOfWork,
    UnitOfWorkFactory,
    VectorIndex,
)
from lfr.domain.window import ArmingGate, DeploymentWindow
from lfr.services.durability import AlertDurability
from lfr.services.ids import new_id
from lfr.services.indexes import IndexCache
from lfr.services.track_evidence import TrackEvidence, TrackKey

logger = logging.getLogger(__name__)

CounterKey = tuple[str, str, str]  # (window id or "", camera id, outcome)
# Tries at counting one sighting. A try that loses to another writer has already taken the audit chain
# lock, which every alert writer takes before writing, so its second look sees the last change and its
# second try cannot lose again.
_SIGHTING_ATTEMPTS = 2


@dataclass(slots=True)
class _Pending:
    position: int
    observation: Observation
    window: DeploymentWindow
    new_track: bool = False  # its track's first face here: counted as a person once it is decided


_NO_MATCH = ObservationResult(Outcome.NO_MATCH)  # frozen: one answer shared by every passer-by


def _internal_error() -> ObservationResult:
    return ObservationResult.rejected(
        RejectCode.INTERNAL, "the matcher failed on this observation; see the matcher's log"
    )


class ObservationCounters:
    """In-memory tallies flushed to the store now and then: the only trace a non-match leaves."""

    def __init__(self) -> None:
        self._counts: Counter[CounterKey] = Counter()
        self._lock = threading.Lock()

    def add(self, key: CounterKey, n: int = 1) -> None:
        with self._lock:
            self._counts[key] += n

    def add_all(self, counts: Counter[CounterKey]) -> None:
        if counts:
            with self._lock:
                self._counts.update(counts)

    def take(self) -> dict[CounterKey, int]:
        with self._lock:
            taken, self._counts = dict(self._counts), Counter()
        return taken

    def put_back(self, counts: dict[CounterKey, int]) -> None:
        with self._lock:
            self._counts.update(counts)


@dataclass(slots=True)
class _Tally:
    """A batch's counts, added to the counters and metrics once per key when the batch is done rather than
    once per observation (each addition takes a lock)."""

    counts: Counter[CounterKey] = field(default_factory=Counter)
    observed: Counter[tuple[str, str]] = field(default_factory=Counter)
    rejected: Counter[str] = field(default_factory=Counter)

    def add(self, window_id: str, camera_id: str, result: ObservationResult, new_track: bool) -> None:
        outcome = result.outcome.value
        self.counts[window_id, camera_id, outcome] += 1
        if new_track:
            # A person seen: a track's first face here (see TRACKS_COUNTER), once it was matched.
            self.counts[window_id, camera_id, TRACKS_COUNTER] += 1
        self.observed[camera_id, outcome] += 1
        if result.reject_code is not None:
            self.rejected[result.reject_code.value] += 1


class IngestService:
    def __init__(
        self,
        uow: UnitOfWorkFactory,
        clock: Clock,
        gate: Callable[[], ArmingGate],
        indexes: IndexCache,
        publisher: AlertPublisher,
        validate_crop: CropValidator,
        metrics: IngestMetrics,
        top_k: int = 5,
        durability: AlertDurability | None = None,
        captured_at_max_age: timedelta = timedelta(minutes=10),
        captured_at_max_ahead: timedelta = timedelta(seconds=30),
        track_evidence: TrackEvidence | None = None,
    ) -> None:
        self._uow = uow
        self._clock = clock
        self._gate = gate
        self._indexes = indexes
        self._publisher = publisher
        self._validate_crop = validate_crop
        self._metrics = metrics
        self._top_k = top_k
        self.durability = durability or AlertDurability(uow, clock)
        self._max_age = captured_at_max_age
        self._max_ahead = captured_at_max_ahead
        self.counters = ObservationCounters()
        self.track_evidence = track_evidence if track_evidence is not None else TrackEvidence()
        self._armed_ids: frozenset[str] = frozenset()
        self._batch = threading.local()  # .tally: the batch this thread is processing, if any

    def process(
        self, batch: Sequence[Observation], authenticated_camera: str | None = None
    ) -> list[ObservationResult]:
        started = time.perf_counter()
        self._batch.tally = tally = _Tally()
        try:
            results = self._process(batch, authenticated_camera)
        finally:
            self._batch.tally = None
            self._record(tally)
        self._metrics.match_latency(time.perf_counter() - started)
        return [
            r if r is not None else ObservationResult.rejected(RejectCode.MALFORMED, "unprocessed")
            for r in results
        ]

    def _process(
        self, batch: Sequence[Observation], authenticated_camera: str | None
    ) -> list[ObservationResult | None]:
        results: list[ObservationResult | None] = [None] * len(batch)
        gate = self._gate()
        now = self._clock.now()
        pending: list[_Pending] = []
        armed_ids = frozenset(w.id for w in gate.windows() if w.is_armed(now))
        if armed_ids != self._armed_ids:  # a window closed or opened: forget disarmed windows' tracks
            self.track_evidence.retain_windows(armed_ids)
            self._armed_ids = armed_ids
        windows: dict[str, DeploymentWindow | None] = {}  # by camera: the gate is asked once per batch
        for position, observation in enumerate(batch):
            camera = observation.camera_id
            if camera in windows:
                window = windows[camera]
            else:
                window = windows[camera] = gate.armed_window(camera, now)
            try:
                refusal = self._screen(observation, window, authenticated_camera, now)
            except Exception as exc:
                logger.exception("screening an observation failed (%s)", type(exc).__name__)
                refusal = _internal_error()
            if refusal is not None or window is None:
                refusal = refusal or ObservationResult(Outcome.NOT_ARMED)
                results[position] = self._finish(observation, refusal, window.id if window else "")
            else:
                pending.append(_Pending(position, observation, window))
        self._match(pending, results)
        return results

    def _screen(
        self,
        observation: Observation,
        window: DeploymentWindow | None,
        authenticated_camera: str | None,
        now: datetime,
    ) -> ObservationResult | None:
        """Why this observation must not be matched, or None if it may be."""
        if authenticated_camera is not None and observation.camera_id != authenticated_camera:
            return ObservationResult.rejected(
                RejectCode.CAMERA_MISMATCH,
                f"observation names camera {observation.camera_id!r} but credentials are for "
                f"{authenticated_camera!r}",
            )
        if window is None:
            return ObservationResult(Outcome.NOT_ARMED)
        age = now - observation.captured_at
        if age > self._max_age or -age > self._max_ahead:
            # A replay of an old recording, or a camera whose clock is wrong: either way its time cannot
            # be put on an alert that may be read in court.
            return ObservationResult.rejected(
                RejectCode.BAD_TIME,
                f"captured_at {observation.captured_at.isoformat()} is {age.total_seconds():+.0f} s from the "
                f"matcher's clock; accepted: up to {self._max_age.total_seconds():.0f} s old and "
                f"{self._max_ahead.total_seconds():.0f} s ahead",
            )
        if self.durability.suspended:
            return ObservationResult.rejected(
                RejectCode.STORE_UNAVAILABLE,
                "alerts cannot be stored now, so nothing is matched; the matcher resumes when the store "
                "writes again",
            )
        try:
            require_model(observation.model_id, window.model_id)
            # Decoding waits until a crop is about to be kept (it costs more than the search); the
            # envelope check is microseconds and still refuses truncated, foreign or oversized crops.
            self._validate_crop.check_envelope(observation.crop_jpeg)
        except ModelMismatch as exc:
            return ObservationResult.rejected(RejectCode.WRONG_MODEL, str(exc))
        except InvalidInput as exc:
            return ObservationResult.rejected(RejectCode.BAD_CROP, str(exc))
        return None

    def _match(self, pending: list[_Pending], results: list[ObservationResult | None]) -> None:
        by_window: dict[str, list[_Pending]] = {}
        for item in pending:
            by_window.setdefault(item.window.id, []).append(item)
        for items in by_window.values():
            try:
                self._match_window(items, results)
            except Exception as exc:
                # A fault in one window's search fails that window's undecided observations only; alerts
                # already stored for others in the batch keep their answers (stored iff told).
                logger.exception("matching for window %s failed (%s)", items[0].window.id, type(exc).__name__)
                for item in items:
                    if results[item.position] is None:
                        results[item.position] = self._finish(
                            item.observation, _internal_error(), item.window.id
                        )

    def _match_window(self, items: list[_Pending], results: list[ObservationResult | None]) -> None:
        window = items[0].window
        try:
            index = self._indexes.for_window(window)
        except LfrError as exc:
            logger.error("window %s cannot match: %s", window.id, exc)
            for item in items:
                results[item.position] = self._finish(
                    item.observation,
                    ObservationResult.rejected(RejectCode.STORE_ERROR, "watchlist unavailable"),
                    window.id,
                )
            return
        # The whole micro-batch at once: one validation and normalisation, one search, one comparison with
        # the threshold; candidates are built only for the matches (each still decided on its own).
        queries, reasons = normalise_queries([item.observation.vector for item in items], index.dimension)
        valid = [item for item, reason in zip(items, reasons, strict=True) if reason is None]
        for item, reason in zip(items, reasons, strict=True):
            if reason is not None:
                results[item.position] = self._finish(
                    item.observation,
                    ObservationResult.rejected(RejectCode.BAD_EMBEDDING, reason),
                    window.id,
                )
        if len(valid) == len(items):
            usable = queries  # the usual batch: no copy (wiped below, after the search)
        else:
            usable = queries[[r is None for r in reasons]]
            queries.fill(0)
        if not valid:
            return
        codes, scores = index.search_codes(usable, self._top_k)
        subjects = index.subjects
        # In float64, as `decide` compares: a float32 threshold could round below the window's.
        best = scores[:, 0].astype(np.float64)
        # Candidates are built for the matches and for faces that could support their track's fused
        # probe (track_evidence.py): almost never for a passer-by.
        wanted = best >= window.threshold - self.track_evidence.policy.support_margin
        found = [
            _candidates(subjects, codes[row], scores[row]) if wanted[row] else () for row in range(len(valid))
        ]
        try:
            fused = self._fuse_tracks(window, list(zip(valid, usable, strict=True)), found)
            fused_found = _search(index, [probe for _, _, probe in fused], self._top_k)
        finally:
            usable.fill(0)
        by_position = {
            i: (key, candidates) for (i, key, _), candidates in zip(fused, fused_found, strict=True)
        }
        for _, _, probe in fused:
            probe.fill(0)
        for row, item in enumerate(valid):
            results[item.position] = self._decide(item, found[row], by_position.get(row))

    def _decide(
        self,
        item: _Pending,
        candidates: tuple[Candidate, ...],
        fused: tuple[TrackKey, tuple[Candidate, ...]] | None = None,
    ) -> ObservationResult:
        """One observation's outcome; whatever goes wrong with it is its own answer, never its batch's.
        `fused`: its track's key and the fused probe's candidates, when the track's evidence was searched."""
        try:
            if not candidates and fused is None:  # nothing near the threshold: almost every passer-by
                return self._finish(item.observation, _NO_MATCH, item.window.id, item.new_track)
            decision = decide(candidates, item.window.threshold)
            if not decision.is_match and fused is not None:
                decision = self._track_decision(item.window, *fused) or decision
            if decision.is_match:
                return self._raise_alert(item, decision.candidates)
            return self._finish(item.observation, _NO_MATCH, item.window.id, item.new_track)
        except Exception as exc:
            logger.exception("observation in window %s failed (%s)", item.window.id, type(exc).__name__)
            return self._finish(item.observation, _internal_error(), item.window.id)

    def _fuse_tracks(
        self,
        window: DeploymentWindow,
        valid: list[tuple[_Pending, np.ndarray]],
        found: list[tuple[Candidate, ...]],
    ) -> list[tuple[int, TrackKey, np.ndarray]]:
        """Adds each face to its track's evidence; the fused probes of tracks with two or more faces."""
        fused = []
        for i, ((item, query), candidates) in enumerate(zip(valid, found, strict=True)):
            observation = item.observation
            if not observation.track_id:
                item.new_track = True
                continue
            key = (
                window.id,
                observation.camera_id,
                node_session(observation.source_ref),
                observation.track_id,
            )
            item.new_track = self.track_evidence.is_new(key)
            probe = self.track_evidence.add(key, observation.source_ref, query, candidates, window.threshold)
            if probe is not None:
                fused.append((i, key, probe))
        return fused

    def _track_decision(
        self, window: DeploymentWindow, key: TrackKey, candidates: tuple[Candidate, ...]
    ) -> MatchDecision | None:
        """The fused probe's decision, if it matches a subject that one face of the track supports
        (track_evidence.py: the rule against tracker swaps)."""
        decision = decide(candidates, window.threshold)
        best = decision.best
        if best is None or not decision.is_match:
            return None
        if not self.track_evidence.supports(key, best.subject_id, window.threshold):
            return None
        return decision

    def _raise_alert(self, item: _Pending, candidates: tuple[Candidate, ...]) -> ObservationResult:
        observation, window = item.observation, item.window
        # Only a crop that is about to be kept needs decoding; a non-match's crop is wiped unread, and
        # decoding every crop cost more than the search itself (bench/matcher.py).
        try:
            self._validate_crop(observation.crop_jpeg)
        except InvalidInput as exc:
            return self._finish(
                observation, ObservationResult.rejected(RejectCode.BAD_CROP, str(exc)), window.id
            )
        best = candidates[0]
        alert = Alert(
            id=new_id("alr"),
            window_id=window.id,
            camera_id=observation.camera_id,
            track_id=observation.track_id,
            subject_id=best.subject_id,
            score=best.score,
            threshold=window.threshold,
            candidates=candidates,
            captured_at=observation.captured_at,
            raised_at=self._clock.now(),
            crop_jpeg=bytes(observation.crop_jpeg),
            model_id=window.model_id,
            source_ref=observation.source_ref,
        )
        try:
            with self._uow() as uow:
                earlier = self._raised_for_track(uow, alert)
                if earlier is not None:
                    return self._seen_again(uow, item, earlier, alert)
                try:
                    stored = uow.alerts.add(alert)
                except Conflict:
                    # Another replica stored this observation's alert (a re-send), or its track's alert
                    # since we looked (two replicas got faces of one track at once): the store's unique
                    # indexes let only one in. Its alert is committed, so it is readable now.
                    earlier = self._raised_before(uow, alert)
                    if earlier is not None:
                        return self._repeat(observation, earlier)
                    earlier = self._raised_for_track(uow, alert)
                    if earlier is None:
                        raise
                    return self._seen_again(uow, item, earlier, alert)
                # The gate this batch read may be older than a close committed since. Adding the alert
                # took the audit chain lock, which closing a window needs too: a close committed before
                # is seen here, a later one waits for this commit. So no alert follows a close.
                if not uow.windows.get(window.id).is_armed(alert.raised_at):
                    uow.rollback()
                    return self._finish(observation, ObservationResult(Outcome.NOT_ARMED), window.id)
                uow.audit.append(
                    AuditEvent(
                        AuditAction.ALERT_RAISED,
                        "system",
                        "alert",
                        alert.id,
                        alert.raised_at,
                        {
                            "window_id": window.id,
                            "camera_id": alert.camera_id,
                            "subject_id": alert.subject_id,
                            "score": round(alert.score, 6),
                            "threshold": alert.threshold,
                        },
                    )
                )
                uow.commit()
        except LfrError as exc:
            logger.error("alert for window %s could not be stored: %s", window.id, type(exc).__name__)
            self.durability.failed(f"{type(exc).__name__}: {exc}")
            return self._finish(
                observation,
                ObservationResult.rejected(RejectCode.STORE_ERROR, "alert could not be stored"),
                window.id,
            )
        # Only now, with the alert durable, may anyone be told. From here on the answer is ALERT whatever
        # happens: the alert is stored, so its camera must be told so (live feeds also poll the store).
        try:
            self._publisher.publish(stored)
            # Measured on this clock against the camera's capture time, so camera clock skew shows here.
            self._metrics.alert_raised((self._clock.now() - observation.captured_at).total_seconds())
        except Exception:
            logger.exception("alert %s is stored but could not be published live", stored.id)
        return self._finish(
            observation, ObservationResult(Outcome.ALERT, alert_id=stored.id), window.id, item.new_track
        )

    @staticmethod
    def _raised_for_track(uow: UnitOfWork, alert: Alert) -> Alert | None:
        """The alert this track already raised for this subject in this window and node session: at
        most one per track identity (Alert.track_identity), held by the store's unique index across
        replicas. Observations naming no track are never folded together."""
        identity = alert.track_identity
        return uow.alerts.find_for_track(identity) if identity is not None else None

    def _seen_again(
        self, uow: UnitOfWork, item: _Pending, earlier: Alert, candidate: Alert
    ) -> ObservationResult:
        """A later face of a track that already raised an alert for this subject: the open alert takes
        the better face and counts the sighting; a decided one keeps the evidence it was decided on."""
        observation = item.observation
        for _ in range(_SIGHTING_ATTEMPTS):
            if earlier.state is not AlertState.RAISED or (
                candidate.source_ref is not None and candidate.source_ref == earlier.source_ref
            ):
                return self._repeat(observation, earlier)
            updated = earlier.seen_again(
                candidate.score, candidate.candidates, candidate.crop_jpeg, candidate.captured_at
            )
            try:
                updated = uow.alerts.update(updated)  # as stored: with its new revision, which feeds follow
                break
            except StaleUpdate:
                # Another face of the track counted first (on another replica or thread), or an officer
                # decided at this very moment: look again, so the sighting is counted on what is stored
                # now, and a decision stands on what they saw.
                earlier = self._raised_for_track(uow, candidate) or earlier
        else:
            # Not expected (see _SIGHTING_ATTEMPTS); the alert is stored, so its camera is still told.
            logger.warning("alert %s kept changing; one sighting of its track was not counted", earlier.id)
            return self._repeat(observation, earlier)
        uow.audit.append(
            AuditEvent(
                AuditAction.ALERT_SEEN_AGAIN,
                "system",
                "alert",
                earlier.id,
                self._clock.now(),
                {
                    "sightings": updated.sightings,
                    "score": round(candidate.score, 6),
                    "better_face": updated.score != earlier.score,
                },
            )
        )
        uow.commit()
        try:
            self._publisher.publish(updated)
        except Exception:
            logger.exception("alert %s is updated but could not be published live", updated.id)
        return self._finish(
            observation,
            ObservationResult(Outcome.ALERT, alert_id=earlier.id),
            earlier.window_id,
            item.new_track,
        )

    @staticmethod
    def _raised_before(uow: UnitOfWork, alert: Alert) -> Alert | None:
        """The alert already stored for this alert's observation: a node re-sent it (after a broken
        stream) to another replica, or to this one after a restart, which the adapter's memory of recent
        answers cannot know about."""
        if alert.source_ref is None:
            return None
        return uow.alerts.find_by_source(alert.camera_id, alert.source_ref)

    def _repeat(self, observation: Observation, earlier: Alert) -> ObservationResult:
        """Answers a re-sent observation with its stored alert. Nobody is told again and nothing is audited
        or counted again: it is the same face, already accounted for when it was first sent."""
        observation.discard()
        logger.info("camera %s re-sent the observation of alert %s", earlier.camera_id, earlier.id)
        return ObservationResult(Outcome.ALERT, alert_id=earlier.id)

    def _finish(
        self, observation: Observation, result: ObservationResult, window_id: str, new_track: bool = False
    ) -> ObservationResult:
        observation.discard()
        tally: _Tally | None = getattr(self._batch, "tally", None)
        if tally is not None:
            tally.add(window_id, observation.camera_id, result, new_track)
        else:
            tally = _Tally()
            tally.add(window_id, observation.camera_id, result, new_track)
            self._record(tally)
        return result

    def _record(self, tally: _Tally) -> None:
        self.counters.add_all(tally.counts)
        for (camera_id, outcome), n in tally.observed.items():
            self._metrics.observed(camera_id, outcome, n)
        for code, n in tally.rejected.items():
            self._metrics.rejected(code, n)

    def tracks_ended(self, camera_id: str, session: str, track_ids: Sequence[str]) -> None:
        """The camera's node says these tracks ended: what the matcher kept for them goes now."""
        self.track_evidence.forget(camera_id, session, track_ids)

    def refuse(self, camera_id: str, result: ObservationResult) -> ObservationResult:
        """Counts an observation the transport refused before it could become an Observation (undecodable,
        or naming another camera than its credentials), so counters and metrics still see it."""
        tally = _Tally()
        tally.add("", camera_id, result, False)
        self._record(tally)
        return result

    def flush_counters(self) -> None:
        counts = self.counters.take()
        if not counts:
            return
        try:
            with self._uow() as uow:
                uow.counters.increment(counts)
                uow.commit()
        except LfrError:
            self.counters.put_back(counts)
            raise


def _candidates(subjects: Sequence[str], codes: np.ndarray, scores: np.ndarray) -> tuple[Candidate, ...]:
    return tuple(
        Candidate(subjects[c], float(x))
        for c, x in zip(codes.tolist(), scores.tolist(), strict=True)
        if c >= 0
    )


def _search(index: VectorIndex, probes: list[np.ndarray], k: int) -> list[tuple[Candidate, ...]]:
    """Candidates of each fused probe (a second, usually empty, search)."""
    if not probes:
        return []
    codes, scores = index.search_codes(np.stack(probes), k)
    return [_candidates(index.subjects, codes[row], scores[row]) for row in range(len(probes))]
