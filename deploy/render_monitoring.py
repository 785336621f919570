"""Renders the monitoring files that are derived, so they cannot drift from their sources:

- deploy/k8s/base/prometheusrule.yaml: the PrometheusRule holding deploy/prometheus/rules.yml's groups;
- deploy/grafana/lfr.json: the Grafana dashboard, defined below panel by panel.

Run `python deploy/render_monitoring.py` after changing either; tests/deploy/test_monitoring.py fails while
the committed files differ from what this renders."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import yaml

DEPLOY = Path(__file__).resolve().parent
RULES = DEPLOY / "prometheus" / "rules.yml"
PROMETHEUS_RULE = DEPLOY / "k8s" / "base" / "prometheusrule.yaml"
DASHBOARD = DEPLOY / "grafana" / "lfr.json"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}


def prometheus_rule() -> str:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    resource = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "lfr", "labels": {"app.kubernetes.io/part-of": "lfr"}},
        "spec": {"groups": groups},
    }
    header = "# Rendered from deploy/prometheus/rules.yml by deploy/render_monitoring.py: do not edit.\n"
    return header + yaml.safe_dump(resource, sort_keys=False, width=110)


def _target(expr: str, legend: str) -> dict[str, Any]:
    return {"datasource": DATASOURCE, "expr": expr, "legendFormat": legend, "refId": "A"}


def _panel(title: str, kind: str, unit: str, targets: list[tuple[str, str]], **extra: Any) -> dict[str, Any]:
    refs = "ABCDEFGH"
    return {
        "title": title,
        "type": kind,
        "datasource": DATASOURCE,
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "targets": [_target(expr, legend) | {"refId": refs[i]} for i, (expr, legend) in enumerate(targets)],
        **extra,
    }


# (title, panel type, unit, [(PromQL, legend)]) in reading order; two panels per row.
PANELS: list[tuple[str, str, str, list[tuple[str, str]]]] = [
    (
        "Armed windows (per matcher) and windows open by schedule",
        "timeseries",
        "short",
        [
            ("lfr_windows_armed", "armed {{instance}}"),
            ("max(lfr_windows_open_by_schedule)", "open by schedule"),
        ],
    ),
    (
        "Faces per second per camera",
        "timeseries",
        "ops",
        [
            ("sum by (camera) (rate(lfr_faces_received_total[1m]))", "{{camera}}"),
        ],
    ),
    (
        "Decisions per second by outcome",
        "timeseries",
        "ops",
        [
            ("sum by (outcome) (rate(lfr_faces_received_total[1m]))", "{{outcome}}"),
        ],
    ),
    (
        "Alerts raised and adjudicated (per hour)",
        "timeseries",
        "short",
        [
            ("sum(increase(lfr_alerts_raised_total[1h]))", "raised"),
            ("sum by (outcome) (increase(lfr_alerts_adjudicated_total[1h]))", "adjudicated {{outcome}}"),
        ],
    ),
    (
        "Observation to alert, p50 / p99",
        "timeseries",
        "s",
        [
            (
                "histogram_quantile(0.5, sum by (le) (rate(lfr_observation_to_alert_seconds_bucket[5m])))",
                "p50",
            ),
            ("lfr:observation_to_alert_seconds:p99_5m", "p99"),
        ],
    ),
    (
        "Match latency per micro-batch, p50 / p99",
        "timeseries",
        "s",
        [
            ("histogram_quantile(0.5, sum by (le) (rate(lfr_match_latency_seconds_bucket[5m])))", "p50"),
            ("histogram_quantile(0.99, sum by (le) (rate(lfr_match_latency_seconds_bucket[5m])))", "p99"),
        ],
    ),
    (
        "Store errors",
        "timeseries",
        "short",
        [
            (
                'sum by (instance) (increase(lfr_rejected_total{reason="store_error"}[5m]))',
                "alerts not stored {{instance}}",
            ),
            (
                "sum by (instance) (increase(lfr_windows_read_failures_total[5m]))",
                "window reads failed {{instance}}",
            ),
            ("sum by (duty) (increase(lfr_duty_failures_total[5m]))", "duty {{duty}}"),
        ],
    ),
    (
        "Rejected observations by reason",
        "timeseries",
        "ops",
        [
            ("sum by (reason) (rate(lfr_rejected_total[5m]))", "{{reason}}"),
        ],
    ),
    (
        "Camera streams open",
        "timeseries",
        "short",
        [
            ("sum by (camera) (lfr_camera_streams_open)", "{{camera}}"),
        ],
    ),
    (
        "Audit chain and certificates",
        "stat",
        "short",
        [
            ("min(lfr_audit_chain_ok)", "audit chain ok"),
            (
                "min by (certificate) (lfr_certificate_expiry_timestamp_seconds - time()) / 86400",
                "{{certificate}} days left",
            ),
        ],
    ),
]


def dashboard() -> str:
    panels = []
    for index, (title, kind, unit, targets) in enumerate(PANELS):
        grid = {"h": 8, "w": 12, "x": 12 * (index % 2), "y": 8 * (index // 2)}
        panels.append(_panel(title, kind, unit, targets, id=index + 1, gridPos=grid))
    board = {
        "uid": "lfr-overview",
        "title": "lfr: matcher and cameras",
        "description": "Generated by deploy/render_monitoring.py; metrics in docs/operations.md.",
        "tags": ["lfr"],
        "timezone": "utc",
        "schemaVersion": 39,
        "version": 1,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {
            "list": [
                {
                    "name": "datasource",
                    "type": "datasource",
                    "query": "prometheus",
                    "label": "Prometheus",
                    "current": {},
                }
            ]
        },
        "panels": panels,
    }
    return json.dumps(board, indent=2) + "\n"


RENDERED = {PROMETHEUS_RULE: prometheus_rule, DASHBOARD: dashboard}


def main() -> int:
    for path, render in RENDERED.items():
        path.write_text(render())
        print(f"wrote {path.relative_to(DEPLOY.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
