"""The demo's own parts without models: who walks when, where the window opens, and the deletion scan."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lfr.demo.cast import user_cast
from lfr.demo.clip import PHASE_GAP_S, Phase, plan_clip
from lfr.demo.portraits import DemoInputError
from lfr.demo.scan import Fingerprints, crop_needle, embedding_needles, scan_folder

CSV_HEADER = "subject_id,name,category,reason,image_source,image_path\n"


def jpeg(seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 255, (48, 48, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=85)
    return buffer.getvalue()


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    images = tmp_path / "images"
    (images / "crowd").mkdir(parents=True)
    for name in ("a1.jpg", "a2.jpg", "a3.jpg", "b1.jpg", "crowd/x.jpg", "crowd/y.png", "z.jpg"):
        (images / name).write_bytes(jpeg(len(name)))
    (images / "notes.txt").write_text("not an image")
    return images


def write_csv(tmp_path: Path, rows: str) -> Path:
    path = tmp_path / "list.csv"
    path.write_text(CSV_HEADER + rows)
    return path


def test_user_cast_enrols_first_images_and_lets_the_rest_walk_past(tmp_path: Path, folder: Path) -> None:
    listing = write_csv(
        tmp_path, "A,Ann,c,r,s,a1.jpg\nA,Ann,c,r,s,a2.jpg\nA,Ann,c,r,s,a3.jpg\nB,Bo,c,r,s,b1.jpg\n"
    )
    cast = user_cast(folder, listing)
    assert [(row.reference, row.image_path) for row in cast.enrolment] == [("A", "a1.jpg"), ("B", "b1.jpg")]
    walks = {p.key: [i.name for i in p.walk_images] for p in cast.people}
    assert walks["A"] == ["a2.jpg", "a3.jpg"]
    assert walks["B"] == ["b1.jpg"]  # a single image both enrols and walks past
    assert sorted(names[0] for key, names in walks.items() if key not in {"A", "B"}) == [
        "x.jpg",
        "y.png",
        "z.jpg",
    ]
    assert [p.listed for p in cast.people].count(True) == 2


def test_user_cast_names_a_listed_file_that_is_missing(tmp_path: Path, folder: Path) -> None:
    listing = write_csv(tmp_path, "A,Ann,c,r,s,a1.jpg\nB,Bo,c,r,s,gone.jpg\n")
    with pytest.raises(DemoInputError, match=r"gone\.jpg: file not found .*line 3"):
        user_cast(folder, listing)


def test_plan_opens_and_closes_the_window_in_quiet_gaps(tmp_path: Path, folder: Path) -> None:
    listing = write_csv(tmp_path, "A,Ann,c,r,s,a1.jpg\nA,Ann,c,r,s,a2.jpg\nB,Bo,c,r,s,b1.jpg\n")
    cast = user_cast(folder, listing)
    plan = plan_clip(cast)
    phases = [s.phase for s in plan.segments]
    assert phases[0] is Phase.BEFORE
    assert phases[-1] is Phase.AFTER
    assert set(phases[1:-1]) == {Phase.ARMED}
    armed = [s for s in plan.segments if s.phase is Phase.ARMED]
    last_before, first_after = plan.segments[0], plan.segments[-1]
    # At least a second of empty scene either side of each window edge, whatever the machine's lag.
    assert last_before.end_s + 1 <= plan.arm_at_s <= armed[0].start_s - 1
    assert armed[-1].end_s + 1 <= plan.disarm_at_s <= first_after.start_s - 1
    assert armed[0].start_s - last_before.end_s == pytest.approx(PHASE_GAP_S)
    for segment in plan.segments:
        assert sum(w.person.listed for w in segment.walks) <= 1  # an alert's time says who it is for
        assert len({w.lane for w in segment.walks}) == len(segment.walks)
    in_window = {w.person.key for s in armed for w in s.walks}
    assert in_window == {p.key for p in cast.people}  # everyone passes while the window is armed
    middle = (armed[0].start_s + armed[0].end_s) / 2
    assert plan.present_at(middle) == {w.person.key for w in armed[0].walks}
    assert plan.present_at(plan.arm_at_s) == set()
    assert plan.frames == round(plan.duration_s * plan.fps)


def test_crop_needle_comes_from_picture_data_not_the_shared_header() -> None:
    first, second = jpeg(1), jpeg(2)
    assert first[:200] == second[:200]  # same size and quality: identical headers
    assert crop_needle(first) != crop_needle(second)
    assert crop_needle(first) in first
    assert crop_needle(first) not in second


def test_scan_finds_planted_fingerprints_and_only_those(tmp_path: Path) -> None:
    kept_crop, gone_crop = jpeg(10), jpeg(11)
    rng = np.random.default_rng(3)
    kept_vector, gone_vector = (rng.normal(size=512).astype("<f4") for _ in range(2))
    (tmp_path / "sub").mkdir()
    (tmp_path / "db").write_bytes(b"prefix" + kept_crop + b"\x00" * 13 + kept_vector.tobytes())
    (tmp_path / "sub" / "log").write_bytes(b"nothing here")
    gone = Fingerprints([crop_needle(gone_crop)], [embedding_needles(gone_vector.tobytes(), 512)])
    kept = Fingerprints([crop_needle(kept_crop)], [embedding_needles(kept_vector.tobytes(), 512)])
    report = scan_folder(tmp_path, gone, kept)
    assert (report.forgotten.crops, report.forgotten.embeddings, report.forgotten.where) == (0, 0, ())
    assert (report.kept.crops, report.kept.embeddings, report.kept.where) == (1, 1, ("db",))
    assert [name for name, _ in report.files] == ["db", "sub/log"]
    assert report.total_bytes == sum(p.stat().st_size for p in tmp_path.rglob("*") if p.is_file())
    # An embedding at an odd offset, stored as the matcher normalised it, is found as well.
    normalised = (gone_vector / np.linalg.norm(gone_vector)).astype("<f4")
    (tmp_path / "wal").write_bytes(b"\x01\x02\x03" + normalised.tobytes())
    assert scan_folder(tmp_path, gone, kept).forgotten.embeddings == 1
