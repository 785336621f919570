from __future__ import annotations

import dataclasses
import math

import pytest

from lfr.domain.observation import FaceQuality
from lfr.domain.quality import GateReason, QualityPolicy, gate, quality_score

GOOD = FaceQuality(
    detector_score=0.9,
    face_width_px=90,
    face_height_px=110,
    interocular_px=40,
    sharpness=150,
    yaw_deg=5,
    pitch_deg=-4,
)
POLICY = QualityPolicy()


def test_a_good_face_passes() -> None:
    assert gate(GOOD, POLICY) is None


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"face_width_px": 30}, GateReason.TOO_SMALL),
        ({"face_height_px": 30}, GateReason.TOO_SMALL),
        ({"interocular_px": 12}, GateReason.EYES_TOO_CLOSE),
        ({"detector_score": 0.4}, GateReason.LOW_SCORE),
        ({"sharpness": 5}, GateReason.BLURRY),
        ({"yaw_deg": -60}, GateReason.YAW),
        ({"yaw_deg": 60}, GateReason.YAW),
        ({"pitch_deg": 50}, GateReason.PITCH),
        ({"sharpness": math.nan}, GateReason.BLURRY),
    ],
)
def test_each_threshold_rejects_with_its_own_reason(change: dict[str, float], reason: GateReason) -> None:
    assert gate(dataclasses.replace(GOOD, **change), POLICY) is reason


def test_thresholds_are_configurable() -> None:
    lenient = QualityPolicy(min_face_px=10, min_interocular_px=5, min_sharpness=1, max_abs_yaw_deg=80)
    poor = dataclasses.replace(GOOD, face_width_px=20, interocular_px=8, sharpness=3, yaw_deg=70)
    assert gate(poor, POLICY) is not None
    assert gate(poor, lenient) is None


def test_score_prefers_frontal_larger_sharper_faces() -> None:
    turned = dataclasses.replace(GOOD, yaw_deg=40)
    smaller = dataclasses.replace(GOOD, interocular_px=22)
    blurrier = dataclasses.replace(GOOD, sharpness=40)
    for worse in (turned, smaller, blurrier):
        assert quality_score(worse) < quality_score(GOOD)
