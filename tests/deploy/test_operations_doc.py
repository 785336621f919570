"""docs/operations.md documents every metric each lfr process registers: a new metric without a row there
fails here (the doc says how to add one)."""

from __future__ import annotations

import re

from prometheus_client import CollectorRegistry

from lfr.adapters.camera.metrics import CameraMetrics
from lfr.adapters.metrics import PrometheusIngestMetrics
from lfr.adapters.tablet.operations import TabletMetrics
from tests.deploy.support import ROOT

OPERATIONS = ROOT / "docs" / "operations.md"


def documented_rows() -> dict[str, str]:
    rows = {}
    for line in OPERATIONS.read_text().splitlines():
        if match := re.match(r"\| `(lfr_[a-z_]+)` \| (counter|gauge|histogram|info) \|", line):
            rows[match.group(1)] = match.group(2)
    return rows


def test_every_registered_metric_has_a_row_with_its_type() -> None:
    registry = CollectorRegistry()
    PrometheusIngestMetrics(registry)
    CameraMetrics(registry, "cam-doc")
    TabletMetrics(registry)
    suffix = {"counter": "_total", "info": "_info"}  # the names Prometheus shows
    types = {f.name + suffix.get(f.type, ""): f.type for f in registry.collect()}
    rows = documented_rows()
    missing = sorted(set(types) - set(rows))
    assert not missing, f"add a row to docs/operations.md for {missing}"
    wrong = {name: (rows[name], kind) for name, kind in types.items() if rows[name] != kind}
    assert not wrong, wrong
    stale = sorted(set(rows) - set(types))
    assert not stale, f"docs/operations.md documents metrics nothing registers: {stale}"
