"""A small REAL evaluation: LFW and UTKFace subsets through the camera node's embedder and lfr's matcher."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml

from evaluation.config import load_eval_config
from evaluation.runner import run_evaluation

pytestmark = pytest.mark.models

ROOT = Path(__file__).resolve().parents[2]
DATASETS = Path(os.environ.get("LFR_TEST_DATASETS", ROOT.parent / "shared" / "datasets"))
MODEL_ROOT = Path(os.environ.get("LFR_MODEL_ROOT", ROOT.parent / "shared"))
MODEL_PACK = os.environ.get("LFR_MODEL_PACK", "buffalo_sc_int8")


@pytest.fixture
def small_config(tmp_path):
    if not (DATASETS / "lfw" / "manifest.csv").is_file() or not (MODEL_ROOT / "models" / MODEL_PACK).is_dir():
        pytest.skip("needs LFR_TEST_DATASETS (lfw, utkface) and LFR_MODEL_ROOT/LFR_MODEL_PACK")
    config = yaml.safe_load((ROOT / "evaluation" / "configs" / "dev.yaml").read_text())
    config["name"] = "real-smoke"
    config["output_dir"] = str(tmp_path / "report")
    config["cache_dir"] = str(tmp_path / "cache")
    config["model"] |= {"intra_op_threads": 1, "root": str(MODEL_ROOT), "pack": MODEL_PACK}
    config["datasets"][0]["root"] = str(DATASETS / "lfw")
    config["datasets"][0]["limit"] = 200  # 100 identities, 25 of them with 2+ images
    config["datasets"][1]["root"] = str(DATASETS / "utkface")
    config["datasets"][1]["limit"] = 80
    config["protocol"]["watchlist_sizes"] = [20, 60]
    config["thresholds"] = [0.2, 0.3, 0.4, 0.5]
    config["statistics"]["bootstrap_samples"] = 100
    config["audit"]["exclusions"] = None  # dev.yaml's reviewed pairs: relative to its own folder
    config["scaling"] = {"sizes": [20, 60, 200], "draws": 2}  # 200: beyond the 100 identities, synthetic
    config["fusion_study"] = None  # needs people with 4+ images: tests/evaluation/test_fusion_study.py
    path = tmp_path / "small.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_small_real_run_writes_a_report_with_sensible_rates(small_config):
    config = load_eval_config(small_config)
    result = run_evaluation(config, small_config.read_text())
    html = result.paths["html"].read_text()
    assert "NPL-style table" in html
    assert "w600k_mbf" in html
    document = json.loads(result.paths["json"].read_text())
    assert {d["name"]: d["images"] for d in document["datasets"]} == {"lfw": 200, "utkface": 80}
    lfw = next(d for d in document["datasets"] if d["name"] == "lfw")
    assert lfw["acquired"] >= 190  # pre-cropped faces: the detector finds and the camera gate passes most
    assert document["quality_gate"]["kind"] == "camera"  # the default: the camera node's gate
    assert document["quality_gate"]["policy"]["min_sharpness"] == 30
    small = document["watchlists"][0]
    assert small["mated_identities"] == 20
    assert small["rank1_identification_rate"] > 0.8  # the shared pack separates LFW pairs well
    rows = {r["threshold"]: r for r in small["thresholds"]}
    assert rows[0.2]["fpir"]["value"] > rows[0.5]["fpir"]["value"]
    assert rows[0.5]["fpir"]["value"] <= 0.02  # different-person scores rarely reach 0.5 on this model
    # the audit ran: pairs to review name a probe image and a listed identity with its enrolled image
    pairs = document["audit"]["watchlists"][-1]["pairs"]
    assert pairs
    assert pairs[0]["listed_image"][0] == "lfw"
    assert "data:image/jpeg;base64," in html  # both images of a pair, side by side
    assert document["scaling"][-1]["synthetic_filler"] > 0
    # a rerun is served from the embedding cache (same fingerprint, no model work needed for the data)
    again = run_evaluation(config, small_config.read_text())
    assert (
        json.loads(again.paths["json"].read_text())["dataset_fingerprint"] == document["dataset_fingerprint"]
    )


def test_the_camera_gate_rejects_faces_of_the_real_model_as_failures_to_acquire(small_config, tmp_path):
    from evaluation.config import build_manifest_dataset
    from evaluation.extraction import EmbeddingCache, ExtractionSettings, embed_manifest
    from lfr.adapters.embedder import InsightFaceEmbedder
    from lfr.domain.quality import QualityPolicy

    config = load_eval_config(small_config)
    spec = config.datasets[1].model_copy(update={"limit": 12})
    dataset = build_manifest_dataset(config, spec)
    embedder = InsightFaceEmbedder(config.model)
    cache = EmbeddingCache(tmp_path / "gate-cache")
    settings = ExtractionSettings(config.model.det_size, config.model.det_threshold)
    camera = embed_manifest(dataset, embedder, settings, cache, QualityPolicy())
    # UTKFace's crops are 200 px faces: the camera's default gate passes most of them
    assert camera.acquired.sum() >= 8
    assert all(r == "" or r.startswith("quality:") for r in camera.failure_reasons)
    # no face is smaller than 1,000 px: every one fails, served from the cache's measurements
    huge = embed_manifest(dataset, embedder, settings, cache, QualityPolicy(min_face_px=1000))
    cache.close()
    assert not huge.acquired.any()
    assert set(huge.failure_reasons) == {"quality:too_small"}
