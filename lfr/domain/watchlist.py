"""Watchlists: built for one deployment, sealed with a content hash, destroyed after it."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

import numpy as np

from lfr.domain.errors import WatchlistStateError


class WatchlistState(StrEnum):
    DRAFT = "draft"
    SEALED = "sealed"
    DESTROYED = "destroyed"


@dataclass(frozen=True, slots=True)
class Watchlist:
    id: str
    name: str
    model_id: str
    dimension: int
    created_by: str
    created_at: datetime
    state: WatchlistState = WatchlistState.DRAFT
    content_hash: str = ""
    sealed_at: datetime | None = None
    destroyed_at: datetime | None = None

    def require_editable(self) -> None:
        if self.state is not WatchlistState.DRAFT:
            raise WatchlistStateError(f"watchlist {self.id} is {self.state}; only a draft can be changed")

    def require_sealed(self) -> None:
        if self.state is not WatchlistState.SEALED:
            raise WatchlistStateError(f"watchlist {self.id} is {self.state}; it must be sealed first")

    def seal(self, content_hash: str, at: datetime) -> Watchlist:
        self.require_editable()
        return dataclasses.replace(self, state=WatchlistState.SEALED, content_hash=content_hash, sealed_at=at)

    def destroy(self, at: datetime) -> Watchlist:
        if self.state is WatchlistState.DESTROYED:
            raise WatchlistStateError(f"watchlist {self.id} is already destroyed")
        return dataclasses.replace(self, state=WatchlistState.DESTROYED, destroyed_at=at)


@dataclass(frozen=True, slots=True)
class Subject:
    """A wanted person. `reference_image_jpeg` is what officers see beside the probe crop."""

    id: str
    watchlist_id: str
    reference: str  # the force's own case/person reference
    display_name: str
    category: str  # e.g. "wanted on warrant", "missing person"
    reason: str  # why this person is listed
    image_source: str  # provenance of the reference image (custody image, ...)
    reference_image_jpeg: bytes | None = None


@dataclass(frozen=True, slots=True)
class TemplateImage:
    """Where one of a subject's templates came from: its provenance (custody image 2019, passport, ...)
    and the face crop of its source image, so officers can see every photo the subject is matched by."""

    provenance: str
    jpeg: bytes | None = None


@dataclass(frozen=True, slots=True)
class EnrolledSubject:
    subject: Subject
    embeddings: np.ndarray  # (n, d) float32, unit rows
    templates: tuple[TemplateImage, ...] = ()  # empty, or one per row of `embeddings`


def content_hash(model_id: str, dimension: int, enrolled: Iterable[EnrolledSubject]) -> str:
    """SHA-256 over the model, every subject's listing facts, reference image and embeddings, in id order.

    The window records this hash, so what was matched against can be proven afterwards.
    """
    digest = hashlib.sha256()
    digest.update(f"lfr-watchlist-v1\x00{model_id}\x00{dimension}\x00".encode())
    # The bytes are gathered and fed in large pieces: the digest is that of their concatenation, and one
    # update per piece of every subject was most of the time of checking a 100k watchlist at start.
    pieces: list[bytes] = []
    held = 0
    for item in sorted(enrolled, key=lambda e: e.subject.id):
        s = item.subject
        for text in (s.id, s.reference, s.display_name, s.category, s.reason, s.image_source):
            encoded = text.encode()
            pieces.append(len(encoded).to_bytes(4, "big"))
            pieces.append(encoded)
        pieces.append(hashlib.sha256(s.reference_image_jpeg or b"").digest())
        rows = np.ascontiguousarray(item.embeddings, dtype="<f4")
        pieces.append(rows.shape[0].to_bytes(4, "big"))
        pieces.append(rows.tobytes())
        # Appended only when present, so lists sealed before templates had images keep their hash.
        for template in item.templates:
            encoded = template.provenance.encode()
            pieces.append(b"T" + len(encoded).to_bytes(4, "big") + encoded)
            pieces.append(hashlib.sha256(template.jpeg or b"").digest())
        held += rows.nbytes
        if held >= 1 << 22:
            digest.update(b"".join(pieces))
            pieces, held = [], 0
    digest.update(b"".join(pieces))
    return digest.hexdigest()


_MEAN_BLOCK = 16_384  # subjects per step of mean_templates: 64 MB of float64 rows at one row each


def mean_templates(subject_of_row: list[str], vectors: np.ndarray) -> tuple[list[str], np.ndarray]:
    """One unit-length mean template per subject (first-seen order) from its enrolled rows.

    Measured on the development data (bench.template_fusion, docs/evaluation.md): with two reference
    images per subject the mean template finds as many listed people at FPIR 0.1% as the best-scoring
    single template, within the intervals (84.1% vs 84.9% gated; 60.5% vs 58.8% and 75.2% vs 68.6% in two
    earlier ungated draws), both above one image, with one index row per subject instead of one per image.
    Averaging cancels what is particular to one photo (pose, light) and keeps what is the person's.
    The sealed hash still covers every stored template; only the search index holds the means.
    """
    first_seen: dict[str, int] = {}
    codes = np.fromiter(
        (first_seen.setdefault(subject, len(first_seen)) for subject in subject_of_row),
        dtype=np.int64,
        count=len(subject_of_row),
    )
    if not first_seen:
        return [], np.zeros((0, vectors.shape[1] if vectors.ndim == 2 else 0), dtype=np.float32)
    # Rows grouped by subject, subjects in first-seen order: each subject's rows are one run in `order`.
    order = np.argsort(codes, kind="stable")
    counts = np.bincount(codes)
    ends = np.cumsum(counts)
    fused = np.empty((len(first_seen), vectors.shape[1]), dtype=np.float32)
    # A block of subjects at a time: float64 sums of all of them at once were 4 GB beside the store's
    # 2 GB at 1M subjects (and one array per subject took minutes).
    for first in range(0, len(first_seen), _MEAN_BLOCK):
        last = min(first + _MEAN_BLOCK, len(first_seen))
        start = int(ends[first - 1]) if first else 0
        rows = vectors[order[start : int(ends[last - 1])]].astype(np.float64)
        sums = np.add.reduceat(rows, ends[first:last] - counts[first:last] - start, axis=0)
        norms = np.linalg.norm(sums, axis=1, keepdims=True)  # of the sum: the mean's direction is the same
        fused[first:last] = sums / np.where(norms > 0, norms, 1.0)
    return list(first_seen), fused
