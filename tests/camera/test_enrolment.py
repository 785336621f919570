"""Enrolment from a CSV and a folder of real LFW photos; bad images are reported, not enrolled."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from lfr.adapters.embedder import InsightFaceEmbedder, ModelPackError, ModelSettings
from lfr.adapters.enrolment import Pick, embed_subjects, read_enrolment_csv
from lfr.domain.errors import InvalidInput
from tests.camera.conftest import Lfw

HEADER = "subject_id,name,category,reason,image_source,image_path\n"


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory, lfw: Lfw) -> tuple[Path, list[str]]:
    """A folder with two people's photos, a faceless image, a two-face composite and a corrupt file."""
    folder = tmp_path_factory.mktemp("photos")
    people = lfw.identities_with(3)[:2]
    for n, person in enumerate(people):
        for k, source in enumerate(lfw.by_identity[person][:2]):
            shutil.copy(source, folder / f"p{n}_{k}.jpg")
    cv2.imwrite(str(folder / "wall.jpg"), np.full((250, 250, 3), (90, 120, 150), np.uint8))
    left = cv2.imread(str(lfw.by_identity[people[0]][2]))
    right = cv2.imread(str(lfw.by_identity[people[1]][2]))
    small = np.zeros_like(right)
    # The second face is smaller but nearer the composite's centre than the first one.
    small[60:190, 0:130] = cv2.resize(right, (130, 130))
    cv2.imwrite(str(folder / "pair.jpg"), np.hstack([left, small]))
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg")
    return folder, people


def write_csv(path: Path, rows: list[str]) -> Path:
    path.write_text(HEADER + "".join(f"{r}\n" for r in rows))
    return path


pytestmark = pytest.mark.models


def test_enrols_each_subject_with_all_usable_images_and_reports_the_rest(
    embedder: InsightFaceEmbedder, photos: tuple[Path, list[str]], tmp_path: Path
) -> None:
    folder, _ = photos
    rows = read_enrolment_csv(
        write_csv(
            tmp_path / "subjects.csv",
            [
                "S1,Person One,wanted,warrant 1,custody,p0_0.jpg",
                "S1,Person One,wanted,warrant 1,custody,p0_1.jpg",
                "S1,Person One,wanted,warrant 1,custody,wall.jpg",
                "S2,Person Two,missing,welfare,family,p1_0.jpg",
                "S2,Person Two,missing,welfare,family,pair.jpg",
                "S3,Nobody,wanted,x,y,broken.jpg",
                "S3,Nobody,wanted,x,y,absent.jpg",
            ],
        )
    )
    report = embed_subjects(embedder, rows, folder)
    assert [s.reference for s in report.subjects] == ["S1", "S2"]
    s1, s2 = report.subjects
    assert s1.embeddings.shape == (2, 512)
    assert s2.embeddings.shape == (1, 512)
    np.testing.assert_allclose(np.linalg.norm(s1.embeddings, axis=1), 1, atol=1e-4)
    assert float(s1.embeddings[0] @ s1.embeddings[1]) > float(s1.embeddings[0] @ s2.embeddings[0]) + 0.2
    assert (s1.display_name, s1.category, s1.reason, s1.image_source) == (
        "Person One",
        "wanted",
        "warrant 1",
        "custody",
    )
    assert s1.reference_jpeg[:3] == b"\xff\xd8\xff"
    assert len(s1.reference_jpeg) <= 60 * 1024
    problems = {p.image: p.reason for p in report.problems}
    assert problems["wall.jpg"] == "no face found"
    assert problems["pair.jpg"].startswith("2 faces found")
    assert problems["broken.jpg"] == "not a readable image"
    assert problems["absent.jpg"] == "file not found"
    assert report.subjects_without_images == ["S3"]
    assert report.model_id == embedder.model_id
    report.wipe()
    assert not s1.embeddings.any()
    assert not any(s1.reference_jpeg)


