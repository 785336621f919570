"""Datasets the harness evaluates: any folder of images with a manifest CSV, or seeded synthetic embeddings.

A dataset is a list of samples (a stable key, an identity or None for a probe of nobody in particular, and
demographic attributes under canonical names) plus a fingerprint that changes whenever any of that changes.
"""

from __future__ import annotations

import bisect
import csv
import hashlib
import itertools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

UNKNOWN = ""  # attribute value for "not labelled" (or annotators disagreed)


@dataclass(frozen=True, slots=True)
class Sample:
    key: str  # unique within its dataset (the manifest path for image datasets)
    identity: str | None
    attributes: Mapping[str, str] = field(default_factory=dict)


@runtime_checkable
class Dataset(Protocol):
    name: str

    def samples(self) -> Sequence[Sample]: ...
    def fingerprint(self) -> str: ...


@dataclass(frozen=True, slots=True)
class EmbeddedSet:
    """A dataset after embedding: one row per sample; rows of samples not acquired are zero."""

    dataset: str
    fingerprint: str
    model_id: str
    samples: tuple[Sample, ...]
    vectors: np.ndarray  # (n, d) float32, unit rows where acquired
    acquired: np.ndarray  # (n,) bool
    failure_reasons: tuple[str, ...]  # "" where acquired
    synthetic: bool = False
    # Per sample, what the image itself shows beyond the manifest's labels (colour or greyscale, size):
    # not demographic, never tested, but a false-positive concentration on one may explain a differential.
    traits: tuple[Mapping[str, str], ...] = ()

    def __post_init__(self) -> None:
        n = len(self.samples)
        if self.vectors.shape[0] != n or self.acquired.shape != (n,) or len(self.failure_reasons) != n:
            raise ValueError("vectors, acquired and failure_reasons need one entry per sample")
        if self.traits and len(self.traits) != n:
            raise ValueError("traits need one entry per sample")


class ManifestError(ValueError):
    """The manifest CSV cannot be read as configured."""


@dataclass(frozen=True, slots=True)
class AgeBands:
    """An age-band attribute derived from a column of integer ages (ISO/IEC 19795-10 asks for age groups;
    NIST FRTE reports FPIR rising for the young and the old)."""

    column: str
    lower_bounds: tuple[int, ...] = (0, 18, 30, 45, 60)  # first age of each band; the last is open-ended
    attribute: str = "age"

    def __post_init__(self) -> None:
        bounds = self.lower_bounds
        if not bounds or bounds[0] < 0 or any(b >= a for b, a in itertools.pairwise(bounds)):
            raise ValueError(f"age band lower bounds must be non-negative and increasing, got {bounds}")

    def labels(self) -> tuple[str, ...]:
        bounds = self.lower_bounds
        closed = tuple(f"{lo}-{hi - 1}" for lo, hi in itertools.pairwise(bounds))
        return (*closed, f"{bounds[-1]}+")

    def band(self, raw: str) -> str:
        """The band of an age given as text; UNKNOWN if it is missing, not an integer or below the first."""
        try:
            age = int(raw.strip())
        except ValueError:
            return UNKNOWN
        position = bisect.bisect_right(self.lower_bounds, age) - 1
        return UNKNOWN if position < 0 else self.labels()[position]


@dataclass(frozen=True, slots=True)
class ManifestColumns:
    path: str = "path"
    identity: str | None = "identity"  # None: no identities at all (every image a non-mated probe)
    # canonical attribute name -> manifest column
    attributes: Mapping[str, str] = field(default_factory=dict)
    # canonical attribute name -> {raw value -> canonical value}; unmapped raw values are kept as they are
    value_maps: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    multi_value_separator: str | None = ","  # raw values holding it (annotators disagreed) become UNKNOWN
    age_bands: AgeBands | None = None


