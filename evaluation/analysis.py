"""From search results to the oversight tables: overall and per-group rates with confidence intervals,
differential tests with a stated family-wise correction, and the recommended threshold.

Significance rule (stated in every report): for each rate (FPIR, FNIR) and threshold, the family is every
pairwise Fisher exact test between demographic groups (groups with at least `min_group_searches` searches
and a known label) over every attribute and intersection; p-values are adjusted within that family (Holm by
default) and a differential is significant when an adjusted p-value is below alpha. The recommended
threshold is the lowest grid threshold at and above which (a) no differential is significant in the rates
named by `recommend_on` (FPIR by default, as in the NPL study: the burden of wrongful stops) and (b) the upper
Clopper-Pearson bound of FPIR is below the operational ceiling (default 1 in 6,000 passers-by, the NPL's
figure for the Met's setting). A run too small to show (b) recommends nothing: absence of evidence of false
alerts is not evidence of their rarity.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from evaluation import metrics
from evaluation.datasets import UNKNOWN, EmbeddedSet
from evaluation.protocol import SOURCE_ATTRIBUTE, WatchlistRun, attribute_columns


@dataclass(frozen=True, slots=True)
class Rate:
    errors: int  # false positives for FPIR, misses for FNIR, hits for TPIR
    searches: int
    value: float
    wilson: tuple[float, float]
    clopper_pearson: tuple[float, float]
    bootstrap: tuple[float, float] | None = None  # over people, for mated rates

    @classmethod
    def of(
        cls,
        errors: int,
        searches: int,
        confidence: float,
        bootstrap: tuple[float, float] | None = None,
    ) -> Rate:
        value = errors / searches if searches else float("nan")
        return cls(
            errors,
            searches,
            value,
            metrics.wilson_interval(errors, searches, confidence),
            metrics.clopper_pearson_interval(errors, searches, confidence),
            bootstrap,
        )


@dataclass(frozen=True, slots=True)
class GroupRates:
    attribute: str
    group: str
    fpir: Rate
    fnir: Rate
    tested: bool  # large enough and labelled: included in the differential tests


@dataclass(frozen=True, slots=True)
class Differential:
    attribute: str
    rate: str  # "fpir" or "fnir"
    test: metrics.DifferentialTest
    adjusted_pair_p: tuple[float, ...]

    @property
    def min_adjusted_p(self) -> float:
        return min(self.adjusted_pair_p, default=float("nan"))


@dataclass(frozen=True, slots=True)
class ThresholdResult:
    threshold: float
    tpir: Rate
    fnir: Rate
    fpir: Rate
    groups: tuple[GroupRates, ...]
    differentials: tuple[Differential, ...]
    significant: bool  # in any rate named in recommend_on: what the recommended threshold rests on
    significant_by_rate: dict[str, bool] = field(default_factory=dict)

    def min_adjusted_p(self, rate: str) -> float:
        values = [d.min_adjusted_p for d in self.differentials if d.rate == rate]
        return min(values, default=float("nan"))


@dataclass(frozen=True, slots=True)
class WatchlistAnalysis:
    run: WatchlistRun
    rank1: float
    rows: tuple[ThresholdResult, ...]
    recommended_threshold: float | None  # (a) and (b): the deployable recommendation
    det: metrics.DetCurve
    fnir_at_fpir: dict[float, tuple[float, float]] = field(default_factory=dict)
    differential_free_threshold: float | None = None  # (a) alone: the rule before the ceiling existed
    ceiling_threshold: float | None = None  # (b) alone: lowest T whose FPIR bound is below the ceiling
    # (a), and FPIR's point estimate (not its bound) below the ceiling: where a run too small to show the
    # ceiling reads its figures, labelled provisional
    provisional_threshold: float | None = None


@dataclass(frozen=True, slots=True)
class StatisticsSettings:
    alpha: float = 0.05
    confidence: float = 0.95
    correction: str = "holm"
    min_group_searches: int = 30
    bootstrap_samples: int = 1000
    recommend_on: Sequence[str] = ("fpir",)
    rank: int = 1
    seed: int = 0
    fpir_ceiling: float | None = 1 / 6000  # FPIR's upper confidence bound must be below it; None: no ceiling


def searches_to_show_ceiling(ceiling: float, confidence: float) -> int:
    """Fewest non-mated searches for which zero false positives put FPIR's upper Clopper-Pearson bound
    below `ceiling`: with fewer, no threshold can meet the ceiling whatever the system does."""
    tail = (1 - confidence) / 2
    return int(np.floor(np.log(tail) / np.log1p(-ceiling))) + 1


def analyse(
    run: WatchlistRun,
    thresholds: Sequence[float],
    group_by: Sequence[str],
    settings: StatisticsSettings,
    fixed_fpirs: Sequence[float] = (0.01, 0.001, 0.0001),
) -> WatchlistAnalysis:
    ranks, mated_scores = run.mated.mated_ranks_and_scores()
    nonmated_top = run.nonmated.top_scores
    rows = tuple(
        _at_threshold(run, ranks, mated_scores, nonmated_top, t, group_by, settings) for t in thresholds
    )
    det = metrics.det_curve(ranks, mated_scores, nonmated_top, rank=settings.rank)
    at_fpir = {}
    if nonmated_top.size:
        for target in fixed_fpirs:
            if target * nonmated_top.size >= 1:  # below one false positive the estimate is meaningless
                at_fpir[target] = metrics.fnir_at_fpir(
                    ranks, mated_scores, nonmated_top, target, settings.rank
                )
    return WatchlistAnalysis(
        run=run,
        rank1=metrics.rank_identification_rate(ranks, 1),
        rows=rows,
        recommended_threshold=recommend_threshold(rows, settings.fpir_ceiling),
        det=det,
        fnir_at_fpir=at_fpir,
        differential_free_threshold=recommend_threshold(rows),
        ceiling_threshold=lowest_passing(rows, lambda r: below_ceiling(r, settings.fpir_ceiling)),
        provisional_threshold=lowest_passing(
            rows,
            lambda r: (
                not r.significant
                and (
                    settings.fpir_ceiling is None
                    or (r.fpir.searches > 0 and r.fpir.value < settings.fpir_ceiling)
                )
            ),
        ),
    )


def below_ceiling(row: ThresholdResult, ceiling: float | None) -> bool:
    """Is FPIR's upper (Clopper-Pearson) bound at this threshold below the ceiling? With no non-mated
    searches nothing is shown."""
    if ceiling is None:
        return True
    upper = row.fpir.clopper_pearson[1]
    return row.fpir.searches > 0 and upper < ceiling


def lowest_passing(
    rows: Sequence[ThresholdResult], passes: Callable[[ThresholdResult], bool]
) -> float | None:
    """Lowest threshold such that it and every higher threshold pass."""
    found = None
    for row in sorted(rows, key=lambda r: r.threshold, reverse=True):
        if not passes(row):
            break
        found = row.threshold
    return found


def recommend_threshold(rows: Sequence[ThresholdResult], fpir_ceiling: float | None = None) -> float | None:
    """Lowest threshold such that it and every higher threshold show no significant differential and,
    given a ceiling, an FPIR upper bound below it."""
    return lowest_passing(rows, lambda r: not r.significant and below_ceiling(r, fpir_ceiling))


def _at_threshold(
    run: WatchlistRun,
    ranks: np.ndarray,
    mated_scores: np.ndarray,
    nonmated_top: np.ndarray,
    threshold: float,
    group_by: Sequence[str],
    s: StatisticsSettings,
) -> ThresholdResult:
    hits = metrics.mated_hits(ranks, mated_scores, threshold, s.rank)
    false_pos = nonmated_top >= threshold
    n_mated, n_non = hits.size, false_pos.size
    boot_tpir = metrics.bootstrap_interval_by_cluster(
        hits, run.mated.cluster, s.bootstrap_samples, s.confidence, s.seed
    )
    tpir = Rate.of(int(hits.sum()), n_mated, s.confidence, boot_tpir)
    boot_fnir = (1 - boot_tpir[1], 1 - boot_tpir[0])
    fnir = Rate.of(n_mated - int(hits.sum()), n_mated, s.confidence, boot_fnir)
    fpir = Rate.of(int(false_pos.sum()), n_non, s.confidence)
    groups: list[GroupRates] = []
    pending: list[tuple[str, str, metrics.DifferentialTest]] = []
    for attribute in group_by:
        mated_groups = run.mated.attributes.get(attribute, np.array([], dtype=object))
        non_groups = run.nonmated.attributes.get(attribute, np.array([], dtype=object))
        names = sorted(set(mated_groups.tolist()) | set(non_groups.tolist()), key=lambda g: (g == UNKNOWN, g))
        counts: dict[str, dict[str, tuple[int, int]]] = {"fpir": {}, "fnir": {}}
        for group in names:
            in_mated = mated_groups == group
            in_non = non_groups == group
            misses = int((~hits[in_mated]).sum())
            boot = metrics.bootstrap_interval_by_cluster(
                ~hits[in_mated], run.mated.cluster[in_mated], s.bootstrap_samples, s.confidence, s.seed
            )
            group_fnir = Rate.of(misses, int(in_mated.sum()), s.confidence, boot)
            group_fpir = Rate.of(int(false_pos[in_non].sum()), int(in_non.sum()), s.confidence)
            # Source datasets differ in imaging as well as people: shown to expose confounding, not tested.
            tested = group != UNKNOWN and attribute != SOURCE_ATTRIBUTE
            groups.append(GroupRates(attribute, group, group_fpir, group_fnir, tested))
            if tested and group_fpir.searches >= s.min_group_searches:
                counts["fpir"][group] = (group_fpir.errors, group_fpir.searches)
            if tested and group_fnir.searches >= s.min_group_searches:
                counts["fnir"][group] = (group_fnir.errors, group_fnir.searches)
        for rate in ("fpir", "fnir"):
            if len(counts[rate]) >= 2:
                pending.append((attribute, rate, metrics.differential_test(counts[rate])))
    differentials = []
    significant_by_rate = {}
    for rate in ("fpir", "fnir"):
        # One family per rate and threshold: every pairwise test over every attribute and intersection.
        tests = [(attribute, test) for attribute, r, test in pending if r == rate]
        family = [p.p_value for _, test in tests for p in test.pairs]
        adjusted = metrics.adjust_p_values(family, s.correction)
        position = 0
        for attribute, test in tests:
            count = len(test.pairs)
            differentials.append(
                Differential(attribute, rate, test, tuple(adjusted[position : position + count]))
            )
            position += count
        significant_by_rate[rate] = any(p < s.alpha for p in adjusted)
    significant = any(significant_by_rate[rate] for rate in s.recommend_on)
    return ThresholdResult(
        threshold, tpir, fnir, fpir, tuple(groups), tuple(differentials), significant, significant_by_rate
    )


@dataclass(frozen=True, slots=True)
class AcquisitionGroup:
    dataset: str
    attribute: str
    group: str
    rate: Rate  # failure to acquire
    reasons: dict[str, int] = field(default_factory=dict)  # failure reason -> images (quality:blurry, ...)


def failure_to_acquire(
    embedded: EmbeddedSet,
    attributes: Sequence[str],
    intersections: Sequence[Sequence[str]],
    confidence: float = 0.95,
) -> list[AcquisitionGroup]:
    """FTA per dataset and group: images where no usable face was found (none, or one the quality gate
    rejected), over images attempted, with the count of each reason."""
    rows = list(range(len(embedded.samples)))
    columns = {"all": np.array(["all"] * len(rows), dtype=object)}
    columns |= attribute_columns(embedded, rows, attributes, intersections)
    failed = ~embedded.acquired
    reasons = np.array(embedded.failure_reasons, dtype=object)
    found = []
    for attribute, values in columns.items():
        for group in sorted(set(values.tolist()), key=lambda g: (g == UNKNOWN, g)):
            mask = values == group
            found.append(
                AcquisitionGroup(
                    embedded.dataset,
                    attribute,
                    group,
                    Rate.of(int(failed[mask].sum()), int(mask.sum()), confidence),
                    _tally(reasons[mask & failed]),
                )
            )
    return found


def _tally(values: np.ndarray) -> dict[str, int]:
    counts: dict[str, int] = {}
    for value in values.tolist():
        counts[str(value)] = counts.get(str(value), 0) + 1
    return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))
