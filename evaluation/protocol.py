"""The open-set 1:N protocol (NIST FRTE 1:N, NPL 2023): enrol a watchlist, search it with mated and
non-mated probes, through lfr's own index and decision code.

- Listed (mated) people: identities with at least `enrolment_images` + 1 acquired images, in a seeded
  order drawn per person (so one person's lost image moves no one else); their first images (in a seeded
  per-person order) are enrolled and every other image is a mated search. Several enrolled images are
  searched as the matcher searches them: one unit mean template per person
  (lfr.domain.watchlist.mean_templates).
- Filler: further identities enrolled (never searched for) to bring the watchlist to size N; real
  identities first, then synthetic ones if allowed (and then labelled as such in the report).
- Non-mated searches: every acquired image of a person NOT on the watchlist, from the identities
  datasets, plus every passer-by image.
- `max_searches_per_identity` caps the searches of any one named person (mated or not): LFW has people
  with over a hundred images, who would otherwise dominate a group's rate and its significance test.
Watchlists of increasing size are nested (the first N of one order), so FPIR can be compared across N.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from evaluation.datasets import UNKNOWN, EmbeddedSet
from lfr.adapters.faiss_index import FaissIndex
from lfr.adapters.index_spec import IndexSpec
from lfr.domain.matching import Candidate, decide
from lfr.domain.watchlist import mean_templates

logger = logging.getLogger(__name__)

INTERSECTION_JOIN = "×"
SOURCE_ATTRIBUTE = "dataset"  # every search's source dataset, shown per group but never tested
SEARCH_CHUNK = 4096


class ProtocolError(ValueError):
    """The data cannot support the requested protocol (e.g. a watchlist larger than the identities)."""


@dataclass(frozen=True, slots=True)
class Role:
    embedded: EmbeddedSet
    lists_identities: bool  # False: passers-by, every image a non-mated search


@dataclass(frozen=True, slots=True)
class Searches:
    """One kind of search (mated or non-mated) with what lfr's matcher returned for each."""

    candidates: tuple[tuple[Candidate, ...], ...]
    cluster: np.ndarray  # who the probe is ("dataset:identity", or the image for unnamed passers-by)
    source: np.ndarray  # dataset name
    attributes: dict[str, np.ndarray]
    mated_identity: np.ndarray | None = None  # subject id that should come back, for mated searches
    probes: tuple[tuple[str, str], ...] = ()  # (dataset, sample key) of each probe image, for the audit

    def __len__(self) -> int:
        return len(self.candidates)

    @property
    def top_scores(self) -> np.ndarray:
        return np.array([c[0].score if c else -np.inf for c in self.candidates], dtype=np.float64)

    def mated_ranks_and_scores(self) -> tuple[np.ndarray, np.ndarray]:
        if self.mated_identity is None:
            raise ValueError("non-mated searches have no mated identity")
        ranks = np.zeros(len(self), dtype=np.int64)
        scores = np.full(len(self), np.nan)
        for i, (found, wanted) in enumerate(zip(self.candidates, self.mated_identity.tolist(), strict=True)):
            for position, candidate in enumerate(found, start=1):
                if candidate.subject_id == wanted:
                    ranks[i], scores[i] = position, candidate.score
                    break
        return ranks, scores

    def alerts(self, threshold: float) -> np.ndarray:
        """Per search: would lfr's matcher raise an alert at this threshold (lfr.domain.matching.decide)?"""
        return np.array([decide(c, threshold).is_match for c in self.candidates], dtype=bool)

    def alerted_subjects(self, threshold: float) -> list[str | None]:
        decisions = [decide(c, threshold) for c in self.candidates]
        return [d.best.subject_id if d.is_match and d.best else None for d in decisions]


