"""Head pose from five keypoints against a synthetic perspective camera with known angles (bench.pose),
its exact symmetries, degenerate keypoints, and real LFW faces."""

from __future__ import annotations

import csv
import math
import os
import random
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.pose import FRAME, project
from lfr.adapters.embedder import DetectedFace, InsightFaceEmbedder
from lfr.adapters.face_quality import measure
from lfr.adapters.head_pose import NO_POSE, estimate_head_pose
from lfr.domain.quality import QualityPolicy, gate
from tests.camera.conftest import DEFAULT_SHARED, Lfw, model_settings

CORNERS = [(640.0, 360.0), (80.0, 80.0), (1200.0, 640.0), (1200.0, 80.0), (80.0, 640.0)]


def pitch_tolerance(at: tuple[float, float], pitch: float, near: float) -> float:
    """Pitch takes its scale from the eye line (the mouth line moves with expression). A face far off the
    optical axis is seen obliquely, stretched along the radius by up to 1/cos(30 degrees) at this frame's
    corners, which no five keypoints can tell from pitch without the camera's intrinsics: there the error
    grows with pitch (the nose tip's height changes ever more slowly towards its 43-degree fold).

    The off-axis constant is measured, not guessed: over yaw -60..60 (3-degree steps), pitch -35..35,
    roll -40..40 and inter-ocular 20-50 px at the frame's edges and corners, the largest error is 7.41
    degrees at pitch 0 (yaw 3, roll -40, corner), 0.91 above 6.5 + 0.45 |pitch| everywhere."""
    off_axis = math.hypot(at[0] - FRAME[0] / 2, at[1] - FRAME[1] / 2) / FRAME[0]
    return near if off_axis <= 0.15 else 7.5 + 0.45 * abs(pitch)


def test_without_noise_the_error_is_within_a_degree_or_two_over_the_gated_range() -> None:
    for at in CORNERS:
        for yaw in range(-60, 61, 10):
            for pitch in range(-35, 36, 7):
                for roll in (-30, 0, 30):
                    pose = estimate_head_pose(project(yaw, pitch, roll, at=at, iod_px=40))
                    # What remains is perspective (a frontal face ~2 m from a lens whose focal length is the
                    # frame width) that the scaled orthographic model leaves out.
                    assert pose.yaw == pytest.approx(yaw, abs=1.0), (at, yaw, pitch, roll)
                    tolerance = pitch_tolerance(at, pitch, near=2.5)
                    assert pose.pitch == pytest.approx(pitch, abs=tolerance), (at, yaw, pitch, roll)
                    assert pose.roll == pytest.approx(roll, abs=2.0), (at, yaw, pitch, roll)


def test_yaw_keeps_rising_through_profile_instead_of_saturating() -> None:
    for pitch, roll, at in [(0, 0, CORNERS[0]), (25, -20, CORNERS[1]), (-30, 30, CORNERS[2])]:
        yaws = [estimate_head_pose(project(y, pitch, roll, at=at)).yaw for y in range(-85, 86)]
        assert np.all(np.diff(yaws) > 0.5), (pitch, roll)
        assert yaws[0] < -80
        assert yaws[-1] > 80


def test_pitch_rises_monotonically_well_past_its_limit() -> None:
    for yaw, roll in [(0, 0), (40, 25), (-55, -30)]:
        pitches = [estimate_head_pose(project(yaw, p, roll)).pitch for p in range(-60, 61)]
        assert np.all(np.diff(pitches) > 0.5), (yaw, roll)
        assert pitches[0] < -55
        assert pitches[-1] > 55


