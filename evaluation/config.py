"""The evaluation's YAML configuration: which data, protocol and statistics. Parsed once by the CLI."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Literal

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from evaluation.datasets import AgeBands, ManifestColumns, ManifestDataset, SyntheticDataset, SyntheticGroup
from lfr.adapters.camera.config import GateSettings
from lfr.adapters.embedder import ModelSettings
from lfr.domain.quality import QualityPolicy


class ConfigError(ValueError):
    """The evaluation configuration is unreadable or inconsistent."""


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AgeBandsConfig(Section):
    column: str = Field(description="manifest column holding integer ages in years")
    attribute: str = Field(default="age", description="canonical name of the derived attribute")
    lower_bounds: list[int] = Field(
        default=[0, 18, 30, 45, 60],
        min_length=1,
        description="first age of each band; the last band is open-ended (0, 18, 30 -> 0-17, 18-29, 30+)",
    )

    def bands(self) -> AgeBands:
        return AgeBands(self.column, tuple(self.lower_bounds), self.attribute)

    @model_validator(mode="after")
    def _valid_bands(self) -> AgeBandsConfig:
        self.bands()  # raises ValueError on bounds that are not increasing
        return self


class ColumnsConfig(Section):
    path: str = "path"
    identity: str | None = Field(default="identity", description="null: no identities (passers-by only)")
    attributes: dict[str, str] = Field(default_factory=dict, description="canonical name -> manifest column")
    value_maps: dict[str, dict[str, str]] = Field(default_factory=dict)
    multi_value_separator: str | None = Field(
        default=",", description="raw labels holding it (annotators disagreed) count as unknown"
    )
    age_bands: AgeBandsConfig | None = Field(
        default=None, description="derive an age-band attribute from a column of integer ages"
    )

    @model_validator(mode="after")
    def _age_attribute_is_new(self) -> ColumnsConfig:
        if self.age_bands is not None and self.age_bands.attribute in self.attributes:
            raise ValueError(f"age_bands.attribute {self.age_bands.attribute!r} is also a plain attribute")
        return self


class SyntheticGroupConfig(Section):
    attributes: dict[str, str]
    share: float = Field(default=1.0, gt=0)
    impostor_similarity: float = Field(default=0.0, ge=0, lt=1)


class SyntheticConfig(Section):
    groups: list[SyntheticGroupConfig] = Field(min_length=1)
    identities: int = Field(default=200, ge=1)
    images_per_identity: int = Field(default=2, ge=1)
    passers_by: int = Field(default=1000, ge=0)
    dimension: int = Field(default=64, ge=8)
    genuine_similarity: float = Field(default=0.6, gt=0, lt=1)


class DatasetConfig(Section):
    name: str
    role: Literal["identities", "passers_by"] = Field(
        description="identities: watchlist, mated searches and unlisted people; passers_by: non-mated only"
    )
    kind: Literal["manifest", "synthetic"] = "manifest"
    root: str | None = Field(
        default=None, description="image folder; ${ENV} expanded; relative to the config"
    )
    manifest: str = "manifest.csv"
    columns: ColumnsConfig = ColumnsConfig()
    limit: int | None = Field(
        default=None, ge=1, description="use only the first N manifest rows (smoke runs)"
    )
    synthetic: SyntheticConfig | None = None

    @model_validator(mode="after")
    def _kind_matches(self) -> DatasetConfig:
        if self.kind == "manifest" and self.root is None:
            raise ValueError(f"dataset {self.name}: a manifest dataset needs root")
        if self.kind == "synthetic" and self.synthetic is None:
            raise ValueError(f"dataset {self.name}: a synthetic dataset needs a synthetic section")
        return self


class ThresholdGrid(Section):
    start: float = Field(default=0.2, ge=-1, le=1)
    stop: float = Field(default=0.7, ge=-1, le=1)
    step: float = Field(default=0.02, gt=0, le=1)

    def values(self) -> list[float]:
        count = int(np.floor((self.stop - self.start) / self.step + 1e-9)) + 1
        return [round(self.start + i * self.step, 6) for i in range(count)]


class ProtocolConfig(Section):
    watchlist_sizes: list[int] = Field(default=[100, 1000], min_length=1)
    enrolment_images: int = Field(default=1, ge=1, le=10, description="images enrolled per listed identity")
    max_mated_identities: int | None = Field(
        default=None, ge=1, description="cap on listed people searched for"
    )
    synthetic_filler: bool = Field(
        default=False, description="pad the watchlist with synthetic identities when real ones run out"
    )
    max_searches_per_identity: int | None = Field(
        default=None, ge=1, description="cap on searches of one named person (mated or non-mated)"
    )
    rank: int = Field(default=1, ge=1, le=50, description="a mated search hits only at this rank or better")
    top_k: int = Field(default=5, ge=1, le=50, description="candidates returned per search, as the matcher")
    index: str = Field(default="flat", description="search index, as the matcher's matching.index")
    index_params: dict[str, int] = Field(default_factory=dict, description="as matching.index_params")


class StatisticsConfig(Section):
    alpha: float = Field(default=0.05, gt=0, lt=1)
    confidence: float = Field(default=0.95, gt=0, lt=1)
    correction: Literal["holm", "bonferroni", "none"] = "holm"
    min_group_searches: int = Field(default=30, ge=1, description="smaller groups are shown, not tested")
    bootstrap_samples: int = Field(default=1000, ge=0)
    recommend_on: list[Literal["fpir", "fnir"]] = Field(
        default=["fpir"],
        min_length=1,
        description="differentials the recommended threshold must be free of (both are always reported)",
    )
    fpir_ceiling_one_in: float | None = Field(
        default=6000,
        gt=1,
        description="operational ceiling: FPIR's upper confidence bound must be below 1 in this many "
        "passers-by (the NPL's figure for the Met's setting); null: no ceiling",
    )

    @property
    def fpir_ceiling(self) -> float | None:
        return None if self.fpir_ceiling_one_in is None else 1 / self.fpir_ceiling_one_in


class AuditConfig(Section):
    exclusions: str | None = Field(
        default=None, description="reviewed-exclusions CSV (relative to the config); pairs judged same person"
    )
    top_pairs: int = Field(default=100, ge=0, description="list at least this many top non-mated pairs")
    max_pairs: int = Field(default=500, ge=1)
    suspect_score: float | None = Field(
        default=None, description="null: the lower of the median mated score and the operating threshold"
    )
    duplicate_score: float = Field(default=0.8, gt=0, le=1, description="near-duplicate cosine")
    max_duplicates: int = Field(default=200, ge=0)
    thumbnails: bool = Field(default=True, description="embed both images of each listed pair in the HTML")


class ScalingConfig(Section):
    sizes: list[int] = Field(default=[100, 1000, 10000], min_length=1)
    draws: int = Field(default=5, ge=1, description="seeded watchlist draws per size")
    synthetic_filler: bool = Field(
        default=True, description="pad beyond the real identities with synthetic filler (labelled)"
    )


class FusionStudyConfig(Section):
    """The four-way fusion study (issue 10): enrolment {1 image, `enrolment_images` as one mean template}
    x probe {each image searched alone, `probe_samples` images of one person as one track}, on one
    watchlist draw and one non-mated set (evaluation/fusion_study.py; docs/evaluation.md)."""

    enrolment_images: int = Field(
        default=2, ge=2, le=10, description="images fused into each listed person's mean template"
    )
    probe_samples: int = Field(
        default=2, ge=2, le=10, description="images of one person standing in for a track's faces"
    )
    watchlist_size: int | None = Field(
        default=None, ge=1, description="null: the largest of protocol.watchlist_sizes"
    )
    target_fpir: float = Field(default=0.001, gt=0, lt=1, description="TPIR is read at this FPIR")


class QualityGateConfig(GateSettings):
    """`camera`: the camera node's quality gate (its defaults, bounds and field names, from the node's own
    `gate:` settings), with any field overridden here; `none`: every detected face is used."""

    kind: Literal["camera", "none"] = "camera"

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: object) -> object:
        return {"kind": data} if isinstance(data, str) else data

    def quality_policy(self) -> QualityPolicy | None:
        return None if self.kind == "none" else QualityPolicy(**self.model_dump(exclude={"kind"}))

    def describe(self) -> str:
        if self.kind == "none":
            return "none (every detected face is used)"
        changed = self.model_dump(exclude={"kind"}, exclude_defaults=True)
        overrides = ", ".join(f"{k}={v:g}" for k, v in changed.items())
        return "camera node default" + (f" with {overrides}" if overrides else "")


class EvalConfig(Section):
    name: str = "evaluation"
    seed: int = 0
    output_dir: str = "var/eval-reports"
    cache_dir: str = "var/eval-cache"
    model: ModelSettings = ModelSettings(det_size=256)
    quality_gate: QualityGateConfig = Field(
        default=QualityGateConfig(),
        description="camera (default; the camera node's gate, fields overridable) or none",
    )
    datasets: list[DatasetConfig] = Field(min_length=1)
    protocol: ProtocolConfig = ProtocolConfig()
    thresholds: ThresholdGrid | list[float] = ThresholdGrid()
    attributes: list[str] = Field(default=["gender", "race"])
    intersections: list[list[str]] = Field(default=[["race", "gender"]])
    statistics: StatisticsConfig = StatisticsConfig()
    audit: AuditConfig = AuditConfig()
    scaling: ScalingConfig | None = Field(
        default=None, description="watchlist-size scaling over several seeded draws; null: not run"
    )
    fusion_study: FusionStudyConfig | None = Field(
        default=None, description="enrolment x probe fusion, four variants on one draw; null: not run"
    )
    base_dir: str = Field(default=".", description="set by the loader: the config file's folder")

    @model_validator(mode="after")
    def _has_identities(self) -> EvalConfig:
        if not any(d.role == "identities" for d in self.datasets):
            raise ValueError("at least one dataset must have role: identities (the watchlist's source)")
        return self

    def threshold_values(self) -> list[float]:
        values = self.thresholds.values() if isinstance(self.thresholds, ThresholdGrid) else self.thresholds
        return sorted(set(values))

    def resolve(self, path: str) -> Path:
        expanded = Path(os.path.expandvars(os.path.expanduser(path)))
        if "$" in str(expanded):
            raise ConfigError(f"unset environment variable in path {path!r}")
        return expanded if expanded.is_absolute() else Path(self.base_dir) / expanded


def load_eval_config(path: Path) -> EvalConfig:
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a mapping at the top level")
    data.setdefault("base_dir", str(path.resolve().parent))
    try:
        return EvalConfig.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"invalid evaluation config {path}: {problems}") from exc


def build_manifest_dataset(config: EvalConfig, spec: DatasetConfig) -> ManifestDataset:
    assert spec.root is not None
    root = config.resolve(spec.root)
    columns = ManifestColumns(
        path=spec.columns.path,
        identity=spec.columns.identity,
        attributes=spec.columns.attributes,
        value_maps=spec.columns.value_maps,
        multi_value_separator=spec.columns.multi_value_separator,
        age_bands=None if spec.columns.age_bands is None else spec.columns.age_bands.bands(),
    )
    return ManifestDataset(spec.name, root, root / spec.manifest, columns, limit=spec.limit)


def build_synthetic_dataset(config: EvalConfig, spec: DatasetConfig) -> SyntheticDataset:
    assert spec.synthetic is not None
    s = spec.synthetic
    return SyntheticDataset(
        name=spec.name,
        groups=[SyntheticGroup(g.attributes, g.share, g.impostor_similarity) for g in s.groups],
        identities=s.identities if spec.role == "identities" else 0,
        images_per_identity=s.images_per_identity,
        passers_by=s.passers_by,
        dimension=s.dimension,
        genuine_similarity=s.genuine_similarity,
        # Two synthetic datasets of one config must not share people: derive each one's seed from its name.
        seed=config.seed ^ int.from_bytes(hashlib.sha256(spec.name.encode()).digest()[:4], "big"),
        population_seed=config.seed,
    )


DATASETS_VARIABLE = "LFR_TEST_DATASETS"


def with_dataset_roots(config: EvalConfig, roots: list[str]) -> EvalConfig:
    """`--dataset-root` on the command line: `NAME=PATH` sets dataset NAME's image folder; a bare `PATH` is
    the folder holding the datasets, standing for ${LFR_TEST_DATASETS} in the config's roots."""
    datasets = list(config.datasets)
    names = {d.name for d in datasets}
    for value in roots:
        name, separator, path = value.partition("=")
        if separator and name in names:
            datasets = [
                d.model_copy(update={"root": str(Path(path).resolve())}) if d.name == name else d
                for d in datasets
            ]
        elif separator and not Path(value).exists():
            raise ConfigError(
                f"--dataset-root {value!r}: no dataset named {name!r} (have {', '.join(sorted(names))})"
            )
        else:
            folder = str(Path(value).resolve())
            datasets = [
                d.model_copy(
                    update={
                        "root": d.root.replace("${" + DATASETS_VARIABLE + "}", folder).replace(
                            "$" + DATASETS_VARIABLE, folder
                        )
                    }
                )
                if d.root is not None
                else d
                for d in datasets
            ]
    return config.model_copy(update={"datasets": datasets})
