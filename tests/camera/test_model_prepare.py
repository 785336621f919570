"""`lfr model prepare` on the real pack and real LFW faces: the prepared pack loads like any pack, embeds with
a new model id, agrees with the original face by face, and keeps same-person and different-person apart."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from lfr.adapters.embedder import InsightFaceEmbedder, ModelPackError, ModelSettings
from lfr.adapters.model_graph import GraphRewriteError
from lfr.adapters.model_pack import MANIFEST, PackFormat, PrepareRequest, prepare
from lfr.cli.main import app
from tests.camera.conftest import Lfw, model_settings

pytestmark = pytest.mark.models

CALIBRATION_PEOPLE = 20
PAIRS = 12


def source_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private copy of the shared pack, so the test can see that preparing leaves its source untouched."""
    settings = model_settings()
    source = Path(settings.root or "") / "models" / settings.resolved_pack()
    if not source.is_dir():
        pytest.skip(f"model pack not found at {source}")
    root = tmp_path_factory.mktemp("source")
    shutil.copytree(source, root / "models" / "original")
    return root


def digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


@pytest.fixture(scope="module")
def people(lfw: Lfw) -> list[str]:
    everyone = lfw.identities_with(2)
    return [
        everyone[i] for i in np.linspace(0, len(everyone) - 1, CALIBRATION_PEOPLE + 2 * PAIRS).astype(int)
    ]


@pytest.fixture(scope="module")
def calibration(tmp_path_factory: pytest.TempPathFactory, lfw: Lfw, people: list[str]) -> Path:
    folder = tmp_path_factory.mktemp("calibration")
    for identity in people[:CALIBRATION_PEOPLE]:
        image = lfw.by_identity[identity][0]
        shutil.copyfile(image, folder / image.name)
    return folder


@pytest.fixture(scope="module")
def original_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return source_root(tmp_path_factory)


def prepared_in(root: Path, calibration: Path, out: Path, chosen: PackFormat) -> Path:
    request = PrepareRequest(
        source=ModelSettings(root=str(root), pack="original"),
        out_root=out,
        name=None,
        format=chosen,
        calibration=calibration,
        timing_runs=3,
    )
    return prepare(request).folder


@pytest.fixture(scope="module")
def packs(
    tmp_path_factory: pytest.TempPathFactory, original_root: Path, calibration: Path
) -> dict[PackFormat, Path]:
    before = digests(original_root / "models" / "original")
    out = tmp_path_factory.mktemp("prepared")
    built = {f: prepared_in(original_root, calibration, out, f) for f in (PackFormat.FP32, PackFormat.QDQ)}
    assert digests(original_root / "models" / "original") == before
    return built


def loaded(folder: Path) -> InsightFaceEmbedder:
    return InsightFaceEmbedder(
        ModelSettings(root=str(folder.parents[1]), pack=folder.name, intra_op_threads=1)
    )


def face_embedding(embedder: InsightFaceEmbedder, path: Path) -> np.ndarray:
    image = cv2.imread(str(path))
    faces = embedder.detect(image)
    assert faces, f"no face in {path}"
    largest = max(faces, key=lambda f: f.width * f.height)
    return embedder.embed_aligned([embedder.align(image, largest)])[0]


@pytest.mark.parametrize("chosen", [PackFormat.FP32, PackFormat.QDQ])
def test_prepared_pack_loads_like_any_pack_and_embeds_with_a_new_model_id(
    packs: dict[PackFormat, Path], embedder: InsightFaceEmbedder, chosen: PackFormat
) -> None:
    from insightface.app import FaceAnalysis

    folder = packs[chosen]
    assert folder.name == f"original-{chosen}"
    analysis = FaceAnalysis(
        name=str(folder), allowed_modules=["detection", "recognition"], providers=["CPUExecutionProvider"]
    )
    assert set(analysis.models) == {"detection", "recognition"}
    prepared = loaded(folder)
    assert prepared.model_id.startswith(f"w600k_mbf_int8_quint8-{chosen}@sha256:")
    assert prepared.model_id != embedder.model_id
    assert prepared.dimension == embedder.dimension == 512
    assert prepared.input_normalisation == embedder.input_normalisation


@pytest.mark.parametrize("chosen", [PackFormat.FP32, PackFormat.QDQ])
def test_prepared_recogniser_agrees_with_the_original_and_keeps_people_apart(
    packs: dict[PackFormat, Path],
    embedder: InsightFaceEmbedder,
    lfw: Lfw,
    people: list[str],
    chosen: PackFormat,
) -> None:
    prepared = loaded(packs[chosen])
    held_out = people[CALIBRATION_PEOPLE:]
    images = [lfw.by_identity[p][i] for p in held_out[:PAIRS] for i in (0, 1)]
    images += [lfw.by_identity[p][0] for p in held_out[PAIRS:]]
    original = np.stack([face_embedding(embedder, p) for p in images])
    rewritten = np.stack([face_embedding(prepared, p) for p in images])
    assert np.all(np.sum(original * rewritten, axis=1) > 0.98)

    def separation(e: np.ndarray) -> tuple[float, float]:
        mated = [float(e[2 * i] @ e[2 * i + 1]) for i in range(PAIRS)]
        strangers = e[2 * PAIRS :]
        nonmated = [float(strangers[i] @ strangers[(i + 1) % PAIRS]) for i in range(PAIRS)]
        return float(np.median(mated)), max(nonmated)

    (mated_before, worst_before), (mated_after, worst_after) = separation(original), separation(rewritten)
    assert abs(mated_after - mated_before) < 0.03
    assert abs(worst_after - worst_before) < 0.03
    assert mated_after - worst_after > 0.1


