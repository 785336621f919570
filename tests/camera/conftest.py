"""Real models and real LFW images for the camera and enrolment tests (never committed: read from
LFR_MODEL_ROOT / LFR_TEST_DATASETS, default ../shared next to the repository)."""

from __future__ import annotations

import csv
import os
from collections import defaultdict
from pathlib import Path

import pytest

from lfr.adapters.embedder import InsightFaceEmbedder, ModelSettings

REPO = Path(__file__).resolve().parents[2]
DEFAULT_SHARED = REPO.parent / "shared"


def model_settings(**overrides: object) -> ModelSettings:
    root = os.environ.get("LFR_MODEL_ROOT") or str(DEFAULT_SHARED)
    pack = os.environ.get("LFR_MODEL_PACK") or "buffalo_sc_int8"
    return ModelSettings(root=root, pack=pack, intra_op_threads=1, **overrides)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def embedder() -> InsightFaceEmbedder:
    settings = model_settings()
    folder = Path(settings.root or "") / "models" / settings.resolved_pack()
    if not folder.is_dir():
        pytest.skip(f"model pack not found at {folder}: set LFR_MODEL_ROOT and LFR_MODEL_PACK")
    return InsightFaceEmbedder(settings)


class Lfw:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.by_identity: dict[str, list[Path]] = defaultdict(list)
        with (root / "manifest.csv").open(newline="") as handle:
            for row in csv.DictReader(handle):
                self.by_identity[row["identity"]].append(root / row["path"])

    def identities_with(self, at_least: int) -> list[str]:
        return sorted(i for i, paths in self.by_identity.items() if len(paths) >= at_least)


@pytest.fixture(scope="session")
def lfw() -> Lfw:
    datasets = Path(os.environ.get("LFR_TEST_DATASETS") or DEFAULT_SHARED / "datasets")
    root = datasets / "lfw"
    if not (root / "manifest.csv").is_file():
        pytest.skip(f"LFW not found at {root}: set LFR_TEST_DATASETS to the folder holding lfw/")
    return Lfw(root)
