"""The demo's people: who is on the watchlist and who merely walks past the camera.

By default they come from the group photo insightface ships (`insightface/data/images/t1.jpg`, six
faces): the two largest faces are enrolled under clearly fictional names, the other four are passers-by.
With `--images DIR --csv FILE` (the `lfr enrol` CSV) they are the user's: each CSV subject is enrolled
from its first image and walks past in its other images (or, with only one, in that one); every image in
DIR that the CSV does not name is a passer-by.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2

from lfr.adapters.camera.capture import IMAGE_SUFFIXES
from lfr.adapters.enrolment import EnrolmentRow, read_enrolment_csv
from lfr.demo.portraits import DemoInputError, FaceDetector, cut_portrait

DEFAULT_IMAGE = "t1"  # insightface.data.get_image name
DEFAULT_LISTED = 2
DEMO_CATEGORY = "fictional demo entry"
DEMO_REASON = "lfr demo only, not a real person of interest"


@dataclass(frozen=True, slots=True)
class Person:
    key: str  # the subject reference for a listed person; a local label for a passer-by
    name: str
    listed: bool
    walk_images: tuple[Path, ...]  # the images in which this person walks past the camera


@dataclass(frozen=True, slots=True)
class Cast:
    people: tuple[Person, ...]
    enrolment: tuple[EnrolmentRow, ...]  # one row per listed person: the image that enrols them
    images_dir: Path  # the enrolment rows' image paths are relative to it
    origin: str

    @property
    def listed(self) -> list[Person]:
        return [p for p in self.people if p.listed]

    @property
    def unlisted(self) -> list[Person]:
        return [p for p in self.people if not p.listed]


def default_cast(detector: FaceDetector, folder: Path) -> Cast:
    """Cuts the six people of insightface's t1.jpg into `folder` (the demo's work folder, removed after)."""
    from insightface.data import get_image

    try:
        image = get_image(DEFAULT_IMAGE)
    except AssertionError as exc:  # insightface asserts that its bundled image exists
        raise DemoInputError("insightface's sample image t1.jpg is missing from its package") from exc
    faces = sorted(detector.detect(image), key=lambda f: float(f.bbox[0]))  # left to right
    if len(faces) <= DEFAULT_LISTED:
        raise DemoInputError(f"expected 6 faces in insightface's t1.jpg, found {len(faces)}")
    largest = sorted(faces, key=lambda f: f.width * f.height, reverse=True)[:DEFAULT_LISTED]
    folder.mkdir(parents=True, exist_ok=True)
    people: list[Person] = []
    rows: list[EnrolmentRow] = []
    passer_by = 0
    for n, face in enumerate(faces):
        path = folder / f"person-{n + 1}.jpg"
        cv2.imwrite(str(path), cut_portrait(image, face, [f for f in faces if f is not face]))
        if any(face is chosen for chosen in largest):
            letter = "AB"[len(rows)]
            key, name = f"DEMO-{letter}", f"Demo Person {letter}"
            rows.append(
                EnrolmentRow(key, name, DEMO_CATEGORY, DEMO_REASON, "insightface sample t1.jpg", path.name, 0)
            )
            people.append(Person(key, name, True, (path,)))
        else:
            passer_by += 1
            people.append(Person(f"passer-by-{passer_by}", f"passer-by {passer_by}", False, (path,)))
    return Cast(tuple(people), tuple(rows), folder, "insightface's sample group photo t1.jpg")


def user_cast(images_dir: Path, csv_file: Path, max_passers_by: int = 8) -> Cast:
    if not images_dir.is_dir():
        raise DemoInputError(f"{images_dir}: not a folder")
    rows = read_enrolment_csv(csv_file)
    by_subject: dict[str, list[EnrolmentRow]] = {}
    for row in rows:
        if not (images_dir / row.image_path).is_file():
            raise DemoInputError(
                f"{images_dir / row.image_path}: file not found ({csv_file} line {row.line})"
            )
        by_subject.setdefault(row.reference, []).append(row)
    people = [
        Person(
            reference,
            subject_rows[0].display_name,
            True,
            tuple(images_dir / r.image_path for r in subject_rows[1:] or subject_rows),
        )
        for reference, subject_rows in by_subject.items()
    ]
    named = {(images_dir / row.image_path).resolve() for row in rows}
    others = sorted(
        p
        for p in images_dir.rglob("*")
        if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file() and p.resolve() not in named
    )[:max_passers_by]
    people += [Person(f"passer-by-{n}", f"passer-by {n}", False, (p,)) for n, p in enumerate(others, 1)]
    enrolment = tuple(subject_rows[0] for subject_rows in by_subject.values())
    return Cast(tuple(people), enrolment, images_dir, f"{csv_file} and {images_dir}")
