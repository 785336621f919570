"""The equity gate's judgement of evidence (pure domain): coverage, verdict, power per group, integrity."""

from __future__ import annotations

import dataclasses
import hashlib
from datetime import UTC, datetime, timedelta

import pytest

from lfr.domain.errors import InvalidInput
from lfr.domain.evaluation import (
    EvaluationSummary,
    EvidenceRules,
    Outcome,
    WindowUnderReview,
    assess,
    canonical_report,
    report_sha256,
    required_searches_per_group,
)
from tests.evaluation.gate_reports import report

T0 = datetime(2026, 11, 21, 9, 0, tzinfo=UTC)
RULES = EvidenceRules()


def evaluation(document, evaluation_id="eval-1", at=T0) -> EvaluationSummary:
    text = canonical_report(document)
    return EvaluationSummary(
        id=evaluation_id,
        model_id=document["model_id"],
        dataset_fingerprint="sha256:data",
        recommended_threshold=document["recommended_threshold"] or 1.0,
        passed=document["passed"],
        report_sha256=hashlib.sha256(text.encode()).hexdigest(),
        recorded_by="aud",
        recorded_at=at,
        index_type=document.get("index_type", "flat"),
        report_json=text,
    )


def window(threshold=0.6, size=500, model="model-a", index="flat") -> WindowUnderReview:
    return WindowUnderReview(model, index, threshold, size)


def test_required_searches_match_the_textbook_two_proportion_figure():
    # Fleiss (no continuity correction): 10% vs 20%, two-sided alpha 0.05, power 0.8 -> 199 per group.
    assert required_searches_per_group(0.10, 2.0, 0.05, 0.80) == 199
    # 5% vs 10% -> 435 per group (same formula; also in standard tables).
    assert required_searches_per_group(0.05, 2.0, 0.05, 0.80) == 435


def test_rarer_false_positives_and_smaller_differentials_need_more_searches():
    assert required_searches_per_group(0.001, 2.0, 0.05, 0.8) > required_searches_per_group(
        0.01, 2.0, 0.05, 0.8
    )
    assert required_searches_per_group(0.01, 1.5, 0.05, 0.8) > required_searches_per_group(
        0.01, 2.0, 0.05, 0.8
    )
    assert required_searches_per_group(0.01, 2.0, 0.05, 0.9) > required_searches_per_group(
        0.01, 2.0, 0.05, 0.8
    )
    with pytest.raises(ValueError, match="must be in"):
        required_searches_per_group(0.0, 2.0, 0.05, 0.8)


def test_a_well_powered_covering_evaluation_passes_with_its_reasons():
    verdict = assess(window(), [evaluation(report())], RULES)
    assert verdict.outcome is Outcome.PASSED, verdict.reasons
    assert verdict.evaluation_id == "eval-1"
    assert "watchlist size 1,000" in verdict.reasons[0]
    assert "5,851 non-mated searches" in verdict.reasons[2]  # 400/100,000 -> 2x needs 5,851 per group


def test_no_evaluation_says_how_to_record_one():
    verdict = assess(window(), [], RULES)
    assert verdict.outcome is Outcome.INSUFFICIENT_EVIDENCE
    assert "no recorded demographic evaluation" in verdict.reasons[0]
    assert "lfr eval record" in verdict.reasons[1]


def test_another_model_or_index_type_is_not_evidence():
    assert (
        assess(window(model="model-b"), [evaluation(report())], RULES).outcome
        is Outcome.INSUFFICIENT_EVIDENCE
    )
    verdict = assess(window(index="hnsw"), [evaluation(report())], RULES)
    assert verdict.outcome is Outcome.INSUFFICIENT_EVIDENCE
    assert "evaluated with index flat, not hnsw" in verdict.reasons[0]


def test_a_report_without_an_index_type_counts_as_exact_flat_search():
    assert assess(window(), [evaluation(report(index_type=None))], RULES).passed


def test_a_watchlist_larger_than_every_evaluated_one_is_not_covered():
    verdict = assess(window(size=1001), [evaluation(report(sizes=(100, 1000)))], RULES)
    assert verdict.outcome is Outcome.INSUFFICIENT_EVIDENCE
    assert "100, 1,000, all smaller than this window's 1,001" in verdict.reasons[0]


def test_the_smallest_covering_watchlist_size_is_judged():
    document = report(sizes=(100, 1000))
    document["watchlists"][1]["thresholds"][1]["significant_differential"] = True  # 0.6 at N = 1000 only
    assert assess(window(size=100), [evaluation(document)], RULES).passed
    assert assess(window(size=101), [evaluation(document)], RULES).outcome is Outcome.FAILED


