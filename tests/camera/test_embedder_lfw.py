"""The real recogniser on real LFW faces separates same-person from different-person pairs."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from lfr.adapters.embedder import InsightFaceEmbedder
from lfr.adapters.face_quality import measure
from lfr.domain.quality import QualityPolicy, gate
from tests.camera.conftest import Lfw

pytestmark = pytest.mark.models


def central_embedding(embedder: InsightFaceEmbedder, path: object) -> np.ndarray:
    image = cv2.imread(str(path))
    faces = embedder.detect(image)
    assert faces, f"no face in {path}"
    centre = np.array([image.shape[1] / 2, image.shape[0] / 2])
    face = min(faces, key=lambda f: float(np.linalg.norm((f.bbox[:2] + f.bbox[2:]) / 2 - centre)))
    return embedder.embed_aligned([embedder.align(image, face)])[0]


def test_same_person_pairs_score_clearly_above_different_person_pairs(
    embedder: InsightFaceEmbedder, lfw: Lfw
) -> None:
    rng = np.random.default_rng(2024)
    people = lfw.identities_with(2)
    chosen = [people[i] for i in rng.choice(len(people), 60, replace=False)]
    mated = []
    for identity in chosen[:30]:
        a, b = lfw.by_identity[identity][:2]
        mated.append(float(central_embedding(embedder, a) @ central_embedding(embedder, b)))
    firsts = [central_embedding(embedder, lfw.by_identity[i][0]) for i in chosen[30:]]
    nonmated = [float(firsts[i] @ firsts[(i + 1) % 30]) for i in range(30)]
    assert np.mean(mated) - np.mean(nonmated) > 0.35
    assert np.median(mated) > 0.4
    assert max(nonmated) < 0.35
    # Most mated pairs clear the worst non-mated one; LFW has a few hard pairs (age, profile).
    assert np.mean(np.array(mated) > max(nonmated)) >= 0.9
    assert embedder.model_id.startswith("w600k_mbf_int8_quint8@sha256:")
    assert embedder.dimension == 512


def test_lfw_portraits_pass_the_default_quality_gate(embedder: InsightFaceEmbedder, lfw: Lfw) -> None:
    paths = [lfw.by_identity[i][0] for i in lfw.identities_with(3)[:10]]
    passed = 0
    for path in paths:
        image = cv2.imread(str(path))
        face = max(embedder.detect(image), key=lambda f: f.width * f.height)
        quality = measure(face, embedder.align(image, face))
        assert abs(quality.yaw_deg) < 60
        passed += gate(quality, QualityPolicy()) is None
    assert passed >= 8
