"""Enrolment: from a CSV of subjects and a folder of their photos to embeddings ready for a watchlist.

No gRPC here: this returns a report (what was enrolled, and which file was skipped and why) that the
`lfr enrol` command uploads and the evaluation harness can reuse. An image must show exactly one face,
unless `pick` says which of several to take: enrolling a bystander by mistake would put an innocent
person on a watchlist.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

import cv2
import numpy as np

from lfr.adapters.camera.crops import crop_pixels, encode_jpeg
from lfr.adapters.embedder import DetectedFace, FaceEmbedder
from lfr.domain.embedding import wipe
from lfr.domain.errors import InvalidCrop, InvalidInput

logger = logging.getLogger(__name__)

CSV_COLUMNS = ("subject_id", "name", "category", "reason", "image_source", "image_path")
REFERENCE_SIDE_PX = 224
REFERENCE_MAX_BYTES = 60 * 1024


class Pick(StrEnum):
    """What to do with an image showing several faces."""

    NONE = "none"  # report and skip it
    LARGEST = "largest"
    CENTRAL = "central"  # closest to the image centre


@dataclass(frozen=True, slots=True)
class EnrolmentRow:
    reference: str
    display_name: str
    category: str
    reason: str
    image_source: str
    image_path: str
    line: int


@dataclass(frozen=True, slots=True)
class ImageProblem:
    image: str
    reason: str


@dataclass(slots=True)
class EnrolledSubject:
    reference: str
    display_name: str
    category: str
    reason: str
    image_source: str
    embeddings: np.ndarray  # (n, d) float32, one row per usable image, L2-normalised
    reference_jpeg: bytearray
    images: list[str] = field(default_factory=list)

    def wipe(self) -> None:
        wipe(self.embeddings)
        wipe(self.reference_jpeg)


@dataclass(slots=True)
class EnrolmentReport:
    model_id: str
    dimension: int
    subjects: list[EnrolledSubject] = field(default_factory=list)
    problems: list[ImageProblem] = field(default_factory=list)
    subjects_without_images: list[str] = field(default_factory=list)

    def wipe(self) -> None:
        for subject in self.subjects:
            subject.wipe()


def read_enrolment_csv(path: Path) -> list[EnrolmentRow]:
    """Rows of the enrolment CSV (header: subject_id, name, category, reason, image_source, image_path;
    `reference` is accepted for subject_id). Several rows may name the same subject, one image each."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            header = [h.strip() for h in reader.fieldnames or []]
            reader.fieldnames = header
            if "reference" in header and "subject_id" not in header:
                header[header.index("reference")] = "subject_id"
            missing = [c for c in CSV_COLUMNS if c not in header]
            if missing:
                raise InvalidInput(f"{path}: missing column(s) {', '.join(missing)}")
            rows = []
            for record in reader:
                values = {c: (record.get(c) or "").strip() for c in CSV_COLUMNS}
                for required in ("subject_id", "name", "image_path"):
                    if not values[required]:
                        raise InvalidInput(f"{path} line {reader.line_num}: {required} is empty")
                rows.append(
                    EnrolmentRow(
                        values["subject_id"],
                        values["name"],
                        values["category"],
                        values["reason"],
                        values["image_source"],
                        values["image_path"],
                        reader.line_num,
                    )
                )
    except OSError as exc:
        raise InvalidInput(f"cannot read enrolment CSV {path}: {exc.strerror}") from exc
    except (csv.Error, UnicodeDecodeError) as exc:
        raise InvalidInput(f"enrolment CSV {path} is malformed: {exc}") from exc
    if not rows:
        raise InvalidInput(f"enrolment CSV {path} lists no images")
    return rows


def choose_face(
    faces: Sequence[DetectedFace], image_shape: tuple[int, ...], pick: Pick
) -> DetectedFace | str:
    """The face to enrol from one image, or why there is none."""
    if not faces:
        return "no face found"
    if len(faces) == 1:
        return faces[0]
    if pick is Pick.LARGEST:
        return max(faces, key=lambda f: f.width * f.height)
    if pick is Pick.CENTRAL:
        centre = np.array([image_shape[1] / 2, image_shape[0] / 2])
        return min(faces, key=lambda f: float(np.linalg.norm((f.bbox[:2] + f.bbox[2:4]) / 2 - centre)))
    return f"{len(faces)} faces found (use --pick largest or central to choose one)"


def embed_subjects(
    embedder: FaceEmbedder,
    rows: Sequence[EnrolmentRow],
    images_dir: Path,
    pick: Pick = Pick.NONE,
    progress: Callable[[int], None] = lambda _: None,
) -> EnrolmentReport:
    """Embed every listed image; `progress(1)` after each. Subjects keep the CSV's order."""
    report = EnrolmentReport(embedder.model_id, embedder.dimension)
    by_subject: dict[str, list[EnrolmentRow]] = {}
    for row in rows:
        by_subject.setdefault(row.reference, []).append(row)
    for reference, subject_rows in by_subject.items():
        vectors: list[np.ndarray] = []
        used: list[str] = []
        reference_jpeg: bytearray | None = None
        for row in subject_rows:
            outcome = _embed_image(embedder, images_dir / row.image_path, pick, reference_jpeg is None)
            progress(1)
            if isinstance(outcome, str):
                report.problems.append(ImageProblem(row.image_path, outcome))
                logger.warning("skipping %s: %s", row.image_path, outcome)
                continue
            vector, jpeg = outcome
            vectors.append(vector)
            used.append(row.image_path)
            reference_jpeg = reference_jpeg or jpeg
        if not vectors or reference_jpeg is None:
            report.subjects_without_images.append(reference)
            continue
        first = subject_rows[0]
        report.subjects.append(
            EnrolledSubject(
                reference,
                first.display_name,
                first.category,
                first.reason,
                first.image_source,
                np.stack(vectors).astype(np.float32),
                reference_jpeg,
                used,
            )
        )
        for vector in vectors:
            wipe(vector)
    return report


def _embed_image(
    embedder: FaceEmbedder, path: Path, pick: Pick, want_reference: bool
) -> tuple[np.ndarray, bytearray | None] | str:
    if not path.is_file():
        return "file not found"
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        return "not a readable image"
    try:
        chosen = choose_face(embedder.detect(image), image.shape, pick)
        if isinstance(chosen, str):
            return chosen
        aligned = embedder.align(image, chosen)
        vector = embedder.embed_aligned([aligned])[0].copy()
        wipe(aligned)
        jpeg = None
        if want_reference:
            try:
                pixels = crop_pixels(image, chosen.bbox, REFERENCE_SIDE_PX, margin=0.35)
                jpeg = encode_jpeg(pixels, 90, REFERENCE_MAX_BYTES)
            except InvalidCrop as exc:
                return f"reference crop failed: {exc}"
        return vector, jpeg
    finally:
        wipe(image)