@dataclass(frozen=True, slots=True)
class WatchlistRun:
    size: int
    mated_identities: int
    real_filler: int
    synthetic_filler: int
    enrolled_images: int
    mated: Searches
    nonmated: Searches
    mated_subject_attributes: dict[str, dict[str, str]] = field(default_factory=dict)
    # subject id -> (dataset, sample key) of its enrolled images: what a reviewer compares a suspect with
    enrolled: dict[str, tuple[tuple[str, str], ...]] = field(default_factory=dict)
    index: str = "flat"  # IndexSpec.label() of what was searched
    # Exact search's best subject and score for every mated then non-mated search, when `index` is not exact
    # (so what an approximate index loses can be measured: evaluation.index_agreement).
    exact_best: tuple[np.ndarray, np.ndarray] | None = None


@dataclass(frozen=True, slots=True)
class Identity:
    """A named person of an identities dataset, with their acquired images in seeded order."""

    key: str
    source: EmbeddedSet
    rows: tuple[int, ...]  # acquired sample indices, in seeded order


def attribute_columns(
    embedded: EmbeddedSet,
    rows: Sequence[int],
    attributes: Sequence[str],
    intersections: Sequence[Sequence[str]],
) -> dict[str, np.ndarray]:
    columns: dict[str, np.ndarray] = {}
    for name in attributes:
        columns[name] = np.array(
            [embedded.samples[i].attributes.get(name, UNKNOWN) for i in rows], dtype=object
        )
    for combo in intersections:
        name = INTERSECTION_JOIN.join(combo)
        values = []
        for i in rows:
            parts = [embedded.samples[i].attributes.get(a, UNKNOWN) for a in combo]
            values.append(UNKNOWN if UNKNOWN in parts else INTERSECTION_JOIN.join(parts))
        columns[name] = np.array(values, dtype=object)
    return columns


def seeded_rank(seed: int, purpose: str, key: str) -> bytes:
    """A seeded pseudo-random rank for one person, independent of everyone else: losing one person's image
    (a quality-gate change) changes only that person's place, so runs under two gates compare paired."""
    return hashlib.sha256(f"{seed}:{purpose}:{key}".encode()).digest()


