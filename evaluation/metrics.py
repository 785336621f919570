"""Open-set identification metrics in ISO/IEC 19795-1 and NIST FRTE 1:N terms, as pure functions.

- A non-mated search (the probe's person is not on the watchlist) is a false positive at threshold T when
  its best candidate scores >= T: FPIR(T) = false positives / non-mated searches.
- A mated search (the probe's person is listed) is a hit at T when the correct identity is returned at
  rank <= R with score >= T: FNIR(T) = misses / mated searches, TPIR(T) = 1 - FNIR(T).
  `>=` matches lfr.domain.matching.MatchDecision.is_match, so these are the rates the matcher would show.

Mated searches are described by the rank at which the correct identity came back (1 = best; 0 = not among
the returned candidates) and its score there (NaN if not returned).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

NOT_RETURNED = 0


def _as_float(values: np.ndarray) -> np.ndarray:
    return np.asarray(values, dtype=np.float64)


def false_positives(nonmated_top_scores: np.ndarray, threshold: float) -> int:
    return int(np.count_nonzero(_as_float(nonmated_top_scores) >= threshold))


def fpir(nonmated_top_scores: np.ndarray, threshold: float) -> float:
    """False positive identification rate; NaN with no non-mated searches."""
    scores = _as_float(nonmated_top_scores)
    return false_positives(scores, threshold) / scores.size if scores.size else float("nan")


def mated_hits(
    mated_ranks: np.ndarray, mated_scores: np.ndarray, threshold: float, rank: int = 1
) -> np.ndarray:
    """Boolean per mated search: correct identity at rank <= `rank` with score >= threshold."""
    ranks = np.asarray(mated_ranks)
    scores = _as_float(mated_scores)
    returned = (ranks >= 1) & (ranks <= rank)
    with np.errstate(invalid="ignore"):
        return returned & (np.nan_to_num(scores, nan=-np.inf) >= threshold)


def fnir(mated_ranks: np.ndarray, mated_scores: np.ndarray, threshold: float, rank: int = 1) -> float:
    """False negative identification rate; NaN with no mated searches."""
    hits = mated_hits(mated_ranks, mated_scores, threshold, rank)
    return 1.0 - float(hits.mean()) if hits.size else float("nan")


def tpir(mated_ranks: np.ndarray, mated_scores: np.ndarray, threshold: float, rank: int = 1) -> float:
    """True positive identification rate, 1 - FNIR."""
    hits = mated_hits(mated_ranks, mated_scores, threshold, rank)
    return float(hits.mean()) if hits.size else float("nan")


def rank_identification_rate(mated_ranks: np.ndarray, rank: int = 1) -> float:
    """Closed-set rank-R identification rate (no threshold)."""
    ranks = np.asarray(mated_ranks)
    return float(((ranks >= 1) & (ranks <= rank)).mean()) if ranks.size else float("nan")


def rank1_identification_rate(mated_ranks: np.ndarray) -> float:
    return rank_identification_rate(mated_ranks, 1)


def one_in(rate: float) -> float:
    """'1 in X' as used in published figures; inf for a zero rate."""
    return float("inf") if rate == 0 else 1.0 / rate


@dataclass(frozen=True, slots=True)
class DetCurve:
    thresholds: np.ndarray
    fpir: np.ndarray
    fnir: np.ndarray


def det_curve(
    mated_ranks: np.ndarray,
    mated_scores: np.ndarray,
    nonmated_top_scores: np.ndarray,
    thresholds: np.ndarray | None = None,
    rank: int = 1,
) -> DetCurve:
    """FNIR against FPIR as the threshold sweeps; by default over every observed score (exact curve)."""
    nonmated = np.sort(_as_float(nonmated_top_scores))
    mated_valid = mated_hits(mated_ranks, mated_scores, -np.inf, rank)
    mated = np.sort(_as_float(mated_scores)[mated_valid])
    if thresholds is None:
        thresholds = np.unique(np.concatenate([nonmated, mated]))
    thresholds = np.asarray(thresholds, dtype=np.float64)
    # Counting with searchsorted: #(scores >= t) = n - #(scores < t).
    fp = nonmated.size - np.searchsorted(nonmated, thresholds, side="left")
    hits = mated.size - np.searchsorted(mated, thresholds, side="left")
    n_mated = np.asarray(mated_ranks).size
    fpir_values = fp / nonmated.size if nonmated.size else np.full(thresholds.shape, np.nan)
    fnir_values = 1 - hits / n_mated if n_mated else np.full(thresholds.shape, np.nan)
    return DetCurve(thresholds, fpir_values, fnir_values)


def fnir_at_fpir(
    mated_ranks: np.ndarray,
    mated_scores: np.ndarray,
    nonmated_top_scores: np.ndarray,
    target_fpir: float,
    rank: int = 1,
) -> tuple[float, float]:
    """(FNIR, threshold) at the lowest threshold whose FPIR does not exceed `target_fpir`."""
    nonmated = np.sort(_as_float(nonmated_top_scores))
    if nonmated.size == 0:
        raise ValueError("FNIR at fixed FPIR needs non-mated searches")
    allowed = int(np.floor(target_fpir * nonmated.size + 1e-9))
    # The (allowed+1)-th highest non-mated score must fall below the threshold.
    if allowed >= nonmated.size:
        threshold = -np.inf
    else:
        threshold = float(np.nextafter(nonmated[nonmated.size - allowed - 1], np.inf))
    return fnir(mated_ranks, mated_scores, threshold, rank), threshold


# -- confidence intervals for a proportion k / n --------------------------------------------------------


def wilson_interval(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    if n == 0:
        return (float("nan"), float("nan"))
    z = float(stats.norm.ppf(0.5 + confidence / 2))
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def clopper_pearson_interval(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Exact (conservative) binomial interval."""
    if n == 0:
        return (float("nan"), float("nan"))
    tail = (1 - confidence) / 2
    low = 0.0 if k == 0 else float(stats.beta.ppf(tail, k, n - k + 1))
    high = 1.0 if k == n else float(stats.beta.ppf(1 - tail, k + 1, n - k))
    return (low, high)