def test_with_keypoint_noise_the_gate_rejects_profiles_and_keeps_near_frontal_faces() -> None:
    rng = np.random.default_rng(7)
    policy = QualityPolicy()
    errors = []
    for yaw in range(-80, 81, 5):
        for pitch in range(-50, 51, 5):
            for _ in range(3):
                at = (rng.uniform(100, 1180), rng.uniform(100, 620))
                roll = rng.uniform(-30, 30)
                pose = estimate_head_pose(project(yaw, pitch, roll, at=at, iod_px=40, noise_px=0.5, rng=rng))
                if abs(yaw) <= 60 and abs(pitch) <= 35:
                    errors.append((abs(pose.yaw - yaw), abs(pose.pitch - pitch)))
                if abs(yaw) >= 60:
                    assert abs(pose.yaw) > policy.max_abs_yaw_deg, (yaw, pitch, pose)
                if abs(pitch) >= 50 and abs(yaw) <= 45:
                    assert abs(pose.pitch) > policy.max_abs_pitch_deg, (yaw, pitch, pose)
                if abs(yaw) <= 30 and abs(pitch) <= 20:
                    assert abs(pose.yaw) <= policy.max_abs_yaw_deg, (yaw, pitch, pose)
                    assert abs(pose.pitch) <= policy.max_abs_pitch_deg, (yaw, pitch, pose)
    yaw_error, pitch_error = np.array(errors).T
    # 0.5 px on a 40 px inter-ocular face; the nose carries all the depth information, so its noise alone
    # moves yaw by ~2.7 degrees per pixel. Pitch rests on the nose tip's height over the eye line's length
    # (not the mouth line, which expression moves) and, off axis, on an obliquely stretched face
    # (`pitch_tolerance`): p95 7.1 degrees here, 5.4 for faces near the frame's centre (was 4.3 with the
    # mouth line as the vertical scale).
    assert np.percentile(yaw_error, 95) < 4.0
    assert np.percentile(pitch_error, 95) < 7.5
    assert np.mean(yaw_error < 5.0) > 0.98


@settings(max_examples=300, deadline=None)
@given(
    yaw=st.floats(-85, 85),
    pitch=st.floats(-45, 45),
    roll=st.floats(-40, 40),
    x=st.floats(60, FRAME[0] - 60),
    y=st.floats(60, FRAME[1] - 60),
    iod=st.floats(20, 50),
)
def test_any_pose_is_recovered_and_within_the_gated_range_closely(
    yaw: float, pitch: float, roll: float, x: float, y: float, iod: float
) -> None:
    pose = estimate_head_pose(project(yaw, pitch, roll, at=(x, y), iod_px=iod))
    assert pose.yaw == pytest.approx(yaw, abs=2.0)
    # Perspective biases pitch most when the face is turned and off centre. Towards profile, pitch and roll
    # become the same turn as seen from the camera, so pitch is ill-defined there (yaw gates those faces).
    if abs(yaw) <= 60 and abs(pitch) <= 35:
        assert pose.pitch == pytest.approx(pitch, abs=pitch_tolerance((x, y), pitch, near=3.5))
    elif abs(yaw) <= 75:
        assert pose.pitch == pytest.approx(pitch, abs=max(8.0, pitch_tolerance((x, y), pitch, near=8.0)))


@settings(max_examples=100, deadline=None)
@given(
    yaw=st.floats(-80, 80),
    pitch=st.floats(-45, 45),
    turn=st.floats(-180, 180),
    scale=st.floats(0.2, 20),
    shift=st.tuples(st.floats(-2000, 2000), st.floats(-2000, 2000)),
)
def test_image_rotation_scale_and_shift_change_only_roll(
    yaw: float, pitch: float, turn: float, scale: float, shift: tuple[float, float]
) -> None:
    points = project(yaw, pitch, 0.0, noise_px=0.3, rng=np.random.default_rng(1))
    angle = math.radians(turn)
    turned = points @ np.array([[math.cos(angle), math.sin(angle)], [-math.sin(angle), math.cos(angle)]])
    before, after = estimate_head_pose(points), estimate_head_pose(turned * scale + np.array(shift))
    assert after.yaw == pytest.approx(before.yaw, abs=1e-6)
    assert after.pitch == pytest.approx(before.pitch, abs=1e-6)
    assert math.remainder(after.roll - before.roll - turn, 360) == pytest.approx(0, abs=1e-6)


@settings(max_examples=100, deadline=None)
@given(yaw=st.floats(-80, 80), pitch=st.floats(-45, 45), roll=st.floats(-30, 30))
def test_a_mirrored_face_has_the_opposite_yaw_and_roll_and_the_same_pitch(
    yaw: float, pitch: float, roll: float
) -> None:
    points = project(yaw, pitch, roll, noise_px=0.3, rng=np.random.default_rng(2))
    mirrored = points * np.array([-1.0, 1.0])
    mirrored = mirrored[[1, 0, 2, 4, 3]]  # the detector names keypoints by image side
    before, after = estimate_head_pose(points), estimate_head_pose(mirrored)
    assert after.yaw == pytest.approx(-before.yaw, abs=1e-6)
    assert after.pitch == pytest.approx(before.pitch, abs=1e-6)
    assert after.roll == pytest.approx(-before.roll, abs=1e-6)


