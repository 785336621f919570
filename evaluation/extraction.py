"""Embedding a manifest dataset with the camera node's own embedder and quality gate, cached on disk.

The cache holds, per DATASET image (consented research data), what detection found, the face's quality
measurements (what the camera node's gate judges) and its embedding, keyed by the image's content hash,
the recogniser's model id and the detection settings: not by the gate. Every detected face is measured and
embedded once; the gate is applied when the cache is read, so a changed gate threshold never re-embeds.
It never sees a passer-by: the live matcher does not use this module.

A failure to acquire (unreadable image, no face, face rejected by the quality gate) is kept as a reason:
failure-to-acquire rates per demographic group are themselves a bias measure (ISO/IEC 19795-1).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from evaluation.datasets import EmbeddedSet, ManifestDataset, Sample
from lfr.adapters.embedder import DetectedFace
from lfr.adapters.face_quality import MEASURES_VERSION
from lfr.domain.observation import FaceQuality
from lfr.domain.quality import QualityPolicy, gate

logger = logging.getLogger(__name__)

NO_FACE = "no_face"
UNREADABLE = "unreadable"
MISSING = "missing"  # the manifest names a file that is not there
TOO_SMALL = "too_small"  # shorter side below MIN_IMAGE_SIDE: no face the camera gate could accept
MIN_IMAGE_SIDE = 32
QUALITY = "quality:"  # prefix of a gate rejection's failure reason: quality:blurry, quality:yaw, ...
CACHE_VERSION = 2  # 1: embeddings only, the gate's name in the key; 2: measurements too, gate-free key


class FaceEmbedder(Protocol):
    """What extraction needs of `lfr.adapters.embedder.InsightFaceEmbedder` (the camera node's)."""

    model_id: str
    dimension: int

    def detect(self, image_bgr: np.ndarray, max_faces: int = 0) -> list[DetectedFace]: ...
    def align(self, image_bgr: np.ndarray, face: DetectedFace) -> np.ndarray: ...
    def embed_aligned(self, aligned_faces: list[np.ndarray]) -> np.ndarray: ...


@dataclass(frozen=True, slots=True)
class FaceRecord:
    """What the cache knows of one image: no face (failure), or the chosen face's quality and embedding."""

    failure: str  # "" when a face was found
    quality: FaceQuality | None = None
    vector: np.ndarray | None = None

    @property
    def complete(self) -> bool:
        return bool(self.failure) or (self.quality is not None and self.vector is not None)

    def reason(self, policy: QualityPolicy | None) -> str:
        """Why this image is not acquired under `policy` ("" when it is)."""
        if self.failure or policy is None:
            return self.failure
        assert self.quality is not None
        rejected = gate(self.quality, policy)
        return "" if rejected is None else f"{QUALITY}{rejected}"


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


def image_traits(image: np.ndarray | None) -> dict[str, str]:
    """What an image shows beyond its labels: colour or greyscale (a desaturated copy stores three equal
    channels; JPEG leaves a little chroma noise), and a band of its shorter side."""
    if image is None:
        return {"colour": "unreadable", "image_size": "unreadable"}
    if image.ndim == 2 or image.shape[2] == 1:
        colour = "greyscale"
    else:
        channels = image[..., :3].astype(np.int16)
        spread = channels.max(axis=2) - channels.min(axis=2)
        colour = "greyscale" if float((spread > 6).mean()) < 0.01 else "colour"
    side = min(image.shape[:2])
    bands = ((64, "<64 px"), (128, "64-127 px"), (256, "128-255 px"))
    size = next((label for limit, label in bands if side < limit), "256+ px")
    return {"colour": colour, "image_size": size}


def _digest_or_failure(path: Path) -> tuple[str, str]:
    """(content digest, "") or (a placeholder unique to the path, failure reason) when it cannot be read."""
    try:
        return file_sha256(path), ""
    except FileNotFoundError:
        return f"{MISSING}:{path}", MISSING
    except OSError:
        return f"{UNREADABLE}:{path}", UNREADABLE


class EmbeddingCache:
    """SQLite (stdlib): one file, safe to share between runs, cheap lookups by key.

    Opening a version-1 cache migrates it in place: its ungated rows (`gate:none` in the key) keep their
    embeddings and only lack measurements, which the next run adds without re-embedding; its gated rows
    never embedded the faces they rejected, so they are dropped and redone.
    """

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / "embeddings.sqlite"
        self._db = sqlite3.connect(self.path)
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS embedding (content_sha256 TEXT, pipeline TEXT, failure TEXT, "
            "vector BLOB, quality TEXT, PRIMARY KEY (content_sha256, pipeline))"
        )
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS image_traits (content_sha256 TEXT PRIMARY KEY, traits TEXT NOT NULL)"
        )
        self._migrate()
        self._db.commit()

    def get_traits(self, digests: Sequence[str]) -> dict[str, dict[str, str]]:
        found: dict[str, dict[str, str]] = {}
        unique = list(dict.fromkeys(digests))
        for start in range(0, len(unique), 500):
            chunk = unique[start : start + 500]
            marks = ",".join("?" * len(chunk))
            rows = self._db.execute(
                f"SELECT content_sha256, traits FROM image_traits WHERE content_sha256 IN ({marks})", chunk
            )
            found.update({digest: json.loads(traits) for digest, traits in rows})
        return found

    def put_traits(self, entries: Sequence[tuple[str, dict[str, str]]]) -> None:
        self._db.executemany(
            "INSERT OR REPLACE INTO image_traits (content_sha256, traits) VALUES (?, ?)",
            [(digest, json.dumps(traits, sort_keys=True)) for digest, traits in entries],
        )
        self._db.commit()

    def _migrate(self) -> None:
        (version,) = self._db.execute("PRAGMA user_version").fetchone()
        if version >= CACHE_VERSION:
            return
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(embedding)")}
        if "quality" not in columns:
            self._db.execute("ALTER TABLE embedding ADD COLUMN quality TEXT")
        kept = self._db.execute(
            "UPDATE OR IGNORE embedding SET pipeline = replace(pipeline, '|gate:none|', '|') "
            "WHERE pipeline LIKE '%|gate:none|%'"
        ).rowcount
        dropped = self._db.execute("DELETE FROM embedding WHERE pipeline LIKE '%|gate:%'").rowcount
        self._db.execute(f"PRAGMA user_version = {CACHE_VERSION}")
        if kept or dropped:
            logger.info("cache migrated to v%d: %d embeddings kept, %d gated rows dropped", CACHE_VERSION,
                        kept, dropped)  # fmt: skip

    def get_many(self, pipeline: str, digests: Sequence[str]) -> dict[str, FaceRecord]:
        found: dict[str, FaceRecord] = {}
        unique = list(dict.fromkeys(digests))
        for start in range(0, len(unique), 500):
            chunk = unique[start : start + 500]
            marks = ",".join("?" * len(chunk))
            rows = self._db.execute(
                f"SELECT content_sha256, failure, vector, quality FROM embedding WHERE pipeline = ? "
                f"AND content_sha256 IN ({marks})",
                [pipeline, *chunk],
            )
            for digest, failure, blob, quality in rows:
                found[digest] = FaceRecord(
                    failure,
                    _current_measures(quality),
                    None if blob is None else np.frombuffer(blob, dtype=np.float32).copy(),
                )
        return found

    def put_many(self, pipeline: str, entries: Sequence[tuple[str, FaceRecord]]) -> None:
        self._db.executemany(
            "INSERT OR REPLACE INTO embedding (content_sha256, pipeline, failure, vector, quality) "
            "VALUES (?, ?, ?, ?, ?)",
            [
                (
                    digest,
                    pipeline,
                    r.failure,
                    None if r.vector is None else np.asarray(r.vector, np.float32).tobytes(),
                    None
                    if r.quality is None
                    else json.dumps({**dataclasses.asdict(r.quality), "measures": MEASURES_VERSION}),
                )
                for digest, r in entries
            ],
        )
        self._db.commit()

    def close(self) -> None:
        self._db.close()


