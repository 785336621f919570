"""The camera node's pipeline: frame -> detect -> gate -> track -> embed the due faces -> stream.

Two stages overlap on two cores: while stage two embeds the faces released by frame N, stage one detects
frame N+1. Only faces the tracker releases are embedded; every other face costs a detection share and an
alignment (needed to measure sharpness) and nothing more.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import datetime

import numpy as np

from lfr.adapters.camera.capture import Capture, Frame, LatestFrameSlot
from lfr.adapters.camera.client import MatcherClient, Outgoing
from lfr.adapters.camera.crops import crop_pixels, encode_jpeg
from lfr.adapters.camera.metrics import CameraMetrics
from lfr.adapters.camera.tracker import Tracker, TrackerPolicy
from lfr.adapters.embedder import DetectedFace, FaceEmbedder
from lfr.adapters.face_quality import measure
from lfr.domain.embedding import wipe
from lfr.domain.errors import InvalidCrop
from lfr.domain.observation import FaceQuality
from lfr.domain.quality import QualityPolicy, gate, quality_score

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class CropPolicy:
    max_side_px: int = 144
    jpeg_quality: int = 85
    max_bytes: int = 60 * 1024  # under the matcher's default max_crop_bytes of 64 KiB


@dataclass(slots=True)
class FaceCandidate:
    """A gated face a track holds until it is due: what is needed to embed and show it, nothing more."""

    aligned: np.ndarray
    crop: np.ndarray
    quality: FaceQuality
    captured_at: datetime

    def wipe(self) -> None:
        wipe(self.aligned)
        wipe(self.crop)


def _discard(candidate: FaceCandidate) -> None:
    candidate.wipe()


class FacePipeline:
    """Synchronous, CPU-bound; the node runs its two stages on worker threads. Not thread-safe per stage:
    one thread at a time may call `select` and one may call `embed`."""

    def __init__(
        self,
        embedder: FaceEmbedder,
        quality: QualityPolicy,
        tracking: TrackerPolicy,
        crops: CropPolicy,
        metrics: CameraMetrics,
        max_faces: int = 0,
    ) -> None:
        self._embedder = embedder
        self._quality = quality
        self._crops = crops
        self._metrics = metrics
        self._max_faces = max_faces
        self.tracker: Tracker[FaceCandidate] = Tracker(tracking, _discard)

    def select(self, frame: Frame) -> list[tuple[str, FaceCandidate]]:
        """Stage one: detect, gate and track; returns the faces due to be embedded now."""
        started = time.perf_counter()
        faces = self._embedder.detect(frame.image, self._max_faces)
        detected = time.perf_counter()
        self._metrics.stage_seconds["detect"].observe(detected - started)
        self._metrics.frames_processed.inc()
        self._metrics.faces_detected.inc(len(faces))
        if faces:
            track_ids = self.tracker.assign(np.stack([f.bbox for f in faces]), frame.monotonic)
            for face, track_id in zip(faces, track_ids, strict=True):
                self._consider(frame, face, track_id)
        due = self.tracker.due(frame.monotonic)
        self._metrics.stage_seconds["align"].observe(time.perf_counter() - detected)
        return due

    def flush(self) -> list[tuple[str, FaceCandidate]]:
        """Every held face, as if all tracks had ended (end of the source)."""
        return self.tracker.due(float("inf"))

    def embed(self, due: list[tuple[str, FaceCandidate]]) -> list[Outgoing]:
        """Stage two: one batched recogniser run over the due faces, then their JPEG crops."""
        if not due:
            return []
        started = time.perf_counter()
        try:
            vectors = self._embedder.embed_aligned([candidate.aligned for _, candidate in due])
            outgoing: list[Outgoing] = []
            for (track_id, candidate), vector in zip(due, vectors, strict=True):
                try:
                    jpeg = encode_jpeg(candidate.crop, self._crops.jpeg_quality, self._crops.max_bytes)
                except InvalidCrop as exc:
                    logger.warning("face crop not sent: %s", exc)
                    wipe(vector)
                    continue
                outgoing.append(Outgoing(track_id, candidate.captured_at, vector, jpeg, candidate.quality))
            self._metrics.faces_embedded.inc(len(due))
        finally:
            for _, candidate in due:
                candidate.wipe()
        self._metrics.stage_seconds["embed"].observe(time.perf_counter() - started)
        return outgoing

    def close(self) -> None:
        self.tracker.clear()

    def _consider(self, frame: Frame, face: DetectedFace, track_id: str) -> None:
        aligned = self._embedder.align(frame.image, face)
        quality = measure(face, aligned)
        reason = gate(quality, self._quality)
        if reason is not None:
            self._metrics.faces_gated[reason].inc()
            wipe(aligned)
            return
        try:
            crop = crop_pixels(frame.image, face.bbox, self._crops.max_side_px)
        except InvalidCrop:
            wipe(aligned)
            return
        self.tracker.offer(
            track_id, quality_score(quality), FaceCandidate(aligned, crop, quality, frame.captured_at)
        )


@dataclass(frozen=True, slots=True)
class NodeSummary:
    frames: int
    dropped_frames: int
    sent: int
    unanswered: int


class CameraNode:
    def __init__(
        self,
        capture: Capture,
        slot: LatestFrameSlot,
        pipeline: FacePipeline,
        client: MatcherClient,
        metrics: CameraMetrics,
        drain_timeout_s: float = 10.0,
    ) -> None:
        self._capture = capture
        self._slot = slot
        self._pipeline = pipeline
        self._client = client
        self._metrics = metrics
        self._drain_timeout_s = drain_timeout_s
        self._stop = asyncio.Event()
        self.submitted = 0

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> NodeSummary:
        """Until the source ends or `stop()`; then drains what it can and wipes every buffer."""
        streaming = asyncio.create_task(self._client.run())
        self._capture.start()
        embedding: asyncio.Task[list[Outgoing]] | None = None
        ended: list[str] = []
        try:
            while not self._stop.is_set():
                frame = await asyncio.to_thread(self._slot.take, 0.2)
                if frame is None:
                    if self._slot.ended:
                        break
                    continue
                try:
                    due = await asyncio.to_thread(self._pipeline.select, frame)
                finally:
                    frame.wipe()
                # Wait for the previous frame's embeddings only now, so they overlapped this detection.
                if embedding is not None:
                    self._submit(await embedding)
                    self._client.tracks_ended(ended)
                ended = self._pipeline.tracker.take_ended()  # handed over after this frame's faces
                embedding = asyncio.create_task(asyncio.to_thread(self._pipeline.embed, due))
            if embedding is not None:
                self._submit(await embedding)
                self._client.tracks_ended(ended)
                embedding = None
            if not self._stop.is_set():
                self._submit(await asyncio.to_thread(self._pipeline.embed, self._pipeline.flush()))
                self._client.tracks_ended(self._pipeline.tracker.take_ended())
                await self._client.drain(self._drain_timeout_s)
            if self._capture.error is not None:
                logger.error("frame source failed: %s", self._capture.error)
        finally:
            if embedding is not None:
                for item in await embedding:
                    item.wipe()
            self._capture.stop()
            self._client.stop()
            try:
                await asyncio.wait_for(streaming, self._drain_timeout_s)
            except TimeoutError:
                logger.warning("matcher stream did not close in time")
            self._pipeline.close()
            unanswered = self._client.pending
            self._client.wipe_all()
            self._slot.close()
        return NodeSummary(self._capture.frames, self._slot.dropped, self.submitted, unanswered)

    def _submit(self, items: list[Outgoing]) -> None:
        for item in items:
            self._client.submit(item)
        self.submitted += len(items)
