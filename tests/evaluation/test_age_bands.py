"""Age bands: an attribute derived from integer ages in a manifest, reported per group (non-mated)."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from evaluation.analysis import StatisticsSettings, analyse
from evaluation.config import ConfigError, build_manifest_dataset, load_eval_config
from evaluation.datasets import UNKNOWN, AgeBands, EmbeddedSet, ManifestColumns, ManifestDataset
from evaluation.protocol import OpenSetProtocol, Role

BANDS = AgeBands("age")


@pytest.mark.parametrize(
    ("raw", "band"),
    [
        ("0", "0-17"),
        ("17", "0-17"),
        ("18", "18-29"),
        ("29", "18-29"),
        ("30", "30-44"),
        ("44", "30-44"),
        ("45", "45-59"),
        ("59", "45-59"),
        ("60", "60+"),
        ("116", "60+"),
        (" 42 ", "30-44"),
        ("", UNKNOWN),
        ("forty", UNKNOWN),
        ("23.5", UNKNOWN),
        ("-1", UNKNOWN),
    ],
)
def test_ages_fall_in_their_band_and_anything_else_is_unknown(raw, band):
    assert BANDS.band(raw) == band


def test_bands_are_labelled_from_their_lower_bounds():
    assert BANDS.labels() == ("0-17", "18-29", "30-44", "45-59", "60+")
    assert AgeBands("age", (16, 65)).labels() == ("16-64", "65+")
    assert AgeBands("age", (16, 65)).band("15") == UNKNOWN  # below the first band: not labelled
    with pytest.raises(ValueError, match="increasing"):
        AgeBands("age", (0, 30, 18))


def write_manifest(folder, ages):
    lines = ["path,age,gender"] + [f"{i}.jpg,{age},{'F' if i % 2 else 'M'}" for i, age in enumerate(ages)]
    (folder / "manifest.csv").write_text("\n".join(lines) + "\n")


def test_a_manifest_with_age_bands_derives_the_attribute_and_its_fingerprint_covers_them(tmp_path):
    write_manifest(tmp_path, [3, 25, 61, ""])
    plain = ManifestDataset("crowd", tmp_path, columns=ManifestColumns(identity=None))
    banded = ManifestDataset(
        "crowd", tmp_path, columns=ManifestColumns(identity=None, age_bands=AgeBands("age"))
    )
    assert [s.attributes.get("age") for s in banded.samples()] == ["0-17", "18-29", "60+", UNKNOWN]
    assert "age" not in plain.samples()[0].attributes
    assert banded.fingerprint() != plain.fingerprint()
    other = ManifestDataset(
        "crowd", tmp_path, columns=ManifestColumns(identity=None, age_bands=AgeBands("age", (0, 40)))
    )
    assert other.fingerprint() != banded.fingerprint()


def config_with(tmp_path, age_bands, attributes=None):
    write_manifest(tmp_path, [10, 20])
    columns = {"identity": None, "attributes": attributes or {"gender": "gender"}, "age_bands": age_bands}
    data = {"datasets": [{"name": "crowd", "role": "identities", "root": str(tmp_path), "columns": columns}]}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_the_dataset_config_turns_on_age_bands(tmp_path):
    config = load_eval_config(config_with(tmp_path, {"column": "age", "lower_bounds": [0, 18]}))
    dataset = build_manifest_dataset(config, config.datasets[0])
    assert [s.attributes["age"] for s in dataset.samples()] == ["0-17", "18+"]


@pytest.mark.parametrize(
    ("bands", "attributes", "message"),
    [
        ({"column": "age", "lower_bounds": [18, 18]}, None, "increasing"),
        ({"column": "age", "lower_bounds": []}, None, "lower_bounds"),
        ({"column": "age"}, {"age": "age"}, "also a plain attribute"),
    ],
)
def test_bad_age_band_configs_are_refused_clearly(tmp_path, bands, attributes, message):
    with pytest.raises(ConfigError, match=message):
        load_eval_config(config_with(tmp_path, bands, attributes))


def test_non_mated_searches_are_reported_per_age_band(tmp_path):
    """Passers-by of one band look like a listed person: that band alone carries the false positives."""
    rng = np.random.default_rng(5)
    listed = rng.normal(size=(40, 128))
    listed /= np.linalg.norm(listed, axis=1, keepdims=True)
    ages = [8] * 60 + [35] * 60 + [70] * 60
    write_manifest(tmp_path, ages)
    crowd = ManifestDataset(
        "crowd", tmp_path, columns=ManifestColumns(identity=None, age_bands=AgeBands("age"))
    )
    faces = rng.normal(size=(len(ages), 128))
    faces[:60] = listed[0] + 0.01 * rng.normal(size=(60, 128))  # every child resembles listed person 0
    faces /= np.linalg.norm(faces, axis=1, keepdims=True)
    n = len(ages)
    passers = EmbeddedSet("crowd", "crowd:fp", "m", tuple(crowd.samples()), faces.astype(np.float32),
                          np.ones(n, bool), ("",) * n)  # fmt: skip
    ids = EmbeddedSet(
        "ids",
        "ids:fp",
        "m",
        tuple(s for i in range(40) for s in [_person(i), _person(i)]),
        np.repeat(listed, 2, axis=0).astype(np.float32),
        np.ones(80, bool),
        ("",) * 80,
    )
    protocol = OpenSetProtocol([Role(ids, True), Role(passers, False)], ["age"], seed=1)
    analysis = analyse(protocol.run(40), [0.5], ["age"], StatisticsSettings(bootstrap_samples=0))
    (row,) = analysis.rows
    fpir = {g.group: (g.fpir.errors, g.fpir.searches) for g in row.groups if g.attribute == "age"}
    # listed people's images carry no age: their (mated) searches fall in the unknown group, never tested
    assert fpir == {"0-17": (60, 60), "30-44": (0, 60), "60+": (0, 60), UNKNOWN: (0, 0)}
    assert row.significant_by_rate["fpir"]  # the planted age differential is found


def _person(i):
    from evaluation.datasets import Sample

    return Sample(f"p{i}", f"p{i}", {})
