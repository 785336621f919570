"""Ground-truth audit: is every "non-mated" search really of someone not on the watchlist?

Non-mated searches come from web photo collections that were not built to be disjoint from the listed
people: a passer-by image that is really a listed person counts as a false positive, inflates FPIR in
whatever groups that person belongs to, and can push the recommended threshold up. The audit

- lists the highest-scoring non-mated pairs (probe image, listed identity, score, rank) and near-duplicate
  images across datasets (or across two names of one dataset), for a person to review side by side;
- applies a reviewed-exclusions file (pairs judged the same person, with reviewer and reason): a probe
  judged to be a listed person is dropped from the non-mated searches of every watchlist that lists them;
- counts non-mated searches scoring at or above the median mated score, and marks unreviewed pairs at or
  above the suspect score (the lower of that median and the operating threshold) as suspected mates, so the
  report can show FPIR and the recommendation with and without them;
- measures how concentrated false positives are on a few listed identities and on probe attributes
  beyond the demographic columns (source dataset, colour or greyscale, image size), so a differential can
  be traced to its cause before it is read as bias.
"""

from __future__ import annotations

import csv
import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from evaluation.datasets import UNKNOWN, EmbeddedSet
from evaluation.protocol import Searches, WatchlistRun

SAME = "same"
DIFFERENT = "different"
EXCLUSION_COLUMNS = ("probe_dataset", "probe_image", "listed_identity", "verdict", "reviewer", "reason")

ImageRef = tuple[str, str]  # (dataset, sample key)


class ExclusionsError(ValueError):
    """The reviewed-exclusions file cannot be read as a list of reviewed pairs."""


@dataclass(frozen=True, slots=True)
class Review:
    """One reviewed pair: is the probe image the listed identity? (`same`: drop it from non-mated)."""

    probe_dataset: str
    probe_image: str
    listed_identity: str  # subject id as the report prints it, e.g. "lfw:Jane_Doe"
    verdict: str  # SAME or DIFFERENT
    reviewer: str
    reason: str

    @property
    def pair(self) -> tuple[str, str, str]:
        return (self.probe_dataset, self.probe_image, self.listed_identity)