def _current_measures(stored: str | None) -> FaceQuality | None:
    """Stored measurements, or None (measure again, keep the embedding) when an older version of
    `lfr.adapters.face_quality` took them: the gate must judge what the camera node measures now."""
    if stored is None:
        return None
    fields = json.loads(stored)
    if fields.pop("measures", 1) != MEASURES_VERSION:
        return None
    return FaceQuality(**fields)


@dataclass(frozen=True, slots=True)
class ExtractionSettings:
    det_size: int
    det_threshold: float
    batch_size: int = 64

    def pipeline_id(self, model_id: str) -> str:
        return f"{model_id}|det{self.det_size}@{self.det_threshold:g}|central-largest"


def embed_manifest(
    dataset: ManifestDataset,
    embedder: FaceEmbedder,
    settings: ExtractionSettings,
    cache: EmbeddingCache,
    policy: QualityPolicy | None = None,
    progress: Callable[[int, int], None] | None = None,
    on_read: Callable[[int, int], None] | None = None,
) -> EmbeddedSet:
    """Every image's face found, measured and embedded (what the cache lacks), then gated by `policy`
    (None: no gate) exactly as the camera node gates: `gate(measure(face, aligned), policy)`."""
    import cv2

    from lfr.adapters.face_quality import measure

    samples = list(dataset.samples())
    pipeline = settings.pipeline_id(embedder.model_id)
    read = []
    for position, sample in enumerate(samples, start=1):
        read.append(_digest_or_failure(dataset.image_path(sample)))
        if on_read is not None and (position % 256 == 0 or position == len(samples)):
            on_read(position, len(samples))
    digests = [d for d, _ in read]
    cached = cache.get_many(pipeline, digests)
    cached.update({d: FaceRecord(failure) for d, failure in read if failure})
    path_of = {d: dataset.image_path(s) for s, (d, failure) in zip(samples, read, strict=True) if not failure}
    todo = [d for d in path_of if d not in cached or not cached[d].complete]
    unmeasured = sum(1 for d in todo if d in cached)
    logger.info("%s: %d images, %d cached, %d to do (%d only to measure)", dataset.name, len(samples),
                len(cached) - unmeasured, len(todo), unmeasured)  # fmt: skip
    started = time.monotonic()
    for start in range(0, len(todo), settings.batch_size):
        batch = todo[start : start + settings.batch_size]
        entries: list[tuple[str, FaceRecord]] = []
        to_embed: list[tuple[str, FaceQuality, np.ndarray]] = []
        for digest in batch:
            image = cv2.imread(str(path_of[digest]), cv2.IMREAD_COLOR)
            if image is None:
                entries.append((digest, FaceRecord(UNREADABLE)))
                continue
            if min(image.shape[:2]) < MIN_IMAGE_SIDE:
                entries.append((digest, FaceRecord(TOO_SMALL)))
                continue
            face = choose_face(embedder.detect(image), image.shape)
            if face is None:
                entries.append((digest, FaceRecord(NO_FACE)))
                continue
            crop = embedder.align(image, face)
            quality = measure(face, crop)
            known = cached.get(digest)
            if known is not None and known.vector is not None:
                # Detection is deterministic: the face measured now is the one embedded before.
                entries.append((digest, FaceRecord("", quality, known.vector)))
            else:
                to_embed.append((digest, quality, crop))
        if to_embed:
            vectors = embedder.embed_aligned([crop for _, _, crop in to_embed])
            entries += [(d, FaceRecord("", q, vectors[j])) for j, (d, q, _) in enumerate(to_embed)]
        cache.put_many(pipeline, entries)
        cached.update(entries)
        done = start + len(batch)
        if progress is not None:
            progress(done, len(todo))
        rate = done / max(time.monotonic() - started, 1e-9)
        logger.info("%s: %d/%d done (%.1f images/s)", dataset.name, done, len(todo), rate)
    traits = _traits(cache, path_of)
    embedded = _assemble(dataset, embedder.model_id, embedder.dimension, samples, digests, cached, policy)
    unread = {"colour": "unreadable", "image_size": "unreadable"}
    return dataclasses.replace(embedded, traits=tuple(traits.get(d, unread) for d in digests))