def test_a_threshold_that_was_not_evaluated_is_not_covered():
    verdict = assess(window(threshold=0.65), [evaluation(report())], RULES)
    assert verdict.outcome is Outcome.INSUFFICIENT_EVIDENCE
    assert "threshold 0.65 was not evaluated" in verdict.reasons[0]
    assert "nearest 0.6, 0.7" in verdict.reasons[0]


def test_a_significant_differential_or_a_threshold_below_the_recommended_fails():
    significant = assess(window(), [evaluation(report(significant_at=(0.6,)))], RULES)
    assert significant.outcome is Outcome.FAILED
    assert "significant demographic differential at threshold 0.6" in significant.reasons[0]
    below = assess(window(threshold=0.5), [evaluation(report(recommended=0.6))], RULES)
    assert below.outcome is Outcome.FAILED
    assert "below 0.6, the recommended threshold" in below.reasons[0]
    never = assess(window(), [evaluation(report(recommended=None))], RULES)
    assert never.outcome is Outcome.FAILED


def test_a_group_with_too_few_searches_makes_the_evidence_insufficient():
    document = report(groups={"F": 50_000, "M": 2_000})
    verdict = assess(window(), [evaluation(document)], RULES)
    assert verdict.outcome is Outcome.INSUFFICIENT_EVIDENCE
    (reason,) = verdict.reasons
    assert "gender=M 2,000" in reason
    assert "gender=F" not in reason
    # 400/52,000 vs twice that, alpha 0.05 two-sided, power 0.8: 3,024.6 by hand
    assert "needs 3,025 non-mated searches per group" in reason


def test_the_detectable_ratio_is_configurable():
    document = report(groups={"F": 50_000, "M": 2_000})
    assert assess(window(), [evaluation(document)], dataclasses.replace(RULES, detectable_ratio=3.0)).passed


def test_no_false_positive_at_the_threshold_is_not_evidence_of_equity():
    verdict = assess(window(), [evaluation(report(false_positives=0))], RULES)
    assert verdict.outcome is Outcome.INSUFFICIENT_EVIDENCE
    assert "saw no false positive" in verdict.reasons[0]


def test_no_labelled_groups_is_not_evidence():
    verdict = assess(window(), [evaluation(report(groups={}))], RULES)
    assert verdict.outcome is Outcome.INSUFFICIENT_EVIDENCE


def test_the_newest_evaluation_of_the_model_and_index_governs():
    older = evaluation(report(), "eval-old", T0)
    newer = evaluation(
        report(false_positives=4, groups={"F": 100, "M": 100}), "eval-new", T0 + timedelta(days=1)
    )
    verdict = assess(window(), [older, newer], RULES)
    assert verdict.evaluation_id == "eval-new"
    assert verdict.outcome is Outcome.INSUFFICIENT_EVIDENCE
    other_index = dataclasses.replace(newer, index_type="hnsw")
    assert assess(window(), [older, other_index], RULES).evaluation_id == "eval-old"


def test_a_stored_report_changed_after_recording_is_not_evidence():
    recorded = evaluation(report())
    edited = recorded.report_json.replace('"count":400', '"count":40')
    assert edited != recorded.report_json
    verdict = assess(window(), [dataclasses.replace(recorded, report_json=edited)], RULES)
    assert verdict.outcome is Outcome.INSUFFICIENT_EVIDENCE
    assert "no longer matches its recorded SHA-256" in verdict.reasons[0]


def test_an_evaluation_recorded_without_its_report_is_not_evidence():
    legacy = dataclasses.replace(evaluation(report()), report_json=None)
    assert "re-record it" in assess(window(), [legacy], RULES).reasons[0]


def test_a_threshold_below_the_floor_fails_whatever_the_evidence():
    verdict = assess(window(threshold=0.0), [evaluation(report(thresholds=(0.0,)))], RULES)
    assert verdict.outcome is Outcome.FAILED
    assert "below the configured floor 0.3" in verdict.reasons[0]


def test_the_report_hash_is_of_canonical_json_so_layout_does_not_matter_but_content_does():
    document = report()
    reordered = dict(reversed(list(document.items())))
    assert report_sha256(reordered) == report_sha256(document)
    changed = report(false_positives=401)
    assert report_sha256(changed) != report_sha256(document)
    with pytest.raises(InvalidInput):
        report_sha256({"x": float("nan")})


def test_evidence_rules_are_validated():
    with pytest.raises(InvalidInput):
        EvidenceRules(detectable_ratio=1.0)
    with pytest.raises(InvalidInput):
        EvidenceRules(power=1.0)
