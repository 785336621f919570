"""`lfr demo --synthetic`: the model-free demo still arms, alerts, forgets and verifies."""

from __future__ import annotations

import re

from typer.testing import CliRunner

from lfr.cli.main import app


def test_synthetic_demo_alerts_only_inside_the_window_and_verifies_the_chain() -> None:
    result = CliRunner().invoke(app, ["demo", "--synthetic", "--subjects", "20", "--passers-by", "25"])
    assert result.exit_code == 0, result.output
    phases = dict(
        re.findall(r"(before the window|inside the window|after the window): .*? -> (\{.*\})", result.output)
    )
    assert phases["before the window"] == "{'not_armed': 28}"
    assert phases["after the window"] == "{'not_armed': 28}"
    assert phases["inside the window"] == "{'no_match': 25, 'alert': 3}"
    assert "alerts stored: 3" in result.output
    assert "audit chain intact" in result.output
    # The demo runs the equity gate in warn (it has no evaluation to record) and shows the verdict.
    assert "equity gate (warn): insufficient evidence" in result.output
