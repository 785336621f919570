"""Embedding a manifest dataset with the camera node's own embedder, cached on disk.

The cache holds embeddings of DATASET images (consented research data), keyed by the image's content hash,
the recogniser's model id and the detection settings, so a rerun only embeds what changed. It never sees
a passer-by: the live matcher does not use this module.

A failure to acquire (unreadable image, no face, face rejected by the quality gate) is kept as a reason:
failure-to-acquire rates per demographic group are themselves a bias measure (ISO/IEC 19795-1).
"""

from __future__ import annotations

import hashlib
import logging
import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from evaluation.datasets import EmbeddedSet, ManifestDataset, Sample
from lfr.adapters.embedder import DetectedFace, InsightFaceEmbedder

logger = logging.getLogger(__name__)

NO_FACE = "no_face"
UNREADABLE = "unreadable"


# A quality gate sees the detected face and its aligned crop and returns why it must not be used, or None.
# Same shape as the camera node's gate (camera branch: lfr.domain.quality.gate over
# lfr.adapters.face_quality.measure(face, aligned)), so once merged both reject faces alike:
#   lambda face, aligned: (r := gate(measure(face, aligned), policy)) and str(r)
QualityGate = Callable[[DetectedFace, np.ndarray], str | None]


def accept_all(face: DetectedFace, aligned_bgr: np.ndarray) -> str | None:
    return None


def choose_face(faces: Sequence[DetectedFace], image_shape: tuple[int, ...]) -> DetectedFace | None:
    """The subject of a pre-cropped dataset image: the largest face, penalised by its distance from the
    centre (insightface's own rule for max_num), so a larger background face does not win."""
    if not faces:
        return None
    centre = np.array([image_shape[1] / 2, image_shape[0] / 2])

    def merit(face: DetectedFace) -> float:
        x1, y1, x2, y2 = (float(v) for v in face.bbox[:4])
        offset = np.array([(x1 + x2) / 2, (y1 + y2) / 2]) - centre
        return (x2 - x1) * (y2 - y1) - 2.0 * float(offset @ offset)

    return max(faces, key=merit)


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class EmbeddingCache:
    """SQLite (stdlib): one file, safe to share between runs, cheap lookups by key."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / "embeddings.sqlite"
        self._db = sqlite3.connect(self.path)
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS embedding (content_sha256 TEXT, pipeline TEXT, failure TEXT, "
            "vector BLOB, PRIMARY KEY (content_sha256, pipeline))"
        )
        self._db.commit()

    def get_many(self, pipeline: str, digests: Sequence[str]) -> dict[str, tuple[str, np.ndarray | None]]:
        found: dict[str, tuple[str, np.ndarray | None]] = {}
        unique = list(dict.fromkeys(digests))
        for start in range(0, len(unique), 500):
            chunk = unique[start : start + 500]
            marks = ",".join("?" * len(chunk))
            rows = self._db.execute(
                f"SELECT content_sha256, failure, vector FROM embedding WHERE pipeline = ? "
                f"AND content_sha256 IN ({marks})",
                [pipeline, *chunk],
            )
            for digest, failure, blob in rows:
                found[digest] = (
                    failure,
                    None if blob is None else np.frombuffer(blob, dtype=np.float32).copy(),
                )
        return found

    def put_many(self, pipeline: str, entries: Sequence[tuple[str, str, np.ndarray | None]]) -> None:
        self._db.executemany(
            "INSERT OR REPLACE INTO embedding VALUES (?, ?, ?, ?)",
            [
                (digest, pipeline, failure, None if v is None else np.asarray(v, np.float32).tobytes())
                for digest, failure, v in entries
            ],
        )
        self._db.commit()

    def close(self) -> None:
        self._db.close()


@dataclass(frozen=True, slots=True)
class ExtractionSettings:
    det_size: int
    det_threshold: float
    gate_name: str = "none"
    batch_size: int = 64

    def pipeline_id(self, model_id: str) -> str:
        return f"{model_id}|det{self.det_size}@{self.det_threshold:g}|gate:{self.gate_name}|central-largest"


def embed_manifest(
    dataset: ManifestDataset,
    embedder: InsightFaceEmbedder,
    settings: ExtractionSettings,
    cache: EmbeddingCache,
    gate: QualityGate = accept_all,
    progress: Callable[[int, int], None] | None = None,
) -> EmbeddedSet:
    import cv2

    samples = list(dataset.samples())
    pipeline = settings.pipeline_id(embedder.model_id)
    digests = [file_sha256(dataset.image_path(s)) for s in samples]
    cached = cache.get_many(pipeline, digests)
    todo = [i for i, d in enumerate(digests) if d not in cached]
    logger.info("%s: %d images, %d cached, %d to embed", dataset.name, len(samples), len(cached), len(todo))
    started = time.monotonic()
    for start in range(0, len(todo), settings.batch_size):
        batch = todo[start : start + settings.batch_size]
        aligned: list[np.ndarray] = []
        aligned_digests: list[str] = []
        entries: list[tuple[str, str, np.ndarray | None]] = []
        for i in batch:
            image = cv2.imread(str(dataset.image_path(samples[i])), cv2.IMREAD_COLOR)
            if image is None:
                entries.append((digests[i], UNREADABLE, None))
                continue
            face = choose_face(embedder.detect(image), image.shape)
            if face is None:
                entries.append((digests[i], NO_FACE, None))
                continue
            crop = embedder.align(image, face)
            reason = gate(face, crop)
            if reason is not None:
                entries.append((digests[i], f"quality:{reason}", None))
                continue
            aligned.append(crop)
            aligned_digests.append(digests[i])
        vectors = embedder.embed_aligned(aligned)
        entries += [(d, "", vectors[j]) for j, d in enumerate(aligned_digests)]
        cache.put_many(pipeline, entries)
        for digest, failure, vector in entries:
            cached[digest] = (failure, vector)
        done = start + len(batch)
        if progress is not None:
            progress(done, len(todo))
        rate = done / max(time.monotonic() - started, 1e-9)
        logger.info("%s: embedded %d/%d (%.1f images/s)", dataset.name, done, len(todo), rate)
    return _assemble(dataset, embedder, samples, digests, cached)


def _assemble(
    dataset: ManifestDataset,
    embedder: InsightFaceEmbedder,
    samples: list[Sample],
    digests: list[str],
    cached: dict[str, tuple[str, np.ndarray | None]],
) -> EmbeddedSet:
    vectors = np.zeros((len(samples), embedder.dimension), dtype=np.float32)
    reasons = []
    for i, digest in enumerate(digests):
        failure, vector = cached[digest]
        reasons.append(failure)
        if vector is not None:
            vectors[i] = vector
    acquired = np.array([r == "" for r in reasons], dtype=bool)
    # The manifest's fingerprint plus every image's bytes: a swapped image changes the fingerprint.
    images = hashlib.sha256("".join(digests).encode()).hexdigest()[:16]
    return EmbeddedSet(
        dataset=dataset.name,
        fingerprint=f"{dataset.fingerprint()}:images:{images}",
        model_id=embedder.model_id,
        samples=tuple(samples),
        vectors=vectors,
        acquired=acquired,
        failure_reasons=tuple(reasons),
    )
