"""Streams observations to the matcher's CameraIngest.Stream and counts its answers.

The node must keep working when the matcher is away: observations wait in a bounded in-memory buffer that
drops the oldest (counted) when full, the stream reconnects with capped exponential backoff and jitter, and
at most `max_in_flight` batches are unanswered at a time (so HTTP/2 never buffers thousands). Batches not
answered when a stream breaks go back to the front of the buffer and are sent again under the same seq and
node session (a random id per process), so the matcher answers them from memory, with the same alert,
instead of matching them twice. Every buffer is wiped once answered, dropped or at shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import random
import secrets
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import grpc
import numpy as np
from google.protobuf.timestamp_pb2 import Timestamp

from lfr.adapters.camera.metrics import CameraMetrics
from lfr.adapters.grpc.channels import ChannelSecurity, aio_channel, warn_if_plaintext
from lfr.domain.embedding import wipe
from lfr.domain.observation import FaceQuality
from lfr.v1 import ingest_pb2, ingest_pb2_grpc

logger = logging.getLogger(__name__)

_OUTCOME_NAMES = {
    ingest_pb2.OUTCOME_ALERT: "alert",
    ingest_pb2.OUTCOME_NO_MATCH: "no_match",
    ingest_pb2.OUTCOME_NOT_ARMED: "not_armed",
    ingest_pb2.OUTCOME_REJECTED: "rejected",
}


@dataclass(slots=True)
class Outgoing:
    """One face waiting to be sent; mutable so its biometric buffers can be wiped in place."""

    track_id: str
    captured_at: datetime
    vector: np.ndarray
    crop_jpeg: bytearray
    quality: FaceQuality
    seq: int = 0
    hit: bool = False  # the matcher answered store_error: a match it could not store yet

    def wipe(self) -> None:
        wipe(self.vector)
        wipe(self.crop_jpeg)


@dataclass(frozen=True, slots=True)
class StreamPolicy:
    buffer_max: int = 256
    batch_max: int = 16
    max_in_flight: int = 4  # unanswered batches
    backoff_initial_s: float = 0.2
    backoff_max_s: float = 10.0
    backoff_multiplier: float = 2.0
    jitter: float = 0.2  # +- this fraction of each delay, so a fleet does not reconnect in lockstep
    hits_max: int = 64  # unacknowledged hits kept for re-sending; the oldest is dropped (counted) beyond
    retry_hits_every_s: float = 2.0
    # A message's embeddings in one ObservationBatch.embeddings_f32le (matchers since issue 13 take them in
    # one copy); False: one embedding_f32le per observation, for a matcher older than that.
    packed_embeddings: bool = True


def backoff_delay(attempt: int, policy: StreamPolicy, rng: random.Random) -> float:
    base = min(policy.backoff_max_s, policy.backoff_initial_s * policy.backoff_multiplier**attempt)
    return max(0.0, min(policy.backoff_max_s, base * (1 + policy.jitter * (2 * rng.random() - 1))))


@dataclass(slots=True)
class _Batch:
    items: list[Outgoing] = field(default_factory=list)


class MatcherClient:
    """Use from one event loop: `submit` queues, `run` streams until `stop` is called."""

    def __init__(
        self,
        address: str,
        token: str,
        camera_id: str,
        model_id: str,
        dimension: int,
        metrics: CameraMetrics,
        policy: StreamPolicy | None = None,
        security: ChannelSecurity | None = None,
        on_result: Callable[[ingest_pb2.ObservationResult], None] | None = None,
        rng: random.Random | None = None,
        node_session: str | None = None,
        on_sent: Callable[[ingest_pb2.Observation], None] | None = None,
        retry_hits_every_s: float | None = None,
    ) -> None:
        self._address = address
        self._metadata = (("authorization", f"Bearer {token}"),)
        self._camera_id = camera_id
        self._model_id = model_id
        self._dimension = dimension
        self._metrics = metrics
        self._policy = policy or StreamPolicy()
        if retry_hits_every_s is not None:
            self._policy = dataclasses.replace(self._policy, retry_hits_every_s=retry_hits_every_s)
        # Read once: an unusable certificate file stops the node at start, not at its next reconnect.
        self._credentials = (security or ChannelSecurity()).credentials()
        warn_if_plaintext(address, self._credentials)
        self._on_result = on_result
        self._on_sent = on_sent  # sees each observation as encoded for the wire (the demo's deletion check)
        self._rng = rng or random.Random()
        # Stable across reconnects, new with each process (whose seqs restart at 1).
        self.node_session = node_session or secrets.token_hex(16)
        self._buffer: deque[Outgoing] = deque()
        self._in_flight: deque[_Batch] = deque()
        # Hits the matcher could not store (store_error): kept in memory only, re-sent every
        # retry_hits_every_s under the same seq until the matcher answers them for good (an alert; or
        # not_armed once the window has ended, when they are wiped), bounded by hits_max.
        self._hits: deque[Outgoing] = deque()
        self._next_hit_retry = 0.0
        self._next_seq = 1
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self.connected = False
        self._answers_read = 0
        # Ended tracks' ids, sent with the next message so the matcher forgets them; bounded (an id lost
        # here only means the matcher forgets by its own timer instead).
        self._ended_tracks: deque[str] = deque(maxlen=1024)
        self.attempts = 0
        self.dropped = 0

    @property
    def pending(self) -> int:
        return len(self._buffer) + sum(len(b.items) for b in self._in_flight)

    @property
    def unacknowledged_hits(self) -> int:
        return len(self._hits) + sum(1 for b in self._in_flight for item in b.items if item.hit)

    def tracks_ended(self, track_ids: list[str]) -> None:
        """Tells the matcher, with the next message, that these tracks ended (after their last faces)."""
        self._ended_tracks.extend(track_ids)

    def submit(self, item: Outgoing) -> None:
        item.seq = self._next_seq
        self._next_seq += 1
        self._buffer.append(item)
        self._trim()
        self._metrics.buffered.set(len(self._buffer))
        self._wake.set()

    async def drain(self, timeout: float) -> bool:
        """Wait until everything submitted was answered; False if `timeout` passed first."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.pending and loop.time() < deadline:
            await asyncio.sleep(0.01)
        return not self.pending

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()

    def wipe_all(self) -> None:
        for batch in self._in_flight:
            for item in batch.items:
                item.wipe()
        self._in_flight.clear()
        while self._buffer:
            self._buffer.popleft().wipe()
        while self._hits:
            self._hits.popleft().wipe()
        self._metrics.buffered.set(0)
        self._metrics.hits_unacknowledged.set(0)

    async def run(self) -> None:
        attempt = 0
        while not self._stopping.is_set():
            self.attempts += 1
            answered = await self._stream_once()
            self._set_connected(False)
            self._requeue_in_flight()
            if self._stopping.is_set():
                break
            attempt = 0 if answered else attempt + 1
            self._metrics.reconnects.inc()
            delay = backoff_delay(attempt, self._policy, self._rng)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay)

    async def _stream_once(self) -> bool:
        """One stream's life. True if the matcher answered at least once (the backoff then restarts)."""
        answered = False
        self._answers_read = 0  # per stream: the matcher cuts off a stream whose answers go unread
        writer: asyncio.Task[None] | None = None
        async with aio_channel(self._address, self._credentials) as channel:
            call = ingest_pb2_grpc.CameraIngestStub(channel).Stream(metadata=self._metadata)
            try:
                await call.wait_for_connection()
                self._set_connected(True)
                logger.info("camera %s streaming to %s", self._camera_id, self._address)
                writer = asyncio.create_task(self._write(call))
                async for results in call:
                    answered = True
                    self._answers_read += 1
                    self._acknowledge(results)
                    self._wake.set()
            except grpc.aio.AioRpcError as exc:
                level = (
                    logging.ERROR
                    if exc.code() in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED)
                    else logging.WARNING
                )
                logger.log(
                    level, "matcher stream to %s failed: %s %s", self._address, exc.code().name, exc.details()
                )
            except asyncio.CancelledError:
                call.cancel()
                raise
            finally:
                if writer is not None:
                    writer.cancel()
                    with contextlib.suppress(asyncio.CancelledError, grpc.aio.AioRpcError):
                        await writer
        return answered

    async def _write(self, call: grpc.aio.StreamStreamCall) -> None:  # type: ignore[type-arg]
        while True:
            if self._stopping.is_set() and not self._buffer:
                # Let the matcher answer what is in flight, then close our side.
                while self._in_flight:
                    self._wake.clear()
                    await self._wake.wait()
                await call.done_writing()
                return
            loop = asyncio.get_running_loop()
            hits_due = bool(self._hits) and loop.time() >= self._next_hit_retry
            full = len(self._in_flight) >= self._policy.max_in_flight
            if full or (not self._buffer and not hits_due):
                self._wake.clear()
                # Full: an answer wakes us. Otherwise wake for new faces, or when kept hits are due.
                wait = None if full or not self._hits else max(0.0, self._next_hit_retry - loop.time())
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), wait)
                continue
            if hits_due:
                source = self._hits
                self._next_hit_retry = loop.time() + self._policy.retry_hits_every_s
            else:
                source = self._buffer
            batch = _Batch([source.popleft() for _ in range(min(self._policy.batch_max, len(source)))])
            self._in_flight.append(batch)
            self._metrics.hits_unacknowledged.set(self.unacknowledged_hits)  # in flight still counts
            self._metrics.buffered.set(len(self._buffer))
            message = self._encode(batch)
            with self._metrics.stage_seconds["send"].time():
                await call.write(message)
            self._metrics.observations_sent.inc(len(batch.items))

    def _encode(self, batch: _Batch) -> ingest_pb2.ObservationBatch:
        message = ingest_pb2.ObservationBatch(node_session=self.node_session, answers_read=self._answers_read)
        if not self._buffer:  # this message carries the last faces queued: tracks ended so far may go
            message.ended_track_ids.extend(self._ended_tracks)
            self._ended_tracks.clear()
        packed = self._policy.packed_embeddings
        for item in batch.items:
            captured = Timestamp()
            captured.FromDatetime(item.captured_at)
            q = item.quality
            embedding = item.vector.astype("<f4", copy=False).tobytes()
            message.observations.append(
                ingest_pb2.Observation(
                    seq=item.seq,
                    camera_id=self._camera_id,
                    captured_at=captured,
                    track_id=item.track_id,
                    model_id=self._model_id,
                    dimension=self._dimension,
                    embedding_f32le=b"" if packed else embedding,
                    quality=ingest_pb2.FaceQuality(
                        detector_score=q.detector_score,
                        face_width_px=q.face_width_px,
                        face_height_px=q.face_height_px,
                        interocular_px=q.interocular_px,
                        sharpness=q.sharpness,
                        yaw_deg=q.yaw_deg,
                        pitch_deg=q.pitch_deg,
                    ),
                    crop_jpeg=bytes(item.crop_jpeg),
                )
            )
            if self._on_sent is not None:
                sent = message.observations[-1]
                if packed:  # shown with its embedding, as the wire carries it (in the batch)
                    sent = ingest_pb2.Observation()
                    sent.CopyFrom(message.observations[-1])
                    sent.embedding_f32le = embedding
                self._on_sent(sent)
        if packed:
            message.embeddings_f32le = b"".join(
                item.vector.astype("<f4", copy=False).tobytes() for item in batch.items
            )
        return message

    def _acknowledge(self, results: ingest_pb2.ObservationResults) -> None:
        if not self._in_flight:
            logger.warning("matcher answered a batch that was not sent; ignoring it")
            return
        batch = self._in_flight.popleft()
        sent = {item.seq: item for item in batch.items}
        kept: set[int] = set()
        for result in results.results:
            name = _OUTCOME_NAMES.get(result.outcome)
            item = sent.get(result.seq)
            if item is None or name is None:
                logger.warning(
                    "matcher answered seq %d with outcome %d: not expected", result.seq, result.outcome
                )
                continue
            self._metrics.results[name].inc()
            if name == "rejected":
                logger.warning(
                    "matcher rejected observation %d: %s (%s)", result.seq, result.reject_code, result.reason
                )
            if self._keeps(item, result):
                kept.add(item.seq)
            if self._on_result is not None:
                self._on_result(result)
        for item in batch.items:
            if item.seq not in kept:
                item.wipe()
        self._metrics.hits_unacknowledged.set(self.unacknowledged_hits)

    def _keeps(self, item: Outgoing, result: ingest_pb2.ObservationResult) -> bool:
        """Keeps a hit the matcher could not store (store_error), and keeps re-sending it while matching is
        suspended (store_unavailable). Any other answer is final: an alert; or not_armed once the window
        has ended, when the hit is wiped with everything else."""
        if result.outcome != ingest_pb2.OUTCOME_REJECTED:
            return False
        if result.reject_code == "store_error" or (item.hit and result.reject_code == "store_unavailable"):
            item.hit = True
            self._hits.append(item)
            while len(self._hits) > self._policy.hits_max:
                self._hits.popleft().wipe()
                self._metrics.hits_dropped.inc()
                logger.error("too many unacknowledged hits: the oldest was dropped")
            return any(kept is item for kept in self._hits)
        return False

    def _requeue_in_flight(self) -> None:
        while self._in_flight:
            batch = self._in_flight.pop()
            self._hits.extendleft(reversed([item for item in batch.items if item.hit]))
            self._buffer.extendleft(reversed([item for item in batch.items if not item.hit]))
        self._metrics.hits_unacknowledged.set(self.unacknowledged_hits)
        self._trim()
        self._metrics.buffered.set(len(self._buffer))

    def _trim(self) -> None:
        while len(self._buffer) > self._policy.buffer_max:
            self._buffer.popleft().wipe()
            self.dropped += 1
            self._metrics.observations_dropped.inc()

    def _set_connected(self, connected: bool) -> None:
        self.connected = connected
        self._metrics.connected.set(1 if connected else 0)