def _traits(cache: EmbeddingCache, path_of: dict[str, Path]) -> dict[str, dict[str, str]]:
    """Every readable image's traits, decoded once and cached by content."""
    import cv2

    known = cache.get_traits(list(path_of))
    missing = [d for d in path_of if d not in known]
    for start in range(0, len(missing), 512):
        entries = [
            (d, image_traits(cv2.imread(str(path_of[d]), cv2.IMREAD_UNCHANGED)))
            for d in missing[start : start + 512]
        ]
        cache.put_traits(entries)
        known.update(entries)
    return known


def _assemble(
    dataset: ManifestDataset,
    model_id: str,
    dimension: int,
    samples: list[Sample],
    digests: list[str],
    cached: dict[str, FaceRecord],
    policy: QualityPolicy | None,
) -> EmbeddedSet:
    vectors = np.zeros((len(samples), dimension), dtype=np.float32)
    reasons = []
    for i, digest in enumerate(digests):
        record = cached[digest]
        reason = record.reason(policy)
        reasons.append(reason)
        if not reason and record.vector is not None:
            vectors[i] = record.vector
    acquired = np.array([r == "" for r in reasons], dtype=bool)
    # The manifest's fingerprint plus every image's bytes: a swapped image changes the fingerprint.
    images = hashlib.sha256("".join(digests).encode()).hexdigest()[:16]
    return EmbeddedSet(
        dataset=dataset.name,
        fingerprint=f"{dataset.fingerprint()}:images:{images}",
        model_id=model_id,
        samples=tuple(samples),
        vectors=vectors,
        acquired=acquired,
        failure_reasons=tuple(reasons),
    )