class ManifestDataset:
    """A directory of images plus a CSV naming each image's path, identity and attribute labels."""

    def __init__(
        self,
        name: str,
        root: Path,
        manifest: Path | None = None,
        columns: ManifestColumns | None = None,
        limit: int | None = None,
    ) -> None:
        self.name = name
        self.limit = limit
        self.root = Path(root)
        self.manifest = Path(manifest) if manifest is not None else self.root / "manifest.csv"
        self.columns = columns or ManifestColumns()
        self._samples = self._read()

    def _read(self) -> tuple[Sample, ...]:
        try:
            with self.manifest.open(newline="", encoding="utf-8") as handle:
                reader = csv.DictReader(handle)
                header = set(reader.fieldnames or ())
                wanted = {self.columns.path, *self.columns.attributes.values()}
                if self.columns.age_bands is not None:
                    wanted.add(self.columns.age_bands.column)
                if self.columns.identity is not None:
                    wanted.add(self.columns.identity)
                missing = sorted(wanted - header)
                if missing:
                    raise ManifestError(
                        f"{self.manifest} lacks column(s) {', '.join(missing)}; "
                        f"it has {', '.join(sorted(header))}"
                    )
                rows = list(reader)[: self.limit]
        except OSError as exc:
            raise ManifestError(f"cannot read manifest {self.manifest}: {exc.strerror}") from exc
        samples = []
        seen: set[str] = set()
        for row in rows:
            key = row[self.columns.path]
            if key in seen:
                raise ManifestError(f"{self.manifest} lists {key} twice")
            seen.add(key)
            identity = row[self.columns.identity].strip() if self.columns.identity else ""
            attributes = {
                name: self._canonical(name, row[column]) for name, column in self.columns.attributes.items()
            }
            if (bands := self.columns.age_bands) is not None:
                attributes[bands.attribute] = bands.band(row[bands.column])
            samples.append(Sample(key, identity or None, attributes))
        return tuple(samples)

    def _canonical(self, attribute: str, raw: str) -> str:
        value = raw.strip()
        separator = self.columns.multi_value_separator
        if not value or (separator and separator in value):
            return UNKNOWN
        return self.columns.value_maps.get(attribute, {}).get(value, value)

    def samples(self) -> Sequence[Sample]:
        return self._samples

    def image_path(self, sample: Sample) -> Path:
        return self.root / sample.key

    def fingerprint(self) -> str:
        """Covers the manifest's bytes and the column mapping (image bytes: see extraction)."""
        digest = hashlib.sha256(self.manifest.read_bytes())
        digest.update(json.dumps(_columns_as_dict(self.columns), sort_keys=True).encode())
        digest.update(f"limit={self.limit}".encode())
        return f"{self.name}:{len(self._samples)}:sha256:{digest.hexdigest()[:16]}"


def _columns_as_dict(columns: ManifestColumns) -> dict[str, object]:
    return {
        "path": columns.path,
        "identity": columns.identity,
        "attributes": dict(columns.attributes),
        "value_maps": {k: dict(v) for k, v in columns.value_maps.items()},
        "multi_value_separator": columns.multi_value_separator,
        # Absent (not null) without bands, so fingerprints of configs without them do not change.
        **(
            {}
            if columns.age_bands is None
            else {
                "age_bands": {
                    "column": columns.age_bands.column,
                    "lower_bounds": list(columns.age_bands.lower_bounds),
                    "attribute": columns.age_bands.attribute,
                }
            }
        ),
    }


@dataclass(frozen=True, slots=True)
class SyntheticGroup:
    attributes: Mapping[str, str]
    share: float = 1.0  # relative frequency of this group among identities
    # Expected cosine between two different identities of this group: raising it makes the group's
    # impostor scores (and so its false positive rate) higher, like a model that separates it less well.
    impostor_similarity: float = 0.0


