"""Enrolment: from a CSV of subjects and a folder of their photos to embeddings ready for a watchlist.

No gRPC here: this returns a report (what was enrolled, and which file was skipped and why) that the
`lfr enrol` command uploads and the evaluation harness can reuse. An image must show exactly one face,
unless `pick` says which of several to take: enrolling a bystander by mistake would put an innocent
person on a watchlist.
"""

from __future__ import annotations

import csv
import hashlib
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
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp"})
# Below this best similarity to the subject's other photos, a photo may show someone else (the
# measurement this floor comes from is in docs/evaluation.md, "Multi-image enrolment").
AGREEMENT_FLOOR = 0.25


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
class Template:
    """One reference image's embedding, with the image it came from: officers see every one."""

    image: str  # path as the CSV named it (relative to the images folder)
    source: str  # provenance: custody image, passport, ...
    vector: np.ndarray  # (d,) float32, L2-normalised
    jpeg: bytearray  # face crop of the source image, REFERENCE_SIDE_PX square

    def wipe(self) -> None:
        wipe(self.vector)
        wipe(self.jpeg)


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
    templates: list[Template] = field(default_factory=list)  # row i of `embeddings` is templates[i]

    def wipe(self) -> None:
        wipe(self.embeddings)
        wipe(self.reference_jpeg)
        for template in self.templates:
            template.wipe()


@dataclass(frozen=True, slots=True)
class FlaggedSubject:
    """A subject held back for a person to check: its photos may not all show the same person."""

    reference: str
    reason: str
    disagreeing: list[str]  # the images that agree with none of the subject's others
    best_agreement: float  # the highest similarity any disagreeing image reaches with the others


@dataclass(slots=True)
class EnrolmentReport:
    model_id: str
    dimension: int
    subjects: list[EnrolledSubject] = field(default_factory=list)
    problems: list[ImageProblem] = field(default_factory=list)
    subjects_without_images: list[str] = field(default_factory=list)
    flagged: list[FlaggedSubject] = field(default_factory=list)

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
    agreement_floor: float = AGREEMENT_FLOOR,
) -> EnrolmentReport:
    """Embed every listed image (a row naming a folder stands for every image in it); `progress(1)` after
    each row. Subjects keep the CSV's order.

    Never enrolled, but reported: an image already listed (same bytes, any name), and a subject whose
    photos may not all show one person (see `disagreeing_templates`) or that lists another subject's photo.
    """
    report = EnrolmentReport(embedder.model_id, embedder.dimension)
    by_subject: dict[str, list[EnrolmentRow]] = {}
    for row in rows:
        by_subject.setdefault(row.reference, []).append(row)
    seen: dict[str, tuple[str, str]] = {}  # image bytes' sha256 -> (image, subject)
    for reference, subject_rows in by_subject.items():
        templates: list[Template] = []
        shared_with: list[str] = []
        for row in subject_rows:
            for image in _expand(images_dir, row, report):
                digest = _file_digest(images_dir / image)
                if digest is not None and digest in seen:
                    first_image, first_subject = seen[digest]
                    report.problems.append(
                        ImageProblem(image, f"duplicate of {first_image} (subject {first_subject})")
                    )
                    if first_subject != reference:
                        shared_with.append(first_subject)
                    continue
                outcome = _embed_image(embedder, images_dir / image, pick)
                if isinstance(outcome, str):
                    report.problems.append(ImageProblem(image, outcome))
                    logger.warning("skipping %s: %s", image, outcome)
                    continue
                if digest is not None:
                    seen[digest] = (image, reference)
                templates.append(Template(image, row.image_source, *outcome))
            progress(1)
        if not templates:
            report.subjects_without_images.append(reference)
            continue
        flag = _flag(reference, templates, shared_with, agreement_floor)
        if flag is not None:
            report.flagged.append(flag)
            logger.warning("subject %s held back: %s", reference, flag.reason)
            for template in templates:
                template.wipe()
            continue
        first = subject_rows[0]
        report.subjects.append(
            EnrolledSubject(
                reference,
                first.display_name,
                first.category,
                first.reason,
                first.image_source,
                np.stack([t.vector for t in templates]).astype(np.float32),
                bytearray(templates[0].jpeg),
                [t.image for t in templates],
                templates,
            )
        )
    return report


def disagreeing_templates(vectors: np.ndarray, floor: float) -> tuple[list[int], float]:
    """Rows (unit vectors of one subject) whose best similarity to any OTHER row is below `floor`, and
    the highest such best similarity (1.0 when none disagrees).

    A template is accepted if it agrees with at least one other: a subject photographed over years may
    hold pairs that differ more than others, and one odd photo among several is named on its own. Two
    photos that disagree are both named, since neither can be told to be the right one.
    """
    if len(vectors) < 2:
        return [], 1.0
    similarity = vectors @ vectors.T
    np.fill_diagonal(similarity, -np.inf)
    best = similarity.max(axis=1)
    odd = [int(i) for i in np.flatnonzero(best < floor)]
    return odd, float(best[odd].max()) if odd else 1.0


def _flag(
    reference: str, templates: list[Template], shared_with: list[str], floor: float
) -> FlaggedSubject | None:
    reasons = []
    if shared_with:
        reasons.append(f"an image is also listed for subject {', '.join(sorted(set(shared_with)))}")
    odd, best = disagreeing_templates(np.stack([t.vector for t in templates]), floor)
    names = [templates[i].image for i in odd]
    if odd:
        reasons.append(
            f"{', '.join(names)} may show someone else: best similarity to the subject's other images "
            f"{best:.2f} is below the floor {floor:.2f}"
        )
    if not reasons:
        return None
    return FlaggedSubject(reference, "; ".join(reasons), names, best)


def _expand(images_dir: Path, row: EnrolmentRow, report: EnrolmentReport) -> list[str]:
    """The images a row names: itself, or every image file directly inside the folder it names."""
    path = images_dir / row.image_path
    if not path.is_dir():
        return [row.image_path]
    folder = row.image_path.rstrip("/")
    names = sorted(p.name for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not names:
        report.problems.append(ImageProblem(folder, "folder holds no images"))
    return [f"{folder}/{name}" for name in names]


def _file_digest(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None  # reported as missing or unreadable when it is embedded


def _embed_image(embedder: FaceEmbedder, path: Path, pick: Pick) -> tuple[np.ndarray, bytearray] | str:
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
        try:
            pixels = crop_pixels(image, chosen.bbox, REFERENCE_SIDE_PX, margin=0.35)
            jpeg = encode_jpeg(pixels, 90, REFERENCE_MAX_BYTES)
        except InvalidCrop as exc:
            return f"reference crop failed: {exc}"
        return vector, jpeg
    finally:
        wipe(image)