def smile(keypoints: np.ndarray, px: float) -> np.ndarray:
    """The mouth corners moved `px` up and `px` outwards along the face's own axes, as a broad smile does."""
    across = (keypoints[1] - keypoints[0]) / np.linalg.norm(keypoints[1] - keypoints[0])
    down = np.array([-across[1], across[0]])
    smiling = keypoints.copy()
    smiling[3] += -px * across - px * down
    smiling[4] += px * across - px * down
    return smiling


def test_a_smile_barely_moves_pitch() -> None:
    # 3 px on a 40 px inter-ocular face: a broad smile. Pitch rests on the eyes and the nose tip, so only
    # yaw's dependence on the mouth (the smile turns a 30-degree yaw by ~2 degrees, which changes the eye
    # line's foreshortening) reaches it. The previous estimator, whose vertical scale was the mouth line,
    # read every one of these smiles 3.6 to 5.7 degrees further "down".
    changes = []
    for yaw in range(-30, 31, 10):
        for pitch in range(-15, 16, 5):
            for roll in (-20, 0, 20):
                level = project(yaw, pitch, roll, iod_px=40)
                change = estimate_head_pose(smile(level, 3.0)).pitch - estimate_head_pose(level).pitch
                assert abs(change) < 3.0, (yaw, pitch, roll, change)
                changes.append(abs(change))
    assert np.median(changes) < 1.0


def test_the_arcface_template_is_frontal() -> None:
    template = np.array([[38.29, 51.70], [73.53, 51.50], [56.03, 71.74], [41.55, 92.37], [70.73, 92.20]])
    pose = estimate_head_pose(template)
    assert abs(pose.yaw) < 1
    assert abs(pose.pitch) < 1
    assert abs(pose.roll) < 1


@pytest.mark.parametrize(
    "keypoints",
    [
        np.full((5, 2), np.nan),
        np.where(np.arange(10).reshape(5, 2) == 4, np.nan, project(10, 5, 0)),
        np.where(np.arange(10).reshape(5, 2) == 4, np.inf, project(10, 5, 0)),
        np.full((5, 2), 300.0),  # collapsed
        np.column_stack([np.linspace(0, 100, 5), np.linspace(0, 50, 5)]),  # collinear
        np.array([[0.0, 0], [40, 0], [20, 20], [0, 45], [40, 45.0]]) * [1, 0.01],  # flattened
        project(0, 0, 0)[[3, 4, 2, 0, 1]],  # eyes and mouth swapped: upside down and mirrored
        np.array([[0.0, 0], [40, 0], [20, 200], [0, 45], [40, 45.0]]),  # nose far outside the face
        np.array([[20.0, 0], [20, 0], [20, 20], [0, 45], [40, 45.0]]),  # both eyes on one point
    ],
    ids=[
        "nan",
        "one-nan",
        "inf",
        "collapsed",
        "collinear",
        "flattened",
        "scrambled",
        "nose-outside",
        "one-eye",
    ],
)
def test_keypoints_no_face_can_produce_fail_the_gate_without_raising(keypoints: np.ndarray) -> None:
    pose = estimate_head_pose(keypoints)
    assert pose == NO_POSE or abs(pose.yaw) > 60 or abs(pose.pitch) > 60
    face = DetectedFace(np.array([0.0, 0, 100, 100]), keypoints.astype(np.float32), 0.9)
    quality = measure(face, np.full((112, 112, 3), 128, np.uint8))
    policy = QualityPolicy()
    assert not (
        abs(quality.yaw_deg) <= policy.max_abs_yaw_deg and abs(quality.pitch_deg) <= policy.max_abs_pitch_deg
    )
    assert gate(quality, policy) is not None


def test_keypoints_of_the_wrong_shape_are_a_programming_error() -> None:
    with pytest.raises(ValueError, match="reshape"):
        estimate_head_pose(np.zeros((4, 2)))


