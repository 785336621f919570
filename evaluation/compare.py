"""Is a candidate model equivalent to a reference one at the reference's operating point?

Both report records (`report.json`) must come from the same datasets (same fingerprint). At the reference's
recommended threshold (or, when it recommends none, the operating threshold its report reads its figures at,
e.g. the provisional one), for every watchlist size both evaluated, the candidate's TPIR and FPIR must each
lie inside the reference's 95% confidence interval (Wilson score). That is the test `lfr model prepare` asks
of a prepared recogniser: what the harness measures for it is indistinguishable, on this data, from the
original's.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

RATES = ("tpir", "fpir")


class NotComparable(ValueError):
    """The two records cannot be compared: other datasets, or no shared threshold or watchlist size."""


@dataclass(frozen=True, slots=True)
class RateComparison:
    size: int
    rate: str
    threshold: float
    reference: float
    reference_interval: tuple[float, float]
    candidate: float
    candidate_interval: tuple[float, float]

    @property
    def within(self) -> bool:
        low, high = self.reference_interval
        return low <= self.candidate <= high


@dataclass(frozen=True, slots=True)
class Comparison:
    reference_model: str
    candidate_model: str
    threshold: float
    basis: str
    reference_recommended: float | None
    candidate_recommended: float | None
    rates: list[RateComparison]

    @property
    def equivalent(self) -> bool:
        return all(r.within for r in self.rates)


def compare_reports(
    reference: Mapping[str, Any], candidate: Mapping[str, Any], threshold: float | None = None
) -> Comparison:
    """Compare at `threshold`, by default the reference's operating point (see `operating_point`)."""
    if reference.get("dataset_fingerprint") != candidate.get("dataset_fingerprint"):
        raise NotComparable("the two reports were made on different datasets (dataset_fingerprint differs)")
    at, basis = (threshold, "given") if threshold is not None else operating_point(reference)
    candidate_sizes = {w["size"]: w for w in candidate["watchlists"]}
    rates = []
    for watchlist in reference["watchlists"]:
        other = candidate_sizes.get(watchlist["size"])
        if other is None:
            continue
        ours, theirs = _row_at(watchlist, at), _row_at(other, at)
        for rate in RATES:
            rates.append(
                RateComparison(
                    size=int(watchlist["size"]),
                    rate=rate,
                    threshold=float(at),
                    reference=float(ours[rate]["value"]),
                    reference_interval=_interval(ours[rate]),
                    candidate=float(theirs[rate]["value"]),
                    candidate_interval=_interval(theirs[rate]),
                )
            )
    if not rates:
        raise NotComparable("the two reports share no watchlist size")
    return Comparison(
        reference_model=str(reference.get("model_id")),
        candidate_model=str(candidate.get("model_id")),
        threshold=float(at),
        basis=basis,
        reference_recommended=reference.get("recommended_threshold"),
        candidate_recommended=candidate.get("recommended_threshold"),
        rates=rates,
    )


def operating_point(report: Mapping[str, Any]) -> tuple[float, str]:
    """The recommended threshold, else the operating threshold the report reads its figures at, and which."""
    if report.get("recommended_threshold") is not None:
        return float(report["recommended_threshold"]), "recommended"
    recommendation = report.get("recommendation") or {}
    if recommendation.get("operating_threshold") is not None:
        return float(recommendation["operating_threshold"]), str(
            recommendation.get("operating_basis") or "operating"
        )
    raise NotComparable(
        "the reference report has no recommended or operating threshold: give one to compare at"
    )


def _row_at(watchlist: Mapping[str, Any], threshold: float) -> Mapping[str, Any]:
    # Thresholds are a float grid (0.20, 0.22, ...) written by one code path: match to within rounding.
    for row in watchlist["thresholds"]:
        if abs(float(row["threshold"]) - threshold) < 1e-6:
            return dict(row)
    raise NotComparable(f"watchlist size {watchlist['size']} has no row at threshold {threshold:g}")


def _interval(rate: Mapping[str, Any]) -> tuple[float, float]:
    low, high = rate["wilson"]
    return float(low), float(high)