class SyntheticDataset:
    """Seeded embeddings of identities in attribute groups, for fast tests of the protocol and statistics.

    Each identity has a centre mixing a private random direction with its group's shared direction
    (weight from `impostor_similarity`); each image adds isotropic noise so that two images of one
    person have an expected cosine of about `genuine_similarity`.
    """

    def __init__(
        self,
        name: str = "synthetic",
        groups: Sequence[SyntheticGroup] = (SyntheticGroup({"group": "a"}), SyntheticGroup({"group": "b"})),
        identities: int = 200,
        images_per_identity: int | Sequence[int] = 2,
        passers_by: int = 1000,
        dimension: int = 64,
        genuine_similarity: float = 0.6,
        seed: int = 0,
        model_id: str = "synthetic@seeded",
        population_seed: int = 0,
    ) -> None:
        if not 0 < genuine_similarity < 1:
            raise ValueError("genuine_similarity must lie in (0, 1)")
        self.name = name
        self.model_id = model_id
        self._spec = {
            "groups": [
                {
                    "attributes": dict(g.attributes),
                    "share": g.share,
                    "impostor_similarity": g.impostor_similarity,
                }
                for g in groups
            ],
            "identities": identities,
            "images_per_identity": images_per_identity
            if isinstance(images_per_identity, int)
            else list(images_per_identity),
            "passers_by": passers_by,
            "dimension": dimension,
            "genuine_similarity": genuine_similarity,
            "seed": seed,
            "population_seed": population_seed,
        }
        rng = np.random.default_rng(seed)
        shares = np.array([g.share for g in groups], dtype=float)
        # Shared by every dataset of one population seed, so listed people and passers-by of a group
        # resemble each other alike; `seed` draws the people themselves.
        population = np.random.default_rng(population_seed)
        group_directions = _unit(population.normal(size=(len(groups), dimension)))
        person_count = identities + passers_by
        group_of_person = rng.choice(len(groups), size=person_count, p=shares / shares.sum())
        weight = np.sqrt(np.array([g.impostor_similarity for g in groups]))[group_of_person][:, None]
        private = _unit(rng.normal(size=(person_count, dimension)))
        centres = _unit(weight * group_directions[group_of_person] + np.sqrt(1 - weight**2) * private)
        # cos(a, b) of two noisy copies of one centre is 1 / (1 + s^2) for noise of squared norm s^2.
        noise_norm = np.sqrt(1 / genuine_similarity - 1)
        if isinstance(images_per_identity, int):
            counts = np.full(identities, images_per_identity)
        else:
            counts = np.array(images_per_identity)[rng.integers(0, len(images_per_identity), size=identities)]
        people = np.concatenate(
            [np.repeat(np.arange(identities), counts), np.arange(identities, person_count)]
        )
        noise = rng.normal(size=(len(people), dimension)) * (noise_norm / np.sqrt(dimension))
        self._vectors = _unit(centres[people] + noise).astype(np.float32)
        samples = []
        image_number: dict[int, int] = {}
        for person in people.tolist():
            image_number[person] = image_number.get(person, 0) + 1
            listed = person < identities
            samples.append(
                Sample(
                    f"{'id' if listed else 'passer'}{person:06d}/{image_number[person]}",
                    f"id{person:06d}" if listed else None,
                    dict(groups[group_of_person[person]].attributes),
                )
            )
        self._samples = tuple(samples)

    def samples(self) -> Sequence[Sample]:
        return self._samples

    def fingerprint(self) -> str:
        digest = hashlib.sha256(json.dumps(self._spec, sort_keys=True).encode()).hexdigest()[:16]
        return f"{self.name}:{len(self._samples)}:synthetic:{digest}"

    def embedded(self) -> EmbeddedSet:
        n = len(self._samples)
        return EmbeddedSet(
            dataset=self.name,
            fingerprint=self.fingerprint(),
            model_id=self.model_id,
            samples=self._samples,
            vectors=self._vectors,
            acquired=np.ones(n, dtype=bool),
            failure_reasons=("",) * n,
            synthetic=True,
        )


def _unit(rows: np.ndarray) -> np.ndarray:
    norms: np.ndarray = np.linalg.norm(rows, axis=-1, keepdims=True)
    return rows / np.maximum(norms, 1e-12)