class OpenSetProtocol:
    def __init__(
        self,
        roles: Sequence[Role],
        attributes: Sequence[str],
        intersections: Sequence[Sequence[str]] = (),
        enrolment_images: int = 1,
        max_mated_identities: int | None = None,
        synthetic_filler: bool = False,
        top_k: int = 5,
        seed: int = 0,
        max_searches_per_identity: int | None = None,
        index: IndexSpec | None = None,
    ) -> None:
        self._index_spec = index or IndexSpec()
        if not any(r.lists_identities for r in roles):
            raise ProtocolError("at least one dataset must provide identities for the watchlist")
        models = {r.embedded.model_id for r in roles}
        if len(models) != 1:
            raise ProtocolError(f"all datasets must be embedded by one model, got {sorted(models)}")
        self.model_id = models.pop()
        self._roles = list(roles)
        self._attributes = list(attributes)
        self._intersections = [list(c) for c in intersections]
        self._enrol = enrolment_images
        self._synthetic_filler = synthetic_filler
        self._top_k = top_k
        self._per_identity = max_searches_per_identity
        self._seed = seed
        identities = self._identities()
        self.identities: tuple[Identity, ...] = tuple(identities)
        eligible = [i for i in identities if len(i.rows) > enrolment_images]
        others = [i for i in identities if 0 < len(i.rows) <= enrolment_images]
        mated = sorted(eligible, key=lambda i: seeded_rank(seed, "list", i.key))
        if max_mated_identities is not None:
            others = mated[max_mated_identities:] + others
            mated = mated[:max_mated_identities]
        self._mated = mated
        self._filler = sorted(others, key=lambda i: seeded_rank(seed, "filler", i.key))

    @property
    def seed(self) -> int:
        return self._seed

    @property
    def index_spec(self) -> IndexSpec:
        return self._index_spec

    @property
    def top_k(self) -> int:
        return self._top_k

    @property
    def embedded_sets(self) -> tuple[EmbeddedSet, ...]:
        return tuple(r.embedded for r in self._roles)

    @property
    def available_identities(self) -> int:
        return len(self._mated) + len(self._filler)

    def _identities(self) -> list[Identity]:
        found: list[Identity] = []
        for role in self._roles:
            if not role.lists_identities:
                continue
            embedded = role.embedded
            rows_of: dict[str, list[int]] = {}
            for i, sample in enumerate(embedded.samples):
                if sample.identity is not None and embedded.acquired[i]:
                    rows_of.setdefault(sample.identity, []).append(i)
            for identity in sorted(rows_of):
                key = f"{embedded.dataset}:{identity}"
                shuffled = sorted(
                    rows_of[identity],
                    key=lambda i: seeded_rank(self._seed, "image", f"{key}/{embedded.samples[i].key}"),
                )
                found.append(Identity(key, embedded, tuple(shuffled)))
        return found

    def run(self, size: int) -> WatchlistRun:
        mated = self._mated[:size]
        filler = self._filler[: max(0, size - len(mated))]
        missing = size - len(mated) - len(filler)
        if missing > 0 and not self._synthetic_filler:
            raise ProtocolError(
                f"a watchlist of {size} needs {missing} more identities than the data holds "
                f"({self.available_identities} with an acquired image); "
                "lower the size or allow synthetic filler"
            )
        listed = mated + filler
        subject_of_row: list[str] = []
        blocks: list[np.ndarray] = []
        enrolled: dict[str, tuple[tuple[str, str], ...]] = {}
        for identity in listed:
            rows = list(identity.rows[: self._enrol])
            subject_of_row += [identity.key] * len(rows)
            source = identity.source
            enrolled[identity.key] = tuple((source.dataset, source.samples[r].key) for r in rows)
            blocks.append(identity.source.vectors[rows])
        vectors = np.concatenate(blocks).astype(np.float32)
        if missing > 0:
            synthetic = self._synthetic_vectors(vectors, missing)
            subject_of_row += [f"synthetic-filler:{i}" for i in range(missing)]
            vectors = np.concatenate([vectors, synthetic])
        # As the matcher searches (lfr.services.indexes): one unit mean template per listed person.
        subjects, templates = mean_templates(subject_of_row, vectors)
        index = FaissIndex(subjects, templates, self._index_spec)
        listed_keys = {i.key for i in listed}

        cap = None if self._per_identity is None else self._enrol + self._per_identity
        mated_rows = [(i, row) for i in mated for row in i.rows[self._enrol : cap]]
        mated_searches = self.search(
            index,
            [(i.source, row) for i, row in mated_rows],
            cluster=[i.key for i, _ in mated_rows],
            mated_identity=[i.key for i, _ in mated_rows],
        )
        probes: list[tuple[EmbeddedSet, int]] = []
        clusters: list[str] = []
        for role in self._roles:
            embedded = role.embedded
            searches_of: dict[str, int] = {}
            for row, sample in enumerate(embedded.samples):
                if not embedded.acquired[row]:
                    continue
                person = f"{embedded.dataset}:{sample.identity}" if sample.identity is not None else None
                if role.lists_identities and person in listed_keys:
                    continue
                if person is not None and self._per_identity is not None:
                    searches_of[person] = searches_of.get(person, 0) + 1
                    if searches_of[person] > self._per_identity:
                        continue
                probes.append((embedded, row))
                clusters.append(
                    person if person is not None and role.lists_identities else f"{embedded.dataset}#{row}"
                )
        nonmated = self.search(index, probes, cluster=clusters, mated_identity=None)
        exact_best = None
        if not self._index_spec.exact:
            exact = FaissIndex(subjects, templates)
            exact_best = self._best(exact, [(i.source, row) for i, row in mated_rows] + probes)
        index.close()
        logger.info(
            "watchlist %d: %d mated, %d filler (%d synthetic); %d mated and %d non-mated searches",
            size,
            len(mated),
            len(filler) + missing,
            missing,
            len(mated_searches),
            len(nonmated),
        )
        return WatchlistRun(
            size=size,
            mated_identities=len(mated),
            real_filler=len(filler),
            synthetic_filler=missing,
            enrolled_images=len(subject_of_row),
            mated=mated_searches,
            nonmated=nonmated,
            index=self._index_spec.label(),
            exact_best=exact_best,
            enrolled=enrolled,
        )

    @staticmethod
    def _best(index: FaissIndex, probes: Sequence[tuple[EmbeddedSet, int]]) -> tuple[np.ndarray, np.ndarray]:
        subjects = np.empty(len(probes), dtype=object)
        scores = np.full(len(probes), -np.inf, dtype=np.float32)
        for start in range(0, len(probes), SEARCH_CHUNK):
            chunk = probes[start : start + SEARCH_CHUNK]
            queries = np.stack([embedded.vectors[row] for embedded, row in chunk])
            codes, best = index.search_codes(queries, 1)
            subjects[start : start + len(chunk)] = [
                index.subjects[c] if c >= 0 else None for c in codes[:, 0]
            ]
            scores[start : start + len(chunk)] = best[:, 0]
        return subjects, scores

    def search(
        self,
        index: FaissIndex,
        probes: Sequence[tuple[EmbeddedSet, int]],
        cluster: Sequence[str],
        mated_identity: Sequence[str] | None,
    ) -> Searches:
        candidates: list[tuple[Candidate, ...]] = []
        by_source: dict[int, list[int]] = {}
        for position, (embedded, _) in enumerate(probes):
            by_source.setdefault(id(embedded), []).append(position)
        ordered: list[tuple[Candidate, ...] | None] = [None] * len(probes)
        columns: dict[str, list[object]] = {}
        attrs_per_probe: list[dict[str, object]] = [{} for _ in probes]
        for positions in by_source.values():
            embedded = probes[positions[0]][0]
            rows = [probes[p][1] for p in positions]
            for start in range(0, len(rows), SEARCH_CHUNK):
                chunk = rows[start : start + SEARCH_CHUNK]
                found = index.search(embedded.vectors[chunk], self._top_k)
                for p, result in zip(positions[start : start + SEARCH_CHUNK], found, strict=True):
                    ordered[p] = result
            attrs = attribute_columns(embedded, rows, self._attributes, self._intersections)
            for name, values in attrs.items():
                for p, value in zip(positions, values.tolist(), strict=True):
                    attrs_per_probe[p][name] = value
        for name in [*self._attributes, *(INTERSECTION_JOIN.join(c) for c in self._intersections)]:
            columns[name] = [a.get(name, UNKNOWN) for a in attrs_per_probe]
        candidates = [c if c is not None else () for c in ordered]
        source = np.array([e.dataset for e, _ in probes], dtype=object)
        return Searches(
            candidates=tuple(candidates),
            cluster=np.array(list(cluster), dtype=object),
            source=source,
            attributes={k: np.array(v, dtype=object) for k, v in columns.items()}
            | {SOURCE_ATTRIBUTE: source},
            mated_identity=None if mated_identity is None else np.array(list(mated_identity), dtype=object),
            probes=tuple((e.dataset, e.samples[row].key) for e, row in probes),
        )

    def _synthetic_vectors(self, real: np.ndarray, count: int) -> np.ndarray:
        """Filler drawn from a Gaussian fitted (mean, per-dimension spread) to the enrolled embeddings:
        plausible-looking vectors of nobody, clearly labelled as synthetic in every report."""
        rng = np.random.default_rng(self._seed + 1)
        mean, spread = real.mean(axis=0), real.std(axis=0)
        drawn = mean + spread * rng.normal(size=(count, real.shape[1]))
        unit: np.ndarray = (drawn / np.linalg.norm(drawn, axis=1, keepdims=True)).astype(np.float32)
        return unit
