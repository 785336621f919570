"""The camera node's quality gate in the evaluation: applied to cached measurements when the cache is read,
so gate rejections count as failures to acquire and a changed threshold never re-embeds a face.

A small hand-written embedder stands in for insightface (it counts its calls); the images, the quality
measurements (`lfr.adapters.face_quality.measure`), the gate, the SQLite cache and the FTA table are real.
"""

from __future__ import annotations

import json
import sqlite3

import cv2
import numpy as np
import pytest

from evaluation.analysis import failure_to_acquire
from evaluation.config import QualityGateConfig
from evaluation.datasets import ManifestColumns, ManifestDataset
from evaluation.extraction import EmbeddingCache, ExtractionSettings, embed_manifest
from lfr.adapters.camera.config import GateSettings
from lfr.adapters.embedder import DetectedFace
from lfr.adapters.face_quality import MEASURES_VERSION
from lfr.domain.quality import QualityPolicy

# insightface's ArcFace template (112 x 112): a frontal face's five keypoints.
TEMPLATE = np.array(
    [[38.29, 51.70], [73.53, 51.50], [56.03, 71.74], [41.55, 92.37], [70.73, 92.20]], dtype=np.float32
)
SETTINGS = ExtractionSettings(det_size=256, det_threshold=0.5, batch_size=4)


class CountingEmbedder:
    """Finds one frontal face filling each image; its 'embedding' is the mean colour, so it is checkable."""

    model_id = "counting@1"
    dimension = 3

    def __init__(self) -> None:
        self.detections = 0
        self.embedded = 0

    def detect(self, image_bgr, max_faces=0):
        self.detections += 1
        side = image_bgr.shape[0]
        return [DetectedFace(np.array([0, 0, side, side], np.float32), TEMPLATE * side / 112, 0.9)]

    def align(self, image_bgr, face):
        return cv2.resize(image_bgr, (112, 112))

    def embed_aligned(self, aligned_faces):
        self.embedded += len(aligned_faces)
        means = np.array([face.reshape(-1, 3).mean(axis=0) + 1 for face in aligned_faces], np.float32)
        return means / np.linalg.norm(means, axis=1, keepdims=True)