def load_reviews(path: Path) -> list[Review]:
    """Read a reviewed-exclusions CSV (columns EXCLUSION_COLUMNS; quoted fields may hold commas). Every row
    needs a verdict of `same` or `different`, a reviewer and a reason: an unattributed exclusion would let
    anyone quietly lower FPIR."""
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            # Lines starting with '#' are comments: who reviewed what, and the pairs left undecided.
            reader = csv.DictReader(line for line in handle if not line.startswith("#"))
            missing = [c for c in EXCLUSION_COLUMNS if c not in (reader.fieldnames or ())]
            if missing:
                raise ExclusionsError(f"{path} lacks column(s) {', '.join(missing)}")
            rows = list(reader)
    except OSError as exc:
        raise ExclusionsError(f"cannot read exclusions file {path}: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise ExclusionsError(f"{path} is not UTF-8 text: {exc}") from exc
    reviews: dict[tuple[str, str, str], Review] = {}
    for line, row in enumerate(rows, start=1):
        values = {c: (row.get(c) or "").strip() for c in EXCLUSION_COLUMNS}
        blank = [c for c in EXCLUSION_COLUMNS if not values[c]]
        if blank:
            raise ExclusionsError(f"{path} row {line}: {', '.join(blank)} must not be blank")
        verdict = values["verdict"].lower()
        if verdict not in (SAME, DIFFERENT):
            raise ExclusionsError(
                f"{path} row {line}: verdict must be {SAME!r} or {DIFFERENT!r}, got {values['verdict']!r}"
            )
        review = Review(**(values | {"verdict": verdict}))
        earlier = reviews.get(review.pair)
        if earlier is not None and earlier.verdict != review.verdict:
            raise ExclusionsError(f"{path} row {line}: {review.pair} is reviewed as both same and different")
        reviews[review.pair] = review
    return list(reviews.values())


@dataclass(frozen=True, slots=True)
class AuditSettings:
    top_pairs: int = 100  # always list at least this many of the highest-scoring non-mated pairs
    max_pairs: int = 500  # list at most this many (counts cover all)
    suspect_score: float | None = None  # None: the lower of the median mated score and the operating T
    duplicate_score: float = 0.8  # cosine at which two images of different labels count as near-duplicates
    max_duplicates: int = 200


@dataclass(frozen=True, slots=True)
class Pair:
    probe: ImageRef
    listed_identity: str
    score: float
    rank: int
    review: Review | None = None


def subset_searches(searches: Searches, keep: np.ndarray) -> Searches:
    """The searches where `keep` is true, every per-search column filtered alike."""
    index = np.flatnonzero(keep)
    return dataclasses.replace(
        searches,
        candidates=tuple(searches.candidates[i] for i in index),
        cluster=searches.cluster[index],
        source=searches.source[index],
        attributes={k: v[index] for k, v in searches.attributes.items()},
        mated_identity=None if searches.mated_identity is None else searches.mated_identity[index],
        probes=tuple(searches.probes[i] for i in index) if searches.probes else (),
    )


def without_nonmated(run: WatchlistRun, drop: np.ndarray) -> WatchlistRun:
    return dataclasses.replace(run, nonmated=subset_searches(run.nonmated, ~drop))


@dataclass(frozen=True, slots=True)
class AppliedReviews:
    run: WatchlistRun  # non-mated searches judged to be a listed person removed
    excluded: int  # non-mated searches removed from this watchlist's run
    unknown: tuple[Review, ...]  # reviews naming an image or identity the data does not hold


def apply_reviews(
    run: WatchlistRun, reviews: Sequence[Review], known_images: set[ImageRef], known_identities: set[str]
) -> AppliedReviews:
    """Drop each non-mated search whose probe is judged `same` as an identity listed in this run. A probe
    judged to be someone not listed here stays: for this watchlist it is a genuine non-mated search."""
    excluded = judged_listed(reviews, set(run.enrolled))
    drop = np.array([probe in excluded for probe in run.nonmated.probes], dtype=bool)
    drop = drop.reshape(len(run.nonmated))
    unknown = tuple(
        r
        for r in reviews
        if (r.probe_dataset, r.probe_image) not in known_images or r.listed_identity not in known_identities
    )
    return AppliedReviews(without_nonmated(run, drop), int(drop.sum()), unknown)


def judged_listed(reviews: Sequence[Review], listed: set[str]) -> set[ImageRef]:
    """The probe images a reviewer judged to be one of the `listed` identities."""
    return {
        (r.probe_dataset, r.probe_image) for r in reviews if r.verdict == SAME and r.listed_identity in listed
    }


def median_mated_score(run: WatchlistRun) -> float:
    """Median score of the listed person's own candidate over mated searches (not returned: -inf)."""
    _, scores = run.mated.mated_ranks_and_scores()
    if scores.size == 0:
        return float("nan")
    return float(np.median(np.nan_to_num(scores, nan=-np.inf)))


def nonmated_pairs(searches: Searches) -> list[Pair]:
    """Every (probe, candidate) pair a non-mated search returned, highest score first."""
    pairs = [
        Pair(searches.probes[i], c.subject_id, float(c.score), rank)
        for i, found in enumerate(searches.candidates)
        for rank, c in enumerate(found, start=1)
    ]
    return sorted(pairs, key=lambda p: (-p.score, p.probe, p.rank))


@dataclass(frozen=True, slots=True)
class WatchlistAudit:
    size: int
    median_mated_score: float
    above_median_mated: int  # non-mated searches whose best score is at or above it
    suspect_score: float
    operating_threshold: float | None
    pairs: tuple[Pair, ...]  # listed for review, highest first
    pairs_total: int  # pairs at or above the suspect score (all listed up to max_pairs)
    suspected_searches: np.ndarray  # bool per non-mated search: unreviewed, best score >= suspect score
    unreviewed_above_operating: int  # unreviewed rank-1 pairs at or above the operating threshold
    excluded: int
    identity_concentration: tuple[tuple[str, int], ...]  # listed identity -> false positives, most first
    false_positives: int
    concentration_threshold: float | None


def audit_watchlist(
    run: WatchlistRun,
    reviews: Sequence[Review],
    excluded: int,
    operating_threshold: float | None,
    settings: AuditSettings,
) -> WatchlistAudit:
    """Audit one watchlist's (already review-filtered) run."""
    median = median_mated_score(run)
    top = run.nonmated.top_scores
    above_median = int((top >= median).sum()) if np.isfinite(median) else 0
    floor = settings.suspect_score
    if floor is None:
        candidates = [v for v in (median, operating_threshold) if v is not None and np.isfinite(v)]
        floor = min(candidates) if candidates else float("inf")
    verdicts = {r.pair: r for r in reviews}
    pairs = nonmated_pairs(run.nonmated)
    listed = [
        dataclasses.replace(p, review=verdicts.get((*p.probe, p.listed_identity)))
        for i, p in enumerate(pairs)
        if i < settings.top_pairs or p.score >= floor
    ]
    reviewed_probes = {(r.probe_dataset, r.probe_image) for r in reviews}
    suspected = np.array(
        [
            bool(found) and found[0].score >= floor and probe not in reviewed_probes
            for found, probe in zip(run.nonmated.candidates, run.nonmated.probes, strict=True)
        ],
        dtype=bool,
    )
    unreviewed_above = 0
    if operating_threshold is not None:
        unreviewed_above = int(
            sum(
                1
                for found, probe in zip(run.nonmated.candidates, run.nonmated.probes, strict=True)
                if found and found[0].score >= operating_threshold and probe not in reviewed_probes
            )
        )
    at = operating_threshold if operating_threshold is not None else (floor if np.isfinite(floor) else None)
    hits: dict[str, int] = {}
    false_positives = 0
    if at is not None:
        for subject in run.nonmated.alerted_subjects(at):
            if subject is not None:
                hits[subject] = hits.get(subject, 0) + 1
                false_positives += 1
    return WatchlistAudit(
        size=run.size,
        median_mated_score=median,
        above_median_mated=above_median,
        suspect_score=floor,
        operating_threshold=operating_threshold,
        pairs=tuple(listed[: settings.max_pairs]),
        pairs_total=len(listed),
        suspected_searches=suspected,
        unreviewed_above_operating=unreviewed_above,
        excluded=excluded,
        identity_concentration=tuple(sorted(hits.items(), key=lambda kv: (-kv[1], kv[0]))),
        false_positives=false_positives,
        concentration_threshold=at,
    )


@dataclass(frozen=True, slots=True)
class AttributeShare:
    attribute: str
    value: str
    searches: int
    false_positives: int

    def share_of_searches(self, total: int) -> float:
        return self.searches / total if total else float("nan")


def attribute_concentration(
    searches: Searches,
    threshold: float,
    traits: Mapping[ImageRef, Mapping[str, str]],
) -> list[AttributeShare]:
    """False positives at `threshold` per value of every probe attribute (demographic columns, source
    dataset, and image traits such as colour or greyscale): a value holding a far larger share of the false
    positives than of the searches points at a cause."""
    alerts = searches.top_scores >= threshold
    columns = dict(searches.attributes)
    trait_names = sorted({name for t in traits.values() for name in t})
    for name in trait_names:
        columns[name] = np.array(
            [traits.get(p, {}).get(name, UNKNOWN) for p in searches.probes], dtype=object
        )
    shares = []
    for attribute, values in columns.items():
        for value in sorted(set(values.tolist()), key=lambda v: (v == UNKNOWN, str(v))):
            mask = values == value
            shares.append(
                AttributeShare(attribute, str(value) or "unknown", int(mask.sum()), int(alerts[mask].sum()))
            )
    return shares


@dataclass(frozen=True, slots=True)
class DuplicatePair:
    first: ImageRef
    second: ImageRef
    first_identity: str | None
    second_identity: str | None
    score: float


def near_duplicates(
    embedded: Sequence[EmbeddedSet], min_score: float, limit: int, chunk: int = 2048
) -> tuple[list[DuplicatePair], int]:
    """Image pairs of different labels scoring at least `min_score`: across two datasets (any labels), or
    within one dataset between two different identities (one person under two names). Returns the highest
    `limit` pairs and how many there are in all."""
    found: list[DuplicatePair] = []
    total = 0
    sets = [e for e in embedded if e.acquired.any()]
    for a_pos, a in enumerate(sets):
        rows_a = np.flatnonzero(a.acquired)
        for b in sets[a_pos:]:
            same = a is b
            if same and not any(s.identity for s in a.samples):
                continue  # unnamed passers-by: two of them alike changes no rate
            rows_b = np.flatnonzero(b.acquired)
            for start in range(0, rows_a.size, chunk):
                block = rows_a[start : start + chunk]
                scores = a.vectors[block] @ b.vectors[rows_b].T
                i_idx, j_idx = np.nonzero(scores >= min_score)
                for i, j in zip(i_idx.tolist(), j_idx.tolist(), strict=True):
                    ra, rb = int(block[i]), int(rows_b[j])
                    sa, sb = a.samples[ra], b.samples[rb]
                    if same and (ra >= rb or sa.identity is None or sb.identity is None):
                        continue
                    if same and sa.identity == sb.identity:
                        continue
                    total += 1
                    found.append(
                        DuplicatePair(
                            (a.dataset, sa.key),
                            (b.dataset, sb.key),
                            None if sa.identity is None else f"{a.dataset}:{sa.identity}",
                            None if sb.identity is None else f"{b.dataset}:{sb.identity}",
                            float(scores[i, j]),
                        )
                    )
                found.sort(key=lambda p: -p.score)
                del found[limit:]
    return found, total
