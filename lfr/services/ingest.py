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
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np

from lfr.domain.alert import Alert
from lfr.domain.audit import AuditAction, AuditEvent
from lfr.domain.clock import Clock
from lfr.domain.embedding import require_model
from lfr.domain.errors import Conflict, InvalidInput, LfrError, ModelMismatch
from lfr.domain.matching import Candidate, decide, normalise_queries
from lfr.domain.observation import Observation, ObservationResult, Outcome, RejectCode
from lfr.domain.ports import (
    AlertPublisher,
    CropValidator,
    IngestMetrics,
    UnitOfWork,
    UnitOfWorkFactory,
)
from lfr.domain.window import ArmingGate, DeploymentWindow
from lfr.services.durability import AlertDurability
from lfr.services.ids import new_id
from lfr.services.indexes import IndexCache

logger = logging.getLogger(__name__)

CounterKey = tuple[str, str, str]  # (window id or "", camera id, outcome)


@dataclass(slots=True)
class _Pending:
    position: int
    observation: Observation
    window: DeploymentWindow


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

    def take(self) -> dict[CounterKey, int]:
        with self._lock:
            taken, self._counts = dict(self._counts), Counter()
        return taken

    def put_back(self, counts: dict[CounterKey, int]) -> None:
        with self._lock:
            self._counts.update(counts)


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

    def process(
        self, batch: Sequence[Observation], authenticated_camera: str | None = None
    ) -> list[ObservationResult]:
        started = time.perf_counter()
        results: list[ObservationResult | None] = [None] * len(batch)
        gate = self._gate()
        now = self._clock.now()
        pending: list[_Pending] = []
        for position, observation in enumerate(batch):
            window = gate.armed_window(observation.camera_id, now)
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
        self._metrics.match_latency(time.perf_counter() - started)
        return [
            r if r is not None else ObservationResult.rejected(RejectCode.MALFORMED, "unprocessed")
            for r in results
        ]

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
        usable = queries[[r is None for r in reasons]]
        queries.fill(0)
        if not valid:
            return
        codes, scores = index.search_codes(usable, self._top_k)
        usable.fill(0)
        # In float64, as `decide` compares: a float32 threshold could round below the window's.
        matched = scores[:, 0].astype(np.float64) >= window.threshold
        subjects = index.subjects
        for row, item in enumerate(valid):
            candidates: tuple[Candidate, ...] = ()
            if matched[row]:
                candidates = tuple(
                    Candidate(subjects[c], float(x))
                    for c, x in zip(codes[row].tolist(), scores[row].tolist(), strict=True)
                    if c >= 0
                )
            results[item.position] = self._decide(item, candidates)

    def _decide(self, item: _Pending, candidates: tuple[Candidate, ...]) -> ObservationResult:
        """One observation's outcome; whatever goes wrong with it is its own answer, never its batch's."""
        try:
            decision = decide(candidates, item.window.threshold)
            if decision.is_match:
                return self._raise_alert(item, decision.candidates)
            return self._finish(item.observation, ObservationResult(Outcome.NO_MATCH), item.window.id)
        except Exception as exc:
            logger.exception("observation in window %s failed (%s)", item.window.id, type(exc).__name__)
            return self._finish(item.observation, _internal_error(), item.window.id)

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
                try:
                    stored = uow.alerts.add(alert)
                except Conflict:
                    earlier = self._raised_before(uow, alert)
                    if earlier is None:
                        raise
                    return self._repeat(observation, earlier)
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
        return self._finish(observation, ObservationResult(Outcome.ALERT, alert_id=stored.id), window.id)

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
        self, observation: Observation, result: ObservationResult, window_id: str
    ) -> ObservationResult:
        observation.discard()
        self.counters.add((window_id, observation.camera_id, str(result.outcome)))
        self._metrics.observed(observation.camera_id, str(result.outcome))
        if result.reject_code is not None:
            self._metrics.rejected(str(result.reject_code))
        return result

    def refuse(self, camera_id: str, result: ObservationResult) -> ObservationResult:
        """Counts an observation the transport refused before it could become an Observation (undecodable,
        or naming another camera than its credentials), so counters and metrics still see it."""
        self.counters.add(("", camera_id, str(result.outcome)))
        self._metrics.observed(camera_id, str(result.outcome))
        if result.reject_code is not None:
            self._metrics.rejected(str(result.reject_code))
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