def test_manifest_names_the_source_method_and_calibration(
    packs: dict[PackFormat, Path], original_root: Path, calibration: Path
) -> None:
    manifest = json.loads((packs[PackFormat.QDQ] / MANIFEST).read_text())
    source = original_root / "models" / "original" / "w600k_mbf_int8_quint8.onnx"
    assert manifest["source_pack"] == "original"
    assert manifest["source_sha256"] == hashlib.sha256(source.read_bytes()).hexdigest()
    assert manifest["format"] == "qdq"
    assert "quantize_static" in manifest["method"]
    assert manifest["calibration"]["images"] == CALIBRATION_PEOPLE
    assert len(manifest["calibration"]["digest_sha256"]) == 64
    assert manifest["model_id"] == loaded(packs[PackFormat.QDQ]).model_id
    assert manifest["created_by"].startswith("lfr ")
    assert sorted(p.name for p in packs[PackFormat.QDQ].iterdir()) == [
        "det_500m.onnx",
        MANIFEST,
        "w600k_mbf_int8_quint8-qdq.onnx",
    ]


def test_auto_times_both_and_keeps_one_that_agrees(
    original_root: Path, calibration: Path, tmp_path: Path
) -> None:
    result = CliRunner().invoke(
        app,
        [
            "model", "prepare", "--model-root", str(original_root), "--pack", "original",
            "--calibration", str(calibration), "--out-root", str(tmp_path), "--timing-runs", "3",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "fp32:" in result.output
    assert "qdq:" in result.output
    assert "re-enrolled" in result.output
    (kept,) = (tmp_path / "models").iterdir()
    assert kept.name in ("original-fp32", "original-qdq")


def test_a_pack_without_a_recogniser_is_refused(
    original_root: Path, calibration: Path, tmp_path: Path
) -> None:
    shutil.copytree(original_root / "models" / "original", tmp_path / "models" / "detector-only")
    (tmp_path / "models" / "detector-only" / "w600k_mbf_int8_quint8.onnx").unlink()
    request = PrepareRequest(
        ModelSettings(root=str(tmp_path), pack="detector-only"),
        tmp_path / "out",
        None,
        PackFormat.FP32,
        calibration,
    )
    with pytest.raises(ModelPackError, match="lacks a recogniser"):
        prepare(request)
    assert not (tmp_path / "out").exists()


def test_a_corrupt_recogniser_is_named(original_root: Path, calibration: Path, tmp_path: Path) -> None:
    shutil.copytree(original_root / "models" / "original", tmp_path / "models" / "broken")
    recogniser = tmp_path / "models" / "broken" / "w600k_mbf_int8_quint8.onnx"
    recogniser.write_bytes(recogniser.read_bytes()[:5000])
    result = CliRunner().invoke(
        app,
        [
            "model", "prepare", "--model-root", str(tmp_path), "--pack", "broken",
            "--calibration", str(calibration), "--out-root", str(tmp_path / "out"),
        ],
    )  # fmt: skip
    assert result.exit_code == 2
    assert "w600k_mbf_int8_quint8.onnx is not a readable ONNX model" in result.output
    with pytest.raises(GraphRewriteError):
        prepare(
            PrepareRequest(
                ModelSettings(root=str(tmp_path), pack="broken"),
                tmp_path / "out",
                None,
                PackFormat.QDQ,
                calibration,
            )
        )


def test_an_empty_calibration_folder_is_refused(original_root: Path, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    request = PrepareRequest(
        ModelSettings(root=str(original_root), pack="original"),
        tmp_path / "out",
        None,
        PackFormat.FP32,
        tmp_path / "empty",
    )
    with pytest.raises(ModelPackError, match="holds no images"):
        prepare(request)
    assert not (tmp_path / "out").exists()


def test_an_existing_pack_is_not_overwritten(
    packs: dict[PackFormat, Path], original_root: Path, calibration: Path
) -> None:
    before = digests(packs[PackFormat.FP32])
    request = PrepareRequest(
        ModelSettings(root=str(original_root), pack="original"),
        packs[PackFormat.FP32].parents[1],
        None,
        PackFormat.FP32,
        calibration,
    )
    with pytest.raises(ModelPackError, match="already exists"):
        prepare(request)
    assert digests(packs[PackFormat.FP32]) == before