@pytest.mark.parametrize(("pick", "expected"), [(Pick.LARGEST, "A"), (Pick.CENTRAL, "B")])
def test_pick_chooses_one_face_of_several(
    embedder: InsightFaceEmbedder, photos: tuple[Path, list[str]], tmp_path: Path, pick: Pick, expected: str
) -> None:
    folder, _ = photos
    rows = read_enrolment_csv(
        write_csv(
            tmp_path / "s.csv", ["A,First,c,r,s,p0_0.jpg", "B,Second,c,r,s,p1_0.jpg", "P,Pair,c,r,s,pair.jpg"]
        )
    )
    report = embed_subjects(embedder, rows, folder, pick)
    assert not report.problems
    first, second, pair = report.subjects
    scores = {
        "A": float(first.embeddings[0] @ pair.embeddings[0]),
        "B": float(second.embeddings[0] @ pair.embeddings[0]),
    }
    assert max(scores, key=scores.__getitem__) == expected
    assert scores[expected] > 0.3


def test_csv_problems_are_named(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("subject_id,name,image_path\nS1,A,a.jpg\n")
    with pytest.raises(InvalidInput, match="missing column"):
        read_enrolment_csv(bad)
    with pytest.raises(InvalidInput, match="line 2: image_path is empty"):
        read_enrolment_csv(write_csv(tmp_path / "empty.csv", ["S1,A,c,r,s,"]))
    with pytest.raises(InvalidInput, match="cannot read"):
        read_enrolment_csv(tmp_path / "nope.csv")


def test_missing_model_files_name_the_folder(tmp_path: Path) -> None:
    with pytest.raises(ModelPackError, match=re.escape(str(tmp_path / "models" / "nopack"))):
        InsightFaceEmbedder(ModelSettings(root=str(tmp_path), pack="nopack"))
    (tmp_path / "models" / "empty").mkdir(parents=True)
    with pytest.raises(ModelPackError, match=r"holds no \.onnx files"):
        InsightFaceEmbedder(ModelSettings(root=str(tmp_path), pack="empty"))


@pytest.fixture(scope="module")
def three_people(tmp_path_factory: pytest.TempPathFactory, lfw: Lfw) -> tuple[Path, list[str]]:
    """Four photos each of two people (three of them in folder0/, folder1/ too) and one of a third."""
    folder = tmp_path_factory.mktemp("three")
    people = lfw.identities_with(4)[2:5]
    for n, person in enumerate(people[:2]):
        (folder / f"folder{n}").mkdir()
        for k, source in enumerate(lfw.by_identity[person][:4]):
            shutil.copy(source, folder / f"q{n}_{k}.jpg")
            if k < 3:
                shutil.copy(source, folder / f"folder{n}" / f"{k}.jpg")
    shutil.copy(lfw.by_identity[people[2]][0], folder / "other.jpg")
    (folder / "empty").mkdir()
    return folder, people


def test_every_template_keeps_its_source_image_and_provenance(
    embedder: InsightFaceEmbedder, three_people: tuple[Path, list[str]], tmp_path: Path
) -> None:
    folder, _ = three_people
    rows = read_enrolment_csv(
        write_csv(
            tmp_path / "s.csv",
            [f"S1,One,wanted,w,custody 2019,q0_{k}.jpg" for k in range(3)],
        )
    )
    report = embed_subjects(embedder, rows, folder)
    (s1,) = report.subjects
    assert s1.embeddings.shape == (3, 512)
    assert [t.image for t in s1.templates] == ["q0_0.jpg", "q0_1.jpg", "q0_2.jpg"]
    assert all(t.source == "custody 2019" for t in s1.templates)
    assert all(t.jpeg[:3] == b"\xff\xd8\xff" for t in s1.templates)
    assert len({bytes(t.jpeg) for t in s1.templates}) == 3
    report.wipe()
    assert not any(any(t.jpeg) for t in s1.templates)


def test_a_folder_per_subject_enrols_every_image_in_it(
    embedder: InsightFaceEmbedder, three_people: tuple[Path, list[str]], tmp_path: Path
) -> None:
    folder, _ = three_people
    rows = read_enrolment_csv(
        write_csv(tmp_path / "s.csv", ["S1,One,c,r,s,folder0", "S2,Two,c,r,s,folder1/", "S3,E,c,r,s,empty"])
    )
    report = embed_subjects(embedder, rows, folder)
    assert [s.reference for s in report.subjects] == ["S1", "S2"]
    assert [t.image for t in report.subjects[0].templates] == [
        "folder0/0.jpg",
        "folder0/1.jpg",
        "folder0/2.jpg",
    ]
    assert {p.image: p.reason for p in report.problems} == {"empty": "folder holds no images"}
    assert report.subjects_without_images == ["S3"]


def test_a_duplicate_image_is_reported_and_enrolled_once(
    embedder: InsightFaceEmbedder, three_people: tuple[Path, list[str]], tmp_path: Path
) -> None:
    folder, _ = three_people
    rows = read_enrolment_csv(
        write_csv(
            tmp_path / "s.csv",
            [
                "S1,One,c,r,s,q0_0.jpg",
                "S1,One,c,r,s,q0_1.jpg",
                "S1,One,c,r,s,folder0/0.jpg",  # same bytes as q0_0.jpg under another name
                "S2,Two,c,r,s,q1_0.jpg",
                "S2,Two,c,r,s,q0_1.jpg",  # one of S1's images listed for S2 as well
            ],
        )
    )
    report = embed_subjects(embedder, rows, folder)
    problems = {p.image: p.reason for p in report.problems}
    assert problems["folder0/0.jpg"] == "duplicate of q0_0.jpg (subject S1)"
    assert problems["q0_1.jpg"] == "duplicate of q0_1.jpg (subject S1)"
    # S2 listed another subject's photo: it is held back for a person to look at, not enrolled.
    assert [s.reference for s in report.subjects] == ["S1"]
    assert report.subjects[0].embeddings.shape == (2, 512)
    assert [f.reference for f in report.flagged] == ["S2"]
    assert "also listed for subject S1" in report.flagged[0].reason


def test_an_image_of_someone_else_flags_the_subject_instead_of_enrolling_it(
    embedder: InsightFaceEmbedder, three_people: tuple[Path, list[str]], tmp_path: Path
) -> None:
    folder, _ = three_people
    rows = read_enrolment_csv(
        write_csv(
            tmp_path / "s.csv",
            [
                "S1,One,c,r,s,q0_0.jpg",
                "S1,One,c,r,s,other.jpg",
                "S1,One,c,r,s,q0_1.jpg",
                "S2,Two,c,r,s,q1_0.jpg",
                "S2,Two,c,r,s,q1_1.jpg",
                "S2,Two,c,r,s,q1_2.jpg",
                "S3,Three,c,r,s,q0_3.jpg",
                "S3,Three,c,r,s,q1_3.jpg",
            ],
        )
    )
    report = embed_subjects(embedder, rows, folder)
    assert [s.reference for s in report.subjects] == ["S2"]
    flagged = {f.reference: f for f in report.flagged}
    assert set(flagged) == {"S1", "S3"}
    assert flagged["S1"].disagreeing == ["other.jpg"]
    assert flagged["S1"].best_agreement < 0.3
    assert "other.jpg" in flagged["S1"].reason
    # Two photos that disagree: neither can be told to be the right one, so both are named.
    assert flagged["S3"].disagreeing == ["q0_3.jpg", "q1_3.jpg"]
    # With the floor at -1 every template agrees and all three subjects are enrolled.
    lenient = embed_subjects(embedder, rows, folder, agreement_floor=-1.0)
    assert [s.reference for s in lenient.subjects] == ["S1", "S2", "S3"]
    assert not lenient.flagged