@pytest.fixture
def dataset(tmp_path):
    """Six 160 px 'faces': three sharp (a fine checkerboard), three blurred flat grey; groups F and M."""
    rng = np.random.default_rng(0)
    rows = ["path,identity,gender"]
    for i in range(6):
        if i % 2 == 0:
            board = (np.indices((160, 160)).sum(axis=0) // 4 % 2 * 200).astype(np.uint8)
            image = np.dstack([board, board, np.full_like(board, 40 * i)])
        else:
            image = cv2.GaussianBlur(rng.integers(100, 110, (160, 160, 3), dtype=np.uint8), (31, 31), 0)
        cv2.imwrite(str(tmp_path / f"{i}.png"), image)
        rows.append(f"{i}.png,person{i // 2},{'F' if i < 3 else 'M'}")
    (tmp_path / "manifest.csv").write_text("\n".join(rows) + "\n")
    columns = ManifestColumns(attributes={"gender": "gender"})
    return ManifestDataset("faces", tmp_path, columns=columns)


def run(dataset, cache_dir, policy):
    embedder = CountingEmbedder()
    cache = EmbeddingCache(cache_dir)
    try:
        embedded = embed_manifest(dataset, embedder, SETTINGS, cache, policy)
    finally:
        cache.close()
    return embedded, embedder


def test_a_gate_rejection_counts_as_failure_to_acquire_with_its_reason_per_group(dataset, tmp_path):
    embedded, _ = run(dataset, tmp_path / "cache", QualityPolicy())
    assert embedded.acquired.tolist() == [True, False, True, False, True, False]
    assert embedded.failure_reasons[1] == "quality:blurry"
    assert not embedded.vectors[1].any()  # a rejected face is never searched
    groups = {(g.attribute, g.group): g for g in failure_to_acquire(embedded, ["gender"], [])}
    assert (groups["all", "all"].rate.errors, groups["all", "all"].rate.searches) == (3, 6)
    female, male = groups["gender", "F"], groups["gender", "M"]
    assert (female.rate.errors, female.rate.searches, female.reasons) == (1, 3, {"quality:blurry": 1})
    assert (male.rate.errors, male.rate.searches, male.reasons) == (2, 3, {"quality:blurry": 2})


def test_changing_the_gate_policy_reads_the_cache_and_embeds_nothing(dataset, tmp_path):
    strict, first = run(dataset, tmp_path / "cache", QualityPolicy())
    assert (first.detections, first.embedded) == (6, 6)  # gated-out faces are embedded too, once
    lenient, second = run(dataset, tmp_path / "cache", QualityPolicy(min_sharpness=0.0))
    ungated, third = run(dataset, tmp_path / "cache", None)
    assert (second.detections, second.embedded, third.detections, third.embedded) == (0, 0, 0, 0)
    assert lenient.acquired.all()
    assert ungated.acquired.all()
    np.testing.assert_array_equal(lenient.vectors[strict.acquired], strict.vectors[strict.acquired])
    too_small, _ = run(dataset, tmp_path / "cache", QualityPolicy(min_face_px=500))
    assert set(too_small.failure_reasons) == {"quality:too_small"}


def test_a_version_1_cache_keeps_its_embeddings_and_is_only_measured(dataset, tmp_path):
    _, fresh = run(dataset, tmp_path / "reference", None)
    old = tmp_path / "old"
    old.mkdir()
    db = sqlite3.connect(old / "embeddings.sqlite")
    db.execute(
        "CREATE TABLE embedding (content_sha256 TEXT, pipeline TEXT, failure TEXT, vector BLOB, "
        "PRIMARY KEY (content_sha256, pipeline))"
    )
    reference = sqlite3.connect(tmp_path / "reference" / "embeddings.sqlite")
    marker = np.array([0.0, 0.6, 0.8], np.float32)  # not what CountingEmbedder would compute
    digests = [d for (d,) in reference.execute("SELECT content_sha256 FROM embedding ORDER BY rowid")]
    # v1 keyed rows by gate; a gated row never embedded the face it rejected, so it cannot be reused
    db.execute(
        "INSERT INTO embedding VALUES (?, ?, 'quality:blurry', NULL)",
        (digests[0], "counting@1|det256@0.5|gate:camera|central-largest"),
    )
    for digest in digests[1:]:
        db.execute(
            "INSERT INTO embedding VALUES (?, ?, '', ?)",
            (digest, "counting@1|det256@0.5|gate:none|central-largest", marker.tobytes()),
        )
    db.commit()
    db.close()
    embedded, embedder = run(dataset, old, QualityPolicy(min_sharpness=0.0))
    assert (embedder.detections, embedder.embedded) == (6, 1)  # all measured, only the gated one embedded
    assert embedded.acquired.all()
    np.testing.assert_array_equal(embedded.vectors[1:], np.tile(marker, (5, 1)))
    assert not np.allclose(embedded.vectors[0], marker)
    _, again = run(dataset, old, QualityPolicy())
    assert (again.detections, again.embedded) == (0, 0)
    assert fresh.embedded == 6


def test_the_default_gate_is_the_camera_nodes_and_its_fields_can_be_overridden():
    assert QualityGateConfig().quality_policy() == GateSettings().policy() == QualityPolicy()
    assert QualityGateConfig.model_validate("none").quality_policy() is None
    tuned = QualityGateConfig.model_validate({"kind": "camera", "min_sharpness": 12, "max_abs_yaw_deg": 30})
    assert tuned.quality_policy() == QualityPolicy(min_sharpness=12, max_abs_yaw_deg=30)
    assert tuned.describe() == "camera node default with min_sharpness=12, max_abs_yaw_deg=30"
    with pytest.raises(ValueError, match="min_sharpnes"):
        QualityGateConfig.model_validate({"min_sharpnes": 12})


def test_measurements_by_an_older_face_quality_are_taken_again_without_re_embedding(dataset, tmp_path):
    first, _ = run(dataset, tmp_path / "cache", QualityPolicy())
    db = sqlite3.connect(tmp_path / "cache" / "embeddings.sqlite")
    rows = db.execute("SELECT content_sha256, quality FROM embedding").fetchall()
    for digest, quality in rows:
        stale = json.loads(quality)
        assert stale.pop("measures") == MEASURES_VERSION
        stale["yaw_deg"] = 44.0  # what the saturating version 1 said of a profile face
        db.execute("UPDATE embedding SET quality = ? WHERE content_sha256 = ?", (json.dumps(stale), digest))
    db.commit()
    db.close()
    again, embedder = run(dataset, tmp_path / "cache", QualityPolicy())
    assert (embedder.detections, embedder.embedded) == (6, 0)
    assert again.failure_reasons == first.failure_reasons
    np.testing.assert_array_equal(again.vectors, first.vectors)
    _, third = run(dataset, tmp_path / "cache", QualityPolicy())
    assert (third.detections, third.embedded) == (0, 0)