def bootstrap_interval_by_cluster(
    outcomes: np.ndarray,
    clusters: np.ndarray,
    samples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile interval of a rate when searches of one person are not independent: resample people
    (clusters) with replacement, keeping all of each person's searches together."""
    values = np.asarray(outcomes, dtype=np.float64)
    if values.size == 0 or samples == 0:
        return (float("nan"), float("nan"))
    _, cluster_index = np.unique(np.asarray(clusters), return_inverse=True)
    n_clusters = int(cluster_index.max()) + 1
    successes = np.bincount(cluster_index, weights=values, minlength=n_clusters)
    totals = np.bincount(cluster_index, minlength=n_clusters).astype(np.float64)
    rng = np.random.default_rng(seed)
    weights = rng.multinomial(n_clusters, np.full(n_clusters, 1 / n_clusters), size=samples)
    rates = (weights @ successes) / (weights @ totals)
    tail = (1 - confidence) / 2
    low, high = np.quantile(rates, [tail, 1 - tail])
    return (float(low), float(high))


# -- differentials between groups -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PairTest:
    group_a: str
    group_b: str
    p_value: float
    odds_ratio: float


@dataclass(frozen=True, slots=True)
class DifferentialTest:
    """Do these groups' error rates differ? Chi-square of independence over all groups (omnibus) and
    Fisher's exact test for each pair (exact at small counts; p-values before any correction)."""

    groups: tuple[str, ...]
    errors: tuple[int, ...]
    totals: tuple[int, ...]
    chi2_p_value: float
    chi2_valid: bool  # every expected count >= 5, the usual condition for the chi-square approximation
    pairs: tuple[PairTest, ...]
    max_min_ratio: float  # highest group rate / lowest; inf when the lowest is zero, NaN when all are zero

    @property
    def min_pair_p_value(self) -> float:
        return min((p.p_value for p in self.pairs), default=float("nan"))


def differential_test(groups: dict[str, tuple[int, int]]) -> DifferentialTest:
    """`groups` maps group name -> (errors, searches). Needs at least two groups with searches."""
    names = tuple(sorted(g for g, (_, n) in groups.items() if n > 0))
    if len(names) < 2:
        raise ValueError("a differential test needs at least two groups with searches")
    errors = tuple(groups[g][0] for g in names)
    totals = tuple(groups[g][1] for g in names)
    table = np.array([[e, n - e] for e, n in zip(errors, totals, strict=True)], dtype=np.int64)
    column_sums = table.sum(axis=0)
    if (column_sums == 0).any():
        chi2_p, chi2_valid = 1.0, False  # every group has the same rate (all 0 or all 1)
    else:
        result = stats.chi2_contingency(table, correction=False)
        chi2_p, chi2_valid = float(result.pvalue), bool((result.expected_freq >= 5).all())
    pairs = []
    for i in range(len(names)):
        for j in range(i + 1, len(names)):
            sub = table[[i, j]]
            odds, p = stats.fisher_exact(sub) if (sub.sum(axis=0) > 0).all() else (float("nan"), 1.0)
            pairs.append(PairTest(names[i], names[j], float(p), float(odds)))
    rates = np.array(errors, dtype=np.float64) / np.array(totals, dtype=np.float64)
    high, low = float(rates.max()), float(rates.min())
    ratio = float("nan") if high == 0 else (float("inf") if low == 0 else high / low)
    return DifferentialTest(names, errors, totals, chi2_p, chi2_valid, tuple(pairs), ratio)


def adjust_p_values(p_values: list[float], method: str = "holm") -> list[float]:
    """Family-wise error control: Holm's step-down (uniformly more powerful than Bonferroni), Bonferroni,
    or none. Returns adjusted p-values in the input order."""
    m = len(p_values)
    if method == "none" or m == 0:
        return list(p_values)
    if method == "bonferroni":
        return [min(1.0, p * m) for p in p_values]
    if method != "holm":
        raise ValueError(f"unknown correction {method!r}")
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [0.0] * m
    running = 0.0
    for position, i in enumerate(order):
        running = max(running, min(1.0, (m - position) * p_values[i]))
        adjusted[i] = running
    return adjusted
