"""lfr's Prometheus alert rules: promtool unit tests for every rule, and a real Prometheus scraping a real
`lfr serve` and evaluating the rules against it."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.support import DEPLOY, ROOT, free_port, tool
from tests.pki import make_pki

RULES = DEPLOY / "prometheus" / "rules.yml"
RULE_TESTS = DEPLOY / "prometheus" / "rules.test.yml"
LFR = str(Path(sys.executable).parent / "lfr")


def alert_rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def test_promtool_rule_unit_tests_pass() -> None:
    done = subprocess.run(
        [tool("promtool"), "test", "rules", str(RULE_TESTS)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_every_alert_has_a_unit_test_and_a_runbook_entry() -> None:
    tested = {
        case["alertname"]
        for test in yaml.safe_load(RULE_TESTS.read_text())["tests"]
        for case in test.get("alert_rule_test", [])
        if case["exp_alerts"]  # a test that only expects silence proves nothing about firing
    }
    operations = (ROOT / "docs" / "operations.md").read_text()
    for rule in alert_rules():
        assert rule["alert"] in tested, f"{rule['alert']} is never shown to fire in rules.test.yml"
        assert f'<a id="{rule["labels"]["runbook"]}"></a>' in operations, rule["alert"]
        assert rule["alert"] in operations


def test_the_compose_prometheus_config_is_valid() -> None:
    done = subprocess.run(
        [tool("promtool"), "check", "config", str(DEPLOY / "prometheus" / "prometheus.yml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as reply:
        return json.loads(reply.read())


@pytest.fixture
def lfr_serve(tmp_path: Path) -> Iterator[int]:
    """A real `lfr serve` with TLS on gRPC (a test certificate valid for one day) and metrics on a free
    port; yields the metrics port."""
    pki = make_pki(tmp_path)
    config = tmp_path / "lfr.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "store": {"url": f"sqlite:///{tmp_path / 'lfr.db'}"},
                "grpc": {
                    "listen": "127.0.0.1:0",
                    "grace_seconds": 1,
                    "tls_cert_file": str(pki.server.cert),
                    "tls_key_file": str(pki.server.key),
                },
                "metrics": {"listen": "127.0.0.1:0"},
                "tablet": {"enabled": False},
            }
        )
    )
    process = subprocess.Popen(
        [LFR, "serve", "--config", str(config)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    try:
        assert process.stdout is not None
        for line in process.stdout:
            if "lfr matcher ready" in line:
                yield int(line.split("metrics :")[1].split()[0])
                break
        else:
            raise AssertionError(f"lfr serve exited with {process.wait()}")
    finally:
        process.terminate()
        process.wait(timeout=30)
        if process.stdout is not None:
            process.stdout.close()


def test_a_real_prometheus_scrapes_lfr_serve_and_evaluates_every_rule(tmp_path: Path, lfr_serve: int) -> None:
    folder = tmp_path / "prometheus"
    folder.mkdir()
    (folder / "rules.yml").write_text(RULES.read_text())
    (folder / "prometheus.yml").write_text(
        yaml.safe_dump(
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "rule_files": ["rules.yml"],
                "scrape_configs": [
                    {"job_name": "lfr-matcher", "static_configs": [{"targets": [f"127.0.0.1:{lfr_serve}"]}]}
                ],
            }
        )
    )
    port = free_port()
    prometheus = subprocess.Popen(
        [
            tool("prometheus"),
            f"--config.file={folder / 'prometheus.yml'}",
            f"--storage.tsdb.path={folder / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    api = f"http://127.0.0.1:{port}/api/v1"
    try:
        firing: dict[str, dict[str, str]] = {}
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and "LfrCertificateExpiresSoon" not in firing:
            time.sleep(0.5)
            try:
                alerts = get_json(f"{api}/alerts")["data"]["alerts"]
            except OSError:
                continue  # not listening yet
            firing = {a["labels"]["alertname"]: a["labels"] for a in alerts if a["state"] == "firing"}
        # The test certificate expires within a day: the rule fires from the real scrape.
        assert firing.get("LfrCertificateExpiresSoon", {}).get("certificate") == "grpc", firing
        assert firing["LfrCertificateExpiresSoon"]["job"] == "lfr-matcher"
        # Nothing is armed and no window is open, the store and the audit chain are fine: nothing else.
        assert set(firing) == {"LfrCertificateExpiresSoon"}, firing

        groups = get_json(f"{api}/rules")["data"]["groups"]
        evaluated = {rule["name"]: rule for group in groups for rule in group["rules"]}
        assert {rule["alert"] for rule in alert_rules()} <= set(evaluated)
        assert all(rule["health"] == "ok" for rule in evaluated.values()), evaluated

        def query(expr: str) -> list[dict[str, Any]]:
            result: list[dict[str, Any]] = get_json(f"{api}/query?query={urllib.parse.quote(expr)}")["data"][
                "result"
            ]
            return result

        # The series the rules read are really exported by lfr serve, with the values a quiet matcher has.
        for expr, expected in (
            ('up{job="lfr-matcher"}', "1"),
            ("lfr_windows_armed", "0"),
            ("lfr_windows_open_by_schedule", "0"),
            ("lfr_audit_chain_ok", "1"),
            ('lfr_rejected_total{reason="store_error"}', "0"),
            ("lfr_windows_read_failures_total", "0"),
        ):
            deadline = time.monotonic() + 20
            while not (result := query(expr)) and time.monotonic() < deadline:
                time.sleep(0.5)
            assert [r["value"][1] for r in result] == [expected], (expr, result)
        assert query("time() - lfr_windows_read_timestamp_seconds < 10")

        # Every expression of the Grafana dashboard is valid PromQL this Prometheus evaluates.
        board = json.loads((DEPLOY / "grafana" / "lfr.json").read_text())
        for panel in board["panels"]:
            for target in panel["targets"]:
                url = f"{api}/query?query={urllib.parse.quote(target['expr'])}"
                assert get_json(url)["status"] == "success", target["expr"]
    finally:
        prometheus.terminate()
        prometheus.wait(timeout=30)
