"""`lfr eval compare`: a candidate is equivalent when its TPIR and FPIR at the reference's recommended
threshold lie inside the reference's 95% intervals, on the same datasets."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from evaluation.compare import NotComparable, compare_reports
from lfr.cli.main import app


def rate(value: float, low: float, high: float) -> dict[str, Any]:
    return {"value": value, "wilson": [low, high]}


def report(model: str, tpir: float, fpir: float, recommended: float | None = 0.4) -> dict[str, Any]:
    rows = [
        {"threshold": 0.38, "tpir": rate(0.99, 0.98, 1.0), "fpir": rate(0.01, 0.005, 0.02)},
        {
            "threshold": 0.4,
            "tpir": rate(tpir, tpir - 0.02, tpir + 0.02),
            "fpir": rate(fpir, 0.0, fpir + 0.0002),
        },
    ]
    return {
        "model_id": model,
        "dataset_fingerprint": "sha256:same",
        "recommended_threshold": recommended,
        "watchlists": [{"size": 100, "thresholds": rows}, {"size": 1000, "thresholds": rows}],
    }


def test_rates_inside_the_reference_intervals_are_equivalent() -> None:
    result = compare_reports(report("a", 0.90, 0.0001), report("b", 0.91, 0.0002))
    assert result.threshold == 0.4
    assert len(result.rates) == 4
    assert result.equivalent


def test_a_tpir_outside_the_reference_interval_is_not_equivalent() -> None:
    result = compare_reports(report("a", 0.90, 0.0001), report("b", 0.87, 0.0001))
    assert not result.equivalent
    assert {(r.rate, r.within) for r in result.rates} == {("tpir", False), ("fpir", True)}


def test_the_threshold_can_be_chosen() -> None:
    result = compare_reports(report("a", 0.90, 0.0001), report("b", 0.50, 0.5), threshold=0.38)
    assert result.equivalent


def test_reports_on_other_datasets_are_not_comparable() -> None:
    other = report("b", 0.90, 0.0001)
    other["dataset_fingerprint"] = "sha256:other"
    with pytest.raises(NotComparable, match="different datasets"):
        compare_reports(report("a", 0.90, 0.0001), other)


def test_without_a_recommendation_the_reports_operating_threshold_is_used() -> None:
    reference = report("a", 0.9, 0.0001, recommended=None)
    reference["recommendation"] = {"operating_threshold": 0.4, "operating_basis": "provisional"}
    result = compare_reports(reference, report("b", 0.9, 0.0001))
    assert (result.threshold, result.basis) == (0.4, "provisional")


def test_no_threshold_at_all_needs_one_given() -> None:
    with pytest.raises(NotComparable, match="no recommended or operating threshold"):
        compare_reports(report("a", 0.9, 0.0, recommended=None), report("b", 0.9, 0.0))


def test_the_command_says_equivalent_or_exits_1(tmp_path: Path) -> None:
    reference, same, worse = (tmp_path / f"{n}.json" for n in ("a", "b", "c"))
    reference.write_text(json.dumps(report("a", 0.90, 0.0001)))
    same.write_text(json.dumps(report("b", 0.905, 0.0001)))
    worse.write_text(json.dumps(report("c", 0.80, 0.0001)))
    ok = CliRunner().invoke(app, ["eval", "compare", str(reference), str(same)])
    assert ok.exit_code == 0, ok.output
    assert "equivalent: within CIs" in ok.output
    bad = CliRunner().invoke(app, ["eval", "compare", str(reference), str(worse)])
    assert bad.exit_code == 1
    assert "not equivalent" in bad.output
