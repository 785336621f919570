"""deploy/compose.yaml and the Dockerfiles, checked without a container runtime: the compose file against
the Compose specification's JSON schema (bundled by check-jsonschema), what it mounts exists, Prometheus
scrapes the services it names, and the images are multi-stage, non-root and have a healthcheck."""

from __future__ import annotations

import json
import re
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from lfr.adapters.camera.config import load_camera_config
from lfr.config import load_config
from tests.deploy.support import DEPLOY, ROOT

COMPOSE = DEPLOY / "compose.yaml"
DOCKERFILES = sorted((DEPLOY / "docker").glob("*.Dockerfile"))


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return loaded


def compose_schema() -> dict[str, Any]:
    path = resources.files("check_jsonschema") / "builtin_schemas" / "vendor" / "compose-spec.json"
    schema: dict[str, Any] = json.loads(path.read_text())
    return schema


def test_compose_file_follows_the_compose_specification() -> None:
    jsonschema.validate(compose(), compose_schema())


def test_a_compose_schema_violation_is_caught() -> None:
    broken = compose()
    broken["services"]["matcher"]["helthcheck"] = broken["services"]["matcher"].pop("healthcheck")
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, compose_schema())


def test_compose_has_every_role_and_mounts_files_that_exist() -> None:
    services = compose()["services"]
    assert {"matcher", "postgres", "prometheus", "grafana", "camera"} <= set(services)
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (DEPLOY / source).exists(), (name, source)
        build = service.get("build")
        if build:
            assert (DEPLOY / build["context"] / build["dockerfile"]).is_file(), name
    # Only lfr reaches PostgreSQL: its network is internal and holds no one else.
    assert compose()["networks"]["store"]["internal"] is True
    on_store = {name for name, s in services.items() if "store" in s.get("networks", [])}
    assert on_store == {"postgres", "migrate", "accounts", "matcher"}
    # Published ports are loopback only.
    for service in services.values():
        for port in service.get("ports", []):
            assert port.startswith("127.0.0.1:"), port


def test_prometheus_scrapes_the_compose_services_on_their_metrics_ports() -> None:
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    services = compose()["services"]
    lfr_config = load_config(DEPLOY / "compose" / "lfr.yaml")
    camera_config = load_camera_config(DEPLOY / "compose" / "camera.yaml")
    ports = {"matcher": lfr_config.metrics.listen, "camera": camera_config.metrics.listen}
    for job in config["scrape_configs"]:
        for target in job["static_configs"][0]["targets"]:
            host, port = target.split(":")
            assert host in services
            assert ports[host] == f"0.0.0.0:{port}", (host, ports)
    assert {j["job_name"] for j in config["scrape_configs"]} == {
        "lfr-matcher",
        "lfr-camera",
    }  # the rules' jobs


def test_shipped_lfr_configs_parse() -> None:
    for path in (DEPLOY / "compose" / "lfr.yaml", DEPLOY / "k8s" / "base" / "lfr.yaml"):
        config = load_config(path)
        assert config.grpc.listen.startswith("0.0.0.0:")
        assert config.metrics.listen.startswith("0.0.0.0:")
    k8s = load_config(DEPLOY / "k8s" / "base" / "lfr.yaml")
    assert k8s.grpc.tls_cert_file == Path("/etc/lfr/tls/tls.crt")
    assert k8s.grpc.client_ca_file is not None
    assert k8s.policy.equity_gate.value == "refuse"


def dockerfile_stages(text: str) -> list[str]:
    return re.findall(r"^FROM\s+\S+(?:\s+AS\s+(\S+))?", text, flags=re.MULTILINE | re.IGNORECASE)


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=[d.name for d in DOCKERFILES])
def test_dockerfiles_are_multi_stage_non_root_and_healthchecked(dockerfile: Path) -> None:
    text = dockerfile.read_text()
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert len(dockerfile_stages(text)) >= 2  # build stage, then a runtime stage without the toolchain
    final = text[text.rfind("\nFROM ") :]
    assert "COPY --from=build" in final
    users = re.findall(r"^USER\s+(\S+)", final, flags=re.MULTILINE)
    assert users, "the runtime stage must switch to a non-root user"
    assert not users[-1].startswith(("0", "root"))
    assert re.search(r"^HEALTHCHECK\s", final, flags=re.MULTILINE)
    assert "slim" in text
    assert "requirements.lock" in text  # the locked versions, not whatever is newest that day
    # Every file the build copies exists in the build context (the repository root).
    for line in lines:
        if match := re.match(r"COPY\s+(?!--from)(.+)\s+\S+$", line):
            for source in match.group(1).split():
                assert (ROOT / source).exists(), (dockerfile.name, source)
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".venv", ".git"} <= set(ignored)
