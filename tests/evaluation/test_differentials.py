"""A demographic differential planted in synthetic data is found; a null one is flagged no more often than
the stated false-positive rate (alpha), checked over many seeds."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from evaluation.analysis import StatisticsSettings, analyse
from evaluation.datasets import SyntheticDataset, SyntheticGroup
from evaluation.protocol import OpenSetProtocol, Role

ALPHA = 0.05
SEEDS = 200


def synthetic_run(seed: int, b_similarity: float, threshold: float, passers_by: int = 2000):
    groups = [
        SyntheticGroup({"group": "a"}),
        SyntheticGroup({"group": "b"}, impostor_similarity=b_similarity),
    ]
    identities = SyntheticDataset(
        "ids", groups, identities=120, images_per_identity=2, passers_by=0, seed=seed, population_seed=seed
    )
    crowd = SyntheticDataset(
        "crowd", groups, identities=0, passers_by=passers_by, seed=10_000 + seed, population_seed=seed
    )
    protocol = OpenSetProtocol(
        [Role(identities.embedded(), True), Role(crowd.embedded(), False)], ["group"], seed=seed
    )
    run = protocol.run(100)
    settings = StatisticsSettings(alpha=ALPHA, bootstrap_samples=0, recommend_on=("fpir",))
    return analyse(run, [threshold], ["group"], settings).rows[0]


def test_planted_false_positive_differential_is_detected():
    for seed in range(5):
        row = synthetic_run(seed, b_similarity=0.3, threshold=0.45)
        a, b = (g for g in row.groups if g.attribute == "group")
        assert b.fpir.value > a.fpir.value
        assert row.significant, f"seed {seed}: planted differential missed ({a.fpir}, {b.fpir})"


@pytest.fixture(scope="module")
def null_rows():
    # Threshold chosen so FPIR is ~5-15%: plenty of events, where the chi-square approximation is good.
    return [synthetic_run(seed, b_similarity=0.0, threshold=0.40) for seed in range(SEEDS)]


def test_null_differential_rejections_stay_within_binomial_tolerance_of_alpha(null_rows):
    fpirs = [row.fpir.value for row in null_rows]
    assert 0.02 < float(np.median(fpirs)) < 0.3, "threshold no longer gives a usable event rate"
    chi2_rejections = sum(row.differentials[0].test.chi2_p_value < ALPHA for row in null_rows)
    low, high = stats.binom.ppf([0.0005, 0.9995], SEEDS, ALPHA)
    assert low <= chi2_rejections <= high, f"{chi2_rejections} of {SEEDS} null runs rejected at alpha {ALPHA}"
    # The decision rule (Fisher exact, Holm-corrected) is conservative: never above the stated rate.
    decisions = sum(row.significant for row in null_rows)
    assert decisions <= high
