"""The derived monitoring files are what deploy/render_monitoring.py renders (so the PrometheusRule is the
promtool-tested rules.yml, and the dashboard is the one defined in code), and the dashboard shows what an
operator needs, from metrics lfr exports."""

from __future__ import annotations

import importlib.util
import json
import re
from types import ModuleType

import yaml
from prometheus_client import CollectorRegistry

from lfr.adapters.camera.metrics import CameraMetrics
from lfr.adapters.metrics import PrometheusIngestMetrics
from lfr.adapters.tablet.operations import TabletMetrics
from tests.deploy.support import DEPLOY


def renderer() -> ModuleType:
    spec = importlib.util.spec_from_file_location("render_monitoring", DEPLOY / "render_monitoring.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_files_are_what_the_renderer_makes() -> None:
    render = renderer()
    for path, make in render.RENDERED.items():
        assert path.read_text() == make(), f"{path} is stale: run python deploy/render_monitoring.py"


def test_the_prometheus_rule_holds_exactly_the_tested_rules() -> None:
    rule = yaml.safe_load((DEPLOY / "k8s" / "base" / "prometheusrule.yaml").read_text())
    assert (
        rule["spec"]["groups"] == yaml.safe_load((DEPLOY / "prometheus" / "rules.yml").read_text())["groups"]
    )


def exported_series() -> set[str]:
    registry = CollectorRegistry()
    PrometheusIngestMetrics(registry)
    CameraMetrics(registry, "c")
    TabletMetrics(registry)
    suffixes = {
        "counter": ("_total",),
        "histogram": ("_bucket", "_sum", "_count"),
        "gauge": ("",),
        "info": ("_info",),
    }
    return {f.name + suffix for f in registry.collect() for suffix in suffixes[f.type]}


def dashboard_expressions() -> list[str]:
    board = json.loads((DEPLOY / "grafana" / "lfr.json").read_text())
    return [target["expr"] for panel in board["panels"] for target in panel["targets"]]


def test_the_dashboard_shows_what_an_operator_needs() -> None:
    board = json.loads((DEPLOY / "grafana" / "lfr.json").read_text())
    text = " ".join(p["title"].lower() for p in board["panels"])
    for topic in ("faces per second per camera", "alerts", "decisions", "latency", "armed", "store errors"):
        assert topic in text, topic
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))


def test_every_dashboard_series_is_exported_or_recorded() -> None:
    rules = yaml.safe_load((DEPLOY / "prometheus" / "rules.yml").read_text())["groups"]
    recorded = {r["record"] for g in rules for r in g["rules"] if "record" in r}
    known = exported_series() | recorded
    for expr in dashboard_expressions():
        for name in re.findall(r"\b(lfr[a-z0-9_:]*)", expr):
            assert name in known, (name, expr)