@pytest.mark.models
def test_real_faces_read_near_frontal_and_mirror_to_the_opposite_yaw(
    embedder: InsightFaceEmbedder, lfw: Lfw
) -> None:
    paths = [lfw.by_identity[i][0] for i in lfw.identities_with(4)[:16]]
    pairs = []
    for path in paths:
        image = cv2.imread(str(path))
        poses = []
        for picture in (image, cv2.flip(image, 1)):
            face = max(embedder.detect(picture), key=lambda f: f.width * f.height)
            poses.append(estimate_head_pose(face.keypoints))
        pairs.append((poses[0].yaw, poses[1].yaw, poses[0].pitch, poses[1].pitch))
    yaw, flipped_yaw, pitch, flipped_pitch = np.array(pairs).T
    # LFW portraits are mostly near frontal; the detector's own keypoints on the mirrored image agree with
    # the mirrored estimate to within its keypoint noise.
    assert np.median(np.abs(yaw)) < 15
    assert np.median(np.abs(yaw + flipped_yaw)) < 3
    assert np.median(np.abs(pitch - flipped_pitch)) < 3
    turned = np.abs(yaw) > 10
    assert turned.sum() >= 2
    assert np.all(np.sign(yaw[turned]) == -np.sign(flipped_yaw[turned]))


@pytest.fixture(scope="module")
def utkface_sample() -> list[tuple[str, np.ndarray]]:
    """(gender, keypoints) of a fixed, seeded 100 women + 100 men from UTKFace, detected as the development
    evaluation detects them (det_size 256). Computed here, never stored."""
    datasets = Path(os.environ.get("LFR_TEST_DATASETS") or DEFAULT_SHARED / "datasets")
    manifest = datasets / "utkface" / "manifest.csv"
    settings = model_settings(det_size=256)
    if (
        not manifest.is_file()
        or not (Path(settings.root or "") / "models" / settings.resolved_pack()).is_dir()
    ):
        pytest.skip("needs LFR_TEST_DATASETS (utkface) and LFR_MODEL_ROOT/LFR_MODEL_PACK")
    with manifest.open(newline="") as handle:
        rows = sorted(csv.DictReader(handle), key=lambda row: row["path"])
    random.Random(5).shuffle(rows)
    detector = InsightFaceEmbedder(settings)
    sample: list[tuple[str, np.ndarray]] = []
    for row in rows:
        if sum(gender == row["gender"] for gender, _ in sample) >= 100 or row["gender"] not in ("F", "M"):
            continue
        faces = detector.detect(cv2.imread(str(manifest.parent / row["path"])))
        if faces:
            sample.append((row["gender"], max(faces, key=lambda f: f.width * f.height).keypoints))
        if len(sample) == 200:
            break
    return sample


@pytest.mark.models
def test_on_real_faces_pitch_reads_level_and_neither_smiles_nor_gender_move_the_gate(
    utkface_sample: list[tuple[str, np.ndarray]],
) -> None:
    # The previous estimator read UTKFace's level portraits ~+10 degrees "down", 7.6 more per 0.1 inter-ocular
    # distances of mouth width (smiles), and its 35-degree limit rejected women 2.3 times as often as men
    # (5.3% vs 2.2% of 2,499, bench.pitch_by_gender). 200 faces are too few for a Fisher test of rates near
    # 1% to mean anything, so this checks what causes such a differential: the level offset, the pitch
    # per mouth width, and the gate's rejections per gender (bounds hold for any 100 + 100 drawn from those
    # 2,499 in 300 bootstrap draws; the previous estimator fails the first two in every draw).
    genders = np.array([gender for gender, _ in utkface_sample])
    points = np.array([keypoints for _, keypoints in utkface_sample], dtype=np.float64)
    pitch = np.array([estimate_head_pose(k).pitch for k in points])
    mouth_width = np.linalg.norm(points[:, 4] - points[:, 3], axis=1) / np.linalg.norm(
        points[:, 1] - points[:, 0], axis=1
    )
    assert len(pitch) == 200
    assert abs(np.median(pitch)) < 5.0
    assert np.polyfit(mouth_width, pitch, 1)[0] / 10 < 4.5
    limit = QualityPolicy().max_abs_pitch_deg
    for gender in "FM":
        assert np.mean(~(np.abs(pitch[genders == gender]) <= limit)) <= 0.03, gender
