"""The equity gate's view of an evaluation: is there enough evidence that this model, index and threshold,
at this watchlist size, show no demographic differential in false alerts?

An evaluation is kept as the report `lfr eval run` wrote, with the SHA-256 of its canonical JSON. The gate
reads its evidence from that report at authorisation, never from a summary someone typed in:

- coverage: the report's model id and index type are the window's; a watchlist at least the window's size
  was evaluated; the window's threshold is one of the evaluated thresholds;
- verdict: at that threshold no differential was significant, and the threshold is at or above the
  recommended threshold of that watchlist size;
- power: every tested demographic group has enough non-mated searches to detect an FPIR `ratio` times the
  expected FPIR at that threshold (a two-sided two-proportion test at `alpha` with `power`; normal
  approximation, closed form, as in Fleiss, Statistical Methods for Rates and Proportions, 3rd ed., 4.2).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from statistics import NormalDist
from typing import Any

from lfr.domain.errors import InvalidInput

# What an evaluation of exact cosine search is called; the matcher's default index (`matching.index`).
EXACT_INDEX = "flat"
# Evaluated thresholds are grid values written with 6 decimals; a window at 0.3 matches a grid's 0.300000.
THRESHOLD_TOLERANCE = 1e-6


class EquityGate(StrEnum):
    OFF = "off"
    WARN = "warn"  # authorise, but show and audit the verdict's reasons
    REFUSE = "refuse"  # authorise only with sufficient evidence


class Outcome(StrEnum):
    PASSED = "passed"
    INSUFFICIENT_EVIDENCE = "insufficient evidence"
    FAILED = "failed"  # the evidence shows a significant differential, or a threshold below the recommended


@dataclass(frozen=True, slots=True)
class EvidenceRules:
    """How much evidence the gate asks for (config `policy.equity_*`)."""

    detectable_ratio: float = 2.0  # a group's FPIR this many times the expected must be detectable
    power: float = 0.8
    alpha: float = 0.05
    min_threshold: float = 0.3  # no window below this, whatever the gate (a floor against typing 0)

    def __post_init__(self) -> None:
        if not self.detectable_ratio > 1:
            raise InvalidInput("the detectable FPIR ratio must be above 1")
        if not 0 < self.power < 1 or not 0 < self.alpha < 1:
            raise InvalidInput("power and alpha must be in (0, 1)")


@dataclass(frozen=True, slots=True)
class EquityVerdict:
    outcome: Outcome
    reasons: tuple[str, ...]
    evaluation_id: str | None = None

    @property
    def passed(self) -> bool:
        return self.outcome is Outcome.PASSED

    def describe(self) -> str:
        return f"{self.outcome.value}: " + "; ".join(self.reasons)

    def as_dict(self) -> dict[str, object]:
        return {
            "outcome": self.outcome.value,
            "reasons": list(self.reasons),
            "evaluation_id": self.evaluation_id,
        }


@dataclass(frozen=True, slots=True)
class EvaluationSummary:
    id: str
    model_id: str
    dataset_fingerprint: str
    recommended_threshold: float  # lowest threshold with no significant demographic differential
    passed: bool
    report_sha256: str
    recorded_by: str
    recorded_at: datetime
    index_type: str = EXACT_INDEX
    # Canonical report JSON; None for evaluations recorded before reports were kept (they are no evidence).
    report_json: str | None = None


def canonical_report(document: Mapping[str, Any]) -> str:
    """The one text of a report that is hashed: keys sorted, no spaces, UTF-8, no NaN."""
    try:
        return json.dumps(
            document, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        )
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"the report is not plain JSON: {exc}") from exc


def report_sha256(document: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical_report(document).encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class GroupSearches:
    attribute: str
    group: str
    searches: int  # non-mated searches of this group


@dataclass(frozen=True, slots=True)
class ThresholdEvidence:
    threshold: float
    false_positives: int
    nonmated_searches: int
    significant: bool
    groups: tuple[GroupSearches, ...]  # the groups the differential tests are about


@dataclass(frozen=True, slots=True)
class WatchlistEvidence:
    size: int
    recommended_threshold: float | None
    thresholds: tuple[ThresholdEvidence, ...]

    def at(self, threshold: float) -> ThresholdEvidence | None:
        return next((t for t in self.thresholds if abs(t.threshold - threshold) <= THRESHOLD_TOLERANCE), None)


@dataclass(frozen=True, slots=True)
class ReportEvidence:
    model_id: str
    index_type: str
    dataset_fingerprint: str
    recommended_threshold: float | None
    watchlists: tuple[WatchlistEvidence, ...] = field(default_factory=tuple)

    @classmethod
    def parse(cls, document: Mapping[str, Any]) -> ReportEvidence:
        """Reads what the gate needs from a report.json; InvalidInput naming the first thing missing."""
        try:
            watchlists = tuple(
                WatchlistEvidence(
                    size=int(w["size"]),
                    recommended_threshold=_optional_float(w.get("recommended_threshold")),
                    thresholds=tuple(_threshold_evidence(row) for row in w["thresholds"]),
                )
                for w in document["watchlists"]
            )
            return cls(
                model_id=str(document["model_id"]),
                # Reports written before the index type was recorded were all exact searches.
                index_type=str(document.get("index_type", EXACT_INDEX)),
                dataset_fingerprint=str(document["dataset_fingerprint"]),
                recommended_threshold=_optional_float(document.get("recommended_threshold")),
                watchlists=watchlists,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInput(f"not a report written by `lfr eval run` (missing or bad {exc})") from exc


def _optional_float(value: object) -> float | None:
    return None if value is None else float(value)  # type: ignore[arg-type]


def _threshold_evidence(row: Mapping[str, Any]) -> ThresholdEvidence:
    return ThresholdEvidence(
        threshold=float(row["threshold"]),
        false_positives=int(row["fpir"]["count"]),
        nonmated_searches=int(row["fpir"]["searches"]),
        significant=bool(row["significant_differential"]),
        groups=tuple(
            GroupSearches(str(g["attribute"]), str(g["group"]), int(g["fpir"]["searches"]))
            for g in row["groups"]
            if g["tested"]
        ),
    )


def required_searches_per_group(expected_fpir: float, ratio: float, alpha: float, power: float) -> int:
    """Non-mated searches per group for a two-sided two-proportion test at `alpha` to detect FPIR
    `expected_fpir` against `ratio * expected_fpir` with `power` (equal groups, normal approximation)."""
    if not 0 < expected_fpir < 1:
        raise ValueError(f"expected FPIR {expected_fpir} must be in (0, 1)")
    p1, p2 = expected_fpir, min(expected_fpir * ratio, 1.0)
    if p2 <= p1:
        raise ValueError("no differential left to detect")
    z_alpha = NormalDist().inv_cdf(1 - alpha / 2)
    z_power = NormalDist().inv_cdf(power)
    mean = (p1 + p2) / 2
    spread = z_alpha * math.sqrt(2 * mean * (1 - mean)) + z_power * math.sqrt(p1 * (1 - p1) + p2 * (1 - p2))
    return math.ceil((spread / (p2 - p1)) ** 2)


@dataclass(frozen=True, slots=True)
class WindowUnderReview:
    """What of a window the gate judges."""

    model_id: str
    index_type: str
    threshold: float
    watchlist_size: int


HOW_TO_RECORD = (
    "record an evaluation first: `lfr eval run CONFIG` prints the report's SHA-256, then an auditor or admin "
    "runs `lfr eval record REPORT.json --sha256 HASH`"
)


def assess(
    window: WindowUnderReview, evaluations: Sequence[EvaluationSummary], rules: EvidenceRules
) -> EquityVerdict:
    """The gate's verdict on a window. The newest evaluation of the window's model and index type governs (a
    later one supersedes an earlier one, also when it finds less)."""
    if window.threshold < rules.min_threshold:
        return EquityVerdict(
            Outcome.FAILED,
            (f"threshold {window.threshold:g} is below the configured floor {rules.min_threshold:g}",),
        )
    of_model = [e for e in evaluations if e.model_id == window.model_id]
    if not of_model:
        return EquityVerdict(
            Outcome.INSUFFICIENT_EVIDENCE,
            (f"model {window.model_id} has no recorded demographic evaluation", HOW_TO_RECORD),
        )
    matching = [e for e in of_model if e.index_type == window.index_type]
    if not matching:
        evaluated = ", ".join(sorted({e.index_type for e in of_model}))
        return EquityVerdict(
            Outcome.INSUFFICIENT_EVIDENCE,
            (
                f"model {window.model_id} was evaluated with index {evaluated}, not {window.index_type} "
                "(an approximate index changes which faces are found)",
                HOW_TO_RECORD,
            ),
        )
    latest = max(matching, key=lambda e: (e.recorded_at, e.id))
    verdict = _assess_one(window, latest, rules)
    return EquityVerdict(verdict.outcome, verdict.reasons, latest.id)


def _assess_one(
    window: WindowUnderReview, evaluation: EvaluationSummary, rules: EvidenceRules
) -> EquityVerdict:
    name = f"evaluation {evaluation.id}"
    if evaluation.report_json is None:
        return _insufficient(f"{name} was recorded without its report, so it cannot be checked; re-record it")
    if hashlib.sha256(evaluation.report_json.encode("utf-8")).hexdigest() != evaluation.report_sha256:
        return _insufficient(f"the stored report of {name} no longer matches its recorded SHA-256")
    try:
        evidence = ReportEvidence.parse(json.loads(evaluation.report_json))
    except (InvalidInput, ValueError) as exc:
        return _insufficient(f"the stored report of {name} cannot be read: {exc}")
    large_enough = sorted(
        (w for w in evidence.watchlists if w.size >= window.watchlist_size), key=lambda w: w.size
    )
    if not large_enough:
        sizes = ", ".join(f"{w.size:,}" for w in evidence.watchlists) or "none"
        return _insufficient(
            f"{name} evaluated watchlists of {sizes}, all smaller than this window's "
            f"{window.watchlist_size:,} people (false alerts grow with watchlist size)"
        )
    # The smallest evaluated size that covers the window is the closest to how it will run.
    watchlist = large_enough[0]
    where = f"{name} at watchlist size {watchlist.size:,}"
    row = watchlist.at(window.threshold)
    if row is None:
        tested = [t.threshold for t in watchlist.thresholds]
        return _insufficient(
            f"threshold {window.threshold:g} was not evaluated by {name} "
            f"(evaluated {min(tested, default=0):g} to {max(tested, default=0):g}: "
            f"nearest {_nearest(tested, window.threshold)})"
        )
    failures = []
    if row.significant:
        failures.append(
            f"{where} found a significant demographic differential at threshold {window.threshold:g}"
        )
    if watchlist.recommended_threshold is None:
        failures.append(f"{where} found a significant differential at every threshold tested")
    elif window.threshold < watchlist.recommended_threshold - THRESHOLD_TOLERANCE:
        failures.append(
            f"threshold {window.threshold:g} is below {watchlist.recommended_threshold:g}, the recommended "
            f"threshold of {where}"
        )
    shortfalls = _power_shortfalls(row, rules, where)
    if failures:
        return EquityVerdict(Outcome.FAILED, (*failures, *shortfalls))
    if shortfalls:
        return EquityVerdict(Outcome.INSUFFICIENT_EVIDENCE, tuple(shortfalls))
    needed = required_searches_per_group(
        row.false_positives / row.nonmated_searches, rules.detectable_ratio, rules.alpha, rules.power
    )
    return EquityVerdict(
        Outcome.PASSED,
        (
            f"{where} covers model {window.model_id}, index {window.index_type}, threshold "
            f"{window.threshold:g} and {window.watchlist_size:,} listed people",
            f"no significant differential at {window.threshold:g}; FPIR there "
            f"{row.false_positives}/{row.nonmated_searches:,}",
            f"every tested group has at least {needed:,} non-mated searches, enough to detect a "
            f"{rules.detectable_ratio:g}x FPIR with {rules.power:.0%} power at alpha {rules.alpha:g}",
        ),
    )


def _power_shortfalls(row: ThresholdEvidence, rules: EvidenceRules, where: str) -> list[str]:
    if row.nonmated_searches == 0:
        return [f"{where} has no non-mated searches"]
    if not row.groups:
        return [f"{where} has no labelled demographic groups, so no differential could be tested"]
    if row.false_positives == 0:
        return [
            f"{where} saw no false positive at threshold {row.threshold:g} in {row.nonmated_searches:,} "
            f"non-mated searches, so its FPIR there cannot be estimated and a {rules.detectable_ratio:g}x "
            "differential could not be detected: it needs more non-mated searches"
        ]
    expected = row.false_positives / row.nonmated_searches
    if expected >= 1:
        return [
            f"{where} counts {row.false_positives:,} false positives in {row.nonmated_searches:,} searches"
        ]
    needed = required_searches_per_group(expected, rules.detectable_ratio, rules.alpha, rules.power)
    short = [g for g in row.groups if g.searches < needed]
    if not short:
        return []
    listed = ", ".join(f"{g.attribute}={g.group} {g.searches:,}" for g in short[:8])
    more = f" and {len(short) - 8} more" if len(short) > 8 else ""
    return [
        f"{where}: detecting a {rules.detectable_ratio:g}x FPIR differential at threshold {row.threshold:g} "
        f"(expected FPIR {row.false_positives}/{row.nonmated_searches:,}, about 1 in {1 / expected:,.0f}) "
        f"with {rules.power:.0%} power at alpha {rules.alpha:g} needs {needed:,} non-mated searches per "
        f"group; {len(short)} group(s) have fewer: {listed}{more}"
    ]


def _nearest(values: Sequence[float], target: float) -> str:
    below = max((v for v in values if v < target), default=None)
    above = min((v for v in values if v > target), default=None)
    return ", ".join(f"{v:g}" for v in (below, above) if v is not None) or "none"


def _insufficient(reason: str) -> EquityVerdict:
    return EquityVerdict(Outcome.INSUFFICIENT_EVIDENCE, (reason,))
