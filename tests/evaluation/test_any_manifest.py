"""Any folder of images with a manifest: greyscale, PGM and tiny images, missing and unreadable files, no
demographic columns, one-image identities, blank identities, labels with commas or unicode. Each gives a
clear failure-to-acquire reason or a clear error, never a crash."""

from __future__ import annotations

import csv
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from evaluation.datasets import ManifestColumns, ManifestDataset, ManifestError
from evaluation.extraction import image_traits
from lfr.cli.main import app

ROOT = Path(__file__).resolve().parents[2]
DATASETS = Path(os.environ.get("LFR_TEST_DATASETS", ROOT.parent / "shared" / "datasets"))
MODEL_ROOT = Path(os.environ.get("LFR_MODEL_ROOT", ROOT.parent / "shared"))
MODEL_PACK = os.environ.get("LFR_MODEL_PACK", "buffalo_sc_int8")


def write_manifest(folder: Path, header: list[str], rows: list[list[str]]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "manifest.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return folder / "manifest.csv"


def test_duplicate_paths_are_refused_with_the_path_named(tmp_path):
    write_manifest(tmp_path, ["path", "identity"], [["a.jpg", "x"], ["b.jpg", "y"], ["a.jpg", "z"]])
    with pytest.raises(ManifestError, match=r"lists a\.jpg twice"):
        ManifestDataset("d", tmp_path)


def test_a_duplicate_path_fails_the_cli_run_clearly(tmp_path):
    write_manifest(tmp_path / "data", ["path", "identity"], [["a.jpg", "x"], ["a.jpg", "x"]])
    config = tmp_path / "c.yaml"
    config.write_text(
        yaml.safe_dump({"datasets": [{"name": "d", "role": "identities", "root": str(tmp_path / "data")}]})
    )
    result = CliRunner().invoke(app, ["eval", "run", str(config), "--quiet"])
    assert result.exit_code == 2
    assert "lists a.jpg twice" in result.output
    assert "Traceback" not in result.output


def test_blank_identities_commas_and_unicode_in_labels(tmp_path):
    write_manifest(
        tmp_path,
        ["path", "identity", "region"],
        [
            ["a.jpg", "José_Ñúñez", "Île-de-France"],
            ["b.jpg", "  ", "north, south"],  # blank identity; disagreeing labels
            ["c.jpg", "", "東京"],
        ],
    )
    dataset = ManifestDataset("d", tmp_path, columns=ManifestColumns(attributes={"region": "region"}))
    a, b, c = dataset.samples()
    assert a.identity == "José_Ñúñez"
    assert a.attributes["region"] == "Île-de-France"
    assert b.identity is None  # no identity: searched as an unnamed passer-by, never listed
    assert b.attributes["region"] == ""  # a comma marks disagreeing annotators: unknown
    assert c.identity is None
    assert c.attributes["region"] == "東京"


def test_image_traits_tell_greyscale_from_colour():
    rng = np.random.default_rng(0)
    grey = rng.integers(0, 255, size=(50, 60), dtype=np.uint8)
    assert image_traits(grey) == {"colour": "greyscale", "image_size": "<64 px"}
    assert image_traits(np.dstack([grey, grey, grey]))["colour"] == "greyscale"  # a desaturated JPEG
    colour = rng.integers(0, 255, size=(300, 200, 3), dtype=np.uint8)
    assert image_traits(colour) == {"colour": "colour", "image_size": "128-255 px"}
    assert image_traits(None)["colour"] == "unreadable"


@pytest.mark.models
def test_odd_images_and_manifests_give_clear_failure_reasons_never_a_crash(tmp_path):
    if not (DATASETS / "lfw" / "manifest.csv").is_file() or not (MODEL_ROOT / "models" / MODEL_PACK).is_dir():
        pytest.skip("needs LFR_TEST_DATASETS (lfw, utkface) and LFR_MODEL_ROOT/LFR_MODEL_PACK")
    import cv2

    with (DATASETS / "lfw" / "manifest.csv").open(newline="") as handle:
        lfw = list(csv.DictReader(handle))
    people = {}
    for row in lfw:
        people.setdefault(row["identity"], []).append(row["path"])
    pairs = [paths[:2] for paths in people.values() if len(paths) >= 2][:6]
    data = tmp_path / "odd"
    rows = []
    for n, paths in enumerate(pairs):
        for k, source in enumerate(paths):
            name = f"p{n}_{k}.jpg"
            (data / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(DATASETS / "lfw" / source, data / name)
            rows.append([name, f"person{n}"])
    # a greyscale PGM of a listed person's face: acquired like any other image
    grey = cv2.imread(str(DATASETS / "lfw" / pairs[0][0]), cv2.IMREAD_GRAYSCALE)
    cv2.imwrite(str(data / "p0_grey.pgm"), grey)
    rows.append(["p0_grey.pgm", "person0"])
    cv2.imwrite(str(data / "tiny.png"), cv2.resize(grey, (16, 16)))
    rows.append(["tiny.png", "tiny_person"])
    (data / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    rows.append(["broken.jpg", "broken_person"])
    rows.append(["gone/missing.jpg", "missing_person"])
    cv2.imwrite(str(data / "single.jpg"), cv2.imread(str(DATASETS / "lfw" / pairs[-1][0])))
    rows.append(["single.jpg", "one_image_only"])
    write_manifest(data, ["path", "identity"], rows)  # no demographic columns at all
    config = {
        "name": "odd",
        "output_dir": str(tmp_path / "out"),
        "cache_dir": str(tmp_path / "cache"),
        "model": {"det_size": 256, "intra_op_threads": 1, "root": str(MODEL_ROOT), "pack": MODEL_PACK},
        "datasets": [{"name": "odd", "role": "identities", "root": str(data)}],
        "protocol": {"watchlist_sizes": [4]},
        "attributes": [],
        "intersections": [],
        "thresholds": [0.3, 0.5],
        "statistics": {"bootstrap_samples": 0},
    }
    path = tmp_path / "odd.yaml"
    path.write_text(yaml.safe_dump(config))
    result = CliRunner().invoke(app, ["eval", "run", str(path), "--quiet"])
    assert result.exit_code == 0, result.output
    document = json.loads((tmp_path / "out" / "report.json").read_text())
    fta = {g["group"]: g for g in document["failure_to_acquire"] if g["attribute"] == "all"}
    reasons = fta["all"]["reasons"]
    assert reasons.get("missing") == 1
    assert reasons.get("unreadable") == 1
    assert reasons.get("too_small") == 1
    (dataset,) = document["datasets"]
    assert dataset["images"] == len(rows)
    assert dataset["acquired"] >= len(rows) - 3 - 1  # the three bad files, perhaps one gated face
    # the PGM was acquired and is greyscale; its person has three images, one of them searched for
    shares = document["audit"]["watchlists"][0]["attribute_concentration"]
    assert {x["attribute"] for x in shares} >= {"colour", "image_size", "dataset"}
    html = (tmp_path / "out" / "report.html").read_text()
    assert "missing" in html
    assert "too_small" in html
