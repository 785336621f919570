"""Identification metrics against hand-computed cases, and their invariants as properties."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evaluation import metrics
from lfr.domain.matching import Candidate, decide

NONMATED = np.array([0.10, 0.35, 0.50, 0.62, 0.20])
# rank of the listed person (0 = not returned) and its score
RANKS = np.array([1, 1, 2, 1, 0, 1])
SCORES = np.array([0.80, 0.55, 0.70, 0.40, np.nan, 0.61])


def test_fpir_counts_top_scores_at_or_above_threshold():
    assert metrics.fpir(NONMATED, 0.5) == pytest.approx(2 / 5)  # 0.50 and 0.62; >= like decide()
    assert metrics.fpir(NONMATED, 0.63) == 0.0
    assert metrics.fpir(NONMATED, 0.0) == 1.0
    assert math.isnan(metrics.fpir(np.array([]), 0.5))


def test_fpir_agrees_with_lfr_decision_at_the_boundary():
    for score in NONMATED:
        alerted = decide((Candidate("s", float(score)),), 0.5).is_match
        assert alerted == (metrics.false_positives(np.array([score]), 0.5) == 1)


def test_mated_search_hits_only_with_the_right_identity_at_rank_one_above_threshold():
    # at 0.6: hits are searches 0 (0.80) and 5 (0.61); search 2 is rank 2, 3 is below, 4 not returned
    assert metrics.tpir(RANKS, SCORES, 0.6) == pytest.approx(2 / 6)
    assert metrics.fnir(RANKS, SCORES, 0.6) == pytest.approx(4 / 6)
    # allowing rank 2 admits search 2 (0.70)
    assert metrics.tpir(RANKS, SCORES, 0.6, rank=2) == pytest.approx(3 / 6)
    assert metrics.rank1_identification_rate(RANKS) == pytest.approx(4 / 6)
    assert metrics.rank_identification_rate(RANKS, 2) == pytest.approx(5 / 6)


def test_det_curve_matches_pointwise_rates():
    thresholds = np.array([0.3, 0.5, 0.6, 0.9])
    det = metrics.det_curve(RANKS, SCORES, NONMATED, thresholds)
    for t, f_p, f_n in zip(thresholds, det.fpir, det.fnir, strict=True):
        assert f_p == pytest.approx(metrics.fpir(NONMATED, t))
        assert f_n == pytest.approx(metrics.fnir(RANKS, SCORES, t))


def test_fnir_at_fixed_fpir_picks_the_lowest_threshold_within_the_budget():
    # FPIR <= 0.2 allows one false positive of five: threshold just above 0.50, so only 0.62 alerts
    fnir, threshold = metrics.fnir_at_fpir(RANKS, SCORES, NONMATED, 0.2)
    assert 0.50 < threshold <= 0.5000001
    assert metrics.fpir(NONMATED, threshold) == pytest.approx(0.2)
    assert fnir == pytest.approx(metrics.fnir(RANKS, SCORES, threshold))  # hits: 0.80, 0.55, 0.61 -> 3 of 6
    assert fnir == pytest.approx(3 / 6)


def test_wilson_and_clopper_pearson_against_published_values():
    # Wilson 95% for 8/10: (0.4902, 0.9433); Clopper-Pearson 95%: (0.4439, 0.9748) (standard tables)
    np.testing.assert_allclose(metrics.wilson_interval(8, 10), (0.4902, 0.9433), atol=1e-4)
    np.testing.assert_allclose(metrics.clopper_pearson_interval(8, 10), (0.4439, 0.9748), atol=1e-4)
    assert metrics.clopper_pearson_interval(0, 20)[0] == 0.0
    assert metrics.clopper_pearson_interval(0, 20)[1] == pytest.approx(1 - 0.025 ** (1 / 20))


def test_bootstrap_by_person_is_wider_when_a_persons_searches_agree():
    rng = np.random.default_rng(0)
    person_hit = rng.random(40) < 0.5
    outcomes = np.repeat(person_hit, 10)  # ten searches per person, all alike
    people = np.repeat(np.arange(40), 10)
    low, high = metrics.bootstrap_interval_by_cluster(outcomes, people, samples=2000, seed=1)
    naive_low, naive_high = metrics.wilson_interval(int(outcomes.sum()), outcomes.size)
    assert low <= outcomes.mean() <= high
    assert high - low > 1.8 * (naive_high - naive_low)  # ~sqrt(10) wider in truth


def test_differential_test_flags_a_large_difference_and_not_equal_rates():
    different = metrics.differential_test({"a": (5, 1000), "b": (40, 1000)})
    assert different.min_pair_p_value < 1e-6
    assert different.max_min_ratio == pytest.approx(8.0)
    same = metrics.differential_test({"a": (20, 1000), "b": (20, 1000), "c": (0, 0)})
    assert same.groups == ("a", "b")  # empty groups are left out
    assert same.min_pair_p_value == pytest.approx(1.0)
    assert same.chi2_p_value == pytest.approx(1.0)


def test_holm_adjustment_hand_computed():
    # sorted 0.01, 0.02, 0.04 -> 3*0.01, 2*0.02, 1*0.04 with running maximum -> 0.03, 0.04, 0.04
    assert metrics.adjust_p_values([0.04, 0.01, 0.02]) == pytest.approx([0.04, 0.03, 0.04])
    assert metrics.adjust_p_values([0.04, 0.01], "bonferroni") == pytest.approx([0.08, 0.02])


scores_arrays = st.lists(st.floats(-1, 1, allow_nan=False), min_size=1, max_size=60).map(np.array)


@given(scores_arrays, st.floats(-1, 1), st.floats(-1, 1))
def test_fpir_is_a_rate_and_non_increasing_in_threshold(scores, t1, t2):
    low, high = sorted((t1, t2))
    assert 0.0 <= metrics.fpir(scores, high) <= metrics.fpir(scores, low) <= 1.0


@given(
    st.lists(st.tuples(st.integers(0, 5), st.floats(-1, 1, allow_nan=False)), min_size=1, max_size=60),
    st.floats(-1, 1),
    st.floats(-1, 1),
)
def test_tpir_is_a_rate_and_non_increasing_in_threshold(searches, t1, t2):
    ranks = np.array([r for r, _ in searches])
    scores = np.array([s if r else np.nan for r, s in searches])
    low, high = sorted((t1, t2))
    assert 0.0 <= metrics.tpir(ranks, scores, high) <= metrics.tpir(ranks, scores, low) <= 1.0
    assert metrics.tpir(ranks, scores, low) + metrics.fnir(ranks, scores, low) == pytest.approx(1.0)


@settings(max_examples=200)
@given(
    st.integers(0, 500).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))),
    st.sampled_from([0.9, 0.95]),
)
def test_intervals_contain_the_point_estimate(kn, confidence):
    k, n = kn
    if n == 0:
        return
    p = k / n
    for low, high in (
        metrics.wilson_interval(k, n, confidence),
        metrics.clopper_pearson_interval(k, n, confidence),
    ):
        assert 0.0 <= low <= p + 1e-12
        assert p - 1e-12 <= high <= 1.0
