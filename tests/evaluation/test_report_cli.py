"""`lfr eval run` end to end on the synthetic config: a self-contained HTML report, JSON and CSV."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

from typer.testing import CliRunner

from lfr.cli.main import app

CONFIGS = Path(__file__).resolve().parents[2] / "evaluation" / "configs"


def test_eval_run_writes_a_self_contained_report_with_the_npl_table(tmp_path):
    config = tmp_path / "synthetic.yaml"
    shutil.copy(CONFIGS / "synthetic.yaml", config)
    result = CliRunner().invoke(app, ["eval", "run", str(config), "--output-dir", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    html = (tmp_path / "out" / "report.html").read_text()
    assert "NPL-style table" in html
    assert "False positives per passer-by" in html
    assert "data:image/png;base64," in html
    assert "http://" not in html  # no external assets
    assert "https://" not in html
    assert "synthetic" in html.lower()
    document = json.loads((tmp_path / "out" / "report.json").read_text())
    assert document["model_id"] == "synthetic@seeded"
    assert document["dataset_fingerprint"].startswith("sha256:")
    sizes = [w["size"] for w in document["watchlists"]]
    assert sizes == [100, 500]
    # group b's people resemble each other (planted): it must show more false positives at a low threshold
    row = document["watchlists"][0]["thresholds"][0]
    by_race = {g["group"]: g["fpir"]["value"] for g in row["groups"] if g["attribute"] == "race"}
    assert by_race["B"] > by_race["A"]
    assert row["significant_differential"] is True
    recommended = document["recommended_threshold"]
    assert document["passed"] is (recommended is not None)
    with (tmp_path / "out" / "npl_table_n100.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == len(document["watchlists"][0]["thresholds"])
    fpirs = [float(r["fpir"]) for r in rows]
    assert fpirs == sorted(fpirs, reverse=True)


def test_eval_run_reports_a_bad_config_clearly(tmp_path):
    config = tmp_path / "bad.yaml"
    config.write_text("datasets: []\n")
    result = CliRunner().invoke(app, ["eval", "run", str(config)])
    assert result.exit_code == 2
    assert "invalid evaluation config" in result.output


def test_eval_markdown_prints_the_npl_table(tmp_path):
    config = tmp_path / "synthetic.yaml"
    shutil.copy(CONFIGS / "synthetic.yaml", config)
    runner = CliRunner()
    assert (
        runner.invoke(app, ["eval", "run", str(config), "--output-dir", str(tmp_path / "o")]).exit_code == 0
    )
    result = runner.invoke(app, ["eval", "markdown", str(tmp_path / "o" / "report.json"), "-t", "0.45"])
    assert result.exit_code == 0, result.output
    assert "| 0.45 |" in result.output
    assert "Per group at threshold 0.45" in result.output
    assert "| race | B |" in result.output
    assert "Failure to acquire (quality gate: not applicable (synthetic embeddings))" in result.output
    document = json.loads((tmp_path / "o" / "report.json").read_text())
    assert document["quality_gate"]["kind"] == "n/a"
    assert all(g["reasons"] == {} for g in document["failure_to_acquire"])  # synthetic: all acquired


SMALL = """
datasets:
  - {name: ids, role: identities, kind: synthetic,
     synthetic: {identities: 80, images_per_identity: 2, passers_by: 0, groups: [{attributes: {gender: F}}]}}
  - {name: crowd, role: passers_by, kind: synthetic,
     synthetic: {passers_by: 300, groups: [{attributes: {gender: F}}]}}
protocol: {watchlist_sizes: [40]}
attributes: [gender]
intersections: []
thresholds: [0.4, 0.6]
statistics: {bootstrap_samples: 0}
scaling: {sizes: [20, 40], draws: 2}
"""


def test_eval_run_shows_progress_with_time_remaining_unless_quiet(tmp_path):
    config = tmp_path / "small.yaml"
    config.write_text(SMALL)
    shown = CliRunner().invoke(app, ["eval", "run", str(config), "--output-dir", str(tmp_path / "a")])
    assert shown.exit_code == 0, shown.output
    assert "analysing watchlists" in shown.output
    assert "watchlist-size scaling" in shown.output
    assert "<00:" in shown.output  # tqdm's elapsed<remaining
    assert "summary for oversight" in shown.output
    quiet = CliRunner().invoke(app, ["eval", "run", str(config), "--output-dir", str(tmp_path / "b"), "-q"])
    assert quiet.exit_code == 0, quiet.output
    assert "analysing watchlists" not in quiet.output


def test_the_dataset_root_is_a_command_line_option(tmp_path):
    data = tmp_path / "elsewhere" / "faces"
    data.mkdir(parents=True)
    # a duplicate row: reading this manifest fails with its path named, proving which folder was read
    (data / "manifest.csv").write_text("path,identity\na.jpg,x\na.jpg,x\n")
    config = tmp_path / "c.yaml"
    config.write_text("datasets:\n  - {name: faces, role: identities, root: '${LFR_TEST_DATASETS}/faces'}\n")
    folder = CliRunner().invoke(
        app, ["eval", "run", str(config), "-q", "--dataset-root", str(tmp_path / "elsewhere")]
    )
    assert folder.exit_code == 2
    assert str(data / "manifest.csv") in folder.output.replace("\n", "")
    named = CliRunner().invoke(app, ["eval", "run", str(config), "-q", "--dataset-root", f"faces={data}"])
    assert named.exit_code == 2
    assert str(data / "manifest.csv") in named.output.replace("\n", "")
    unknown = CliRunner().invoke(app, ["eval", "run", str(config), "-q", "--dataset-root", "nope=/x"])
    assert unknown.exit_code == 2
    assert "no dataset named 'nope'" in unknown.output
