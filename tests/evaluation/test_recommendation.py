"""The recommended threshold needs both: no significant differential AND FPIR's upper confidence bound below
the operational ceiling (default 1 in 6,000). A small evaluation cannot show the ceiling and so recommends
nothing; watchlist-size scaling reports several seeded draws with their spread, synthetic filler labelled."""

from __future__ import annotations

import json

import pytest
import yaml

from evaluation import metrics
from evaluation.analysis import Rate, ThresholdResult, recommend_threshold, searches_to_show_ceiling
from evaluation.config import load_eval_config
from evaluation.runner import run_evaluation

CEILING = 1 / 6000


def row(threshold: float, false_positives: int, searches: int, significant: bool) -> ThresholdResult:
    fpir = Rate.of(false_positives, searches, 0.95)
    mated = Rate.of(90, 100, 0.95)
    return ThresholdResult(threshold, mated, mated, fpir, (), (), significant, {"fpir": significant})


def test_searches_needed_to_show_the_ceiling_is_where_zero_false_alerts_first_suffice():
    needed = searches_to_show_ceiling(CEILING, 0.95)
    assert metrics.clopper_pearson_interval(0, needed, 0.95)[1] < CEILING
    assert metrics.clopper_pearson_interval(0, needed - 1, 0.95)[1] >= CEILING
    assert 22_000 < needed < 22_200  # about 3.69 x 6,000


def test_the_recommendation_needs_no_differential_and_an_fpir_bound_below_the_ceiling():
    n = 60_000
    rows = [
        row(0.30, 600, n, True),  # a differential
        row(0.40, 60, n, False),  # no differential, but 1 in 1,000
        row(0.50, 10, n, False),  # point 1 in 6,000, bound above the ceiling
        row(0.60, 2, n, False),  # bound below 1 in 6,000
        row(0.70, 0, n, False),
    ]
    assert recommend_threshold(rows) == 0.40  # the differential alone (the rule before the ceiling)
    assert recommend_threshold(rows, CEILING) == 0.60
    # a differential at a high threshold blocks everything below it
    rows[3] = row(0.60, 2, n, True)
    assert recommend_threshold(rows, CEILING) == 0.70


def small_config(tmp_path, passers_by: int, ceiling: float | None, scaling: dict | None = None):
    groups = [{"attributes": {"gender": "F"}}, {"attributes": {"gender": "M"}}]
    config = {
        "name": "small",
        "seed": 3,
        "output_dir": str(tmp_path / "out"),
        "datasets": [
            {
                "name": "ids",
                "role": "identities",
                "kind": "synthetic",
                "synthetic": {"identities": 150, "images_per_identity": 3, "passers_by": 0, "groups": groups},
            },
            {
                "name": "crowd",
                "role": "passers_by",
                "kind": "synthetic",
                "synthetic": {"passers_by": passers_by, "groups": groups},
            },
        ],
        "protocol": {"watchlist_sizes": [100]},
        "attributes": ["gender"],
        "intersections": [],
        "thresholds": {"start": 0.3, "stop": 0.9, "step": 0.05},
        "statistics": {"bootstrap_samples": 0, "fpir_ceiling_one_in": ceiling},
        "scaling": scaling,
    }
    path = tmp_path / "small.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_a_small_evaluation_cannot_pass_and_says_why(tmp_path):
    """The issue's case: about 1,500 images. Under the old rule it recommended a low threshold in a green
    box; now it recommends nothing and states how many non-mated searches the ceiling needs."""
    path = small_config(tmp_path, passers_by=1_000, ceiling=6000)
    result = run_evaluation(load_eval_config(path), path.read_text())
    document = json.loads(result.paths["json"].read_text())
    assert document["recommended_threshold"] is None
    assert document["passed"] is False
    recommendation = document["recommendation"]
    assert recommendation["differential_free_threshold"] is not None  # what the old rule would have said
    assert recommendation["nonmated_searches_needed_for_ceiling"] == searches_to_show_ceiling(CEILING, 0.95)
    assert "No threshold can show FPIR below 1 in 6,000" in recommendation["reason"]
    html = result.paths["html"].read_text()
    assert "No threshold recommended" in html
    assert "verdict pass" not in html
    summary = result.paths["summary"].read_text()
    assert "No threshold can be recommended" in summary


def test_without_a_ceiling_the_old_rule_applies(tmp_path):
    path = small_config(tmp_path, passers_by=1_000, ceiling=None)
    document = json.loads(run_evaluation(load_eval_config(path), path.read_text()).paths["json"].read_text())
    assert document["recommended_threshold"] == document["recommendation"]["differential_free_threshold"]
    assert document["passed"] is True


def test_watchlist_scaling_averages_seeded_draws_and_labels_synthetic_filler(tmp_path):
    path = small_config(
        tmp_path, passers_by=1_000, ceiling=None, scaling={"sizes": [20, 100, 1000], "draws": 3}
    )
    document = json.loads(run_evaluation(load_eval_config(path), path.read_text()).paths["json"].read_text())
    scaling = {x["size"]: x for x in document["scaling"]}
    assert sorted(scaling) == [20, 100, 1000]
    assert [d["seed"] for d in scaling[20]["draws"]] == [3, 4, 5]
    assert scaling[1000]["synthetic_filler"] > 0  # 150 real identities: the rest is synthetic, labelled
    assert scaling[100]["synthetic_filler"] == 0
    # different draws list different people, so the rates differ and the spread is reported
    fpirs = [d["fpir"] for d in scaling[20]["draws"]]
    assert len(set(fpirs)) > 1
    spread = scaling[20]["spread"]["fpir"]
    assert spread["min"] == min(fpirs)
    assert spread["max"] == max(fpirs)
    assert spread["sd"] > 0
    assert all(d["nonmated_above_median_mated"] >= 0 for d in scaling[20]["draws"])
    # FPIR grows with the watchlist (open-set search), on average over draws
    assert scaling[1000]["spread"]["fpir"]["mean"] >= scaling[20]["spread"]["fpir"]["mean"]


def test_scaling_without_synthetic_filler_reports_the_size_it_cannot_draw(tmp_path):
    path = small_config(
        tmp_path,
        passers_by=300,
        ceiling=None,
        scaling={"sizes": [100, 1000], "draws": 2, "synthetic_filler": False},
    )
    document = json.loads(run_evaluation(load_eval_config(path), path.read_text()).paths["json"].read_text())
    scaling = {x["size"]: x for x in document["scaling"]}
    assert len(scaling[100]["draws"]) == 2
    assert "synthetic filler" in scaling[1000]["error"]
    assert scaling[1000]["draws"] == []


@pytest.mark.parametrize("value", [0, 1, -5])
def test_a_ceiling_must_be_one_in_more_than_one(tmp_path, value):
    from evaluation.config import ConfigError

    path = small_config(tmp_path, passers_by=10, ceiling=value)
    with pytest.raises(ConfigError, match="fpir_ceiling_one_in"):
        load_eval_config(path)
