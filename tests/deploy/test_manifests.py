"""The Kubernetes manifests, validated offline (no cluster here): every resource against the Kubernetes
JSON schemas bundled by kubernetes-validate (strict: unknown fields refused), the prometheus-operator
resources against the CRD fields transcribed in tests/deploy/schemas/, and the properties the deployment
depends on (replicas, probes, headless Service, PDB, NetworkPolicy, TLS from Secrets). The overlays are
rendered with `kubectl kustomize` where kubectl is installed."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from tests.deploy.support import DEPLOY

BASE = DEPLOY / "k8s" / "base"
OVERLAYS = sorted((DEPLOY / "k8s" / "overlays").iterdir())
SCHEMAS = Path(__file__).parent / "schemas"
CRD_SCHEMAS = {"ServiceMonitor": "servicemonitor.json", "PrometheusRule": "prometheusrule.json"}
K8S_VERSION = kubernetes_validate.latest_version()


def base_resources() -> list[dict[str, Any]]:
    kustomization = yaml.safe_load((BASE / "kustomization.yaml").read_text())
    documents = []
    for name in kustomization["resources"]:
        documents += [d for d in yaml.safe_load_all((BASE / name).read_text()) if d]
    return documents


def rendered(folder: Path) -> list[dict[str, Any]]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed: overlays are not rendered (the base is validated alone)")
    done = subprocess.run([kubectl, "kustomize", str(folder)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return [d for d in yaml.safe_load_all(done.stdout) if d]


def validate(resource: dict[str, Any]) -> None:
    kind = resource["kind"]
    if kind in CRD_SCHEMAS:
        schema = json.loads((SCHEMAS / CRD_SCHEMAS[kind]).read_text())
        jsonschema.validate(resource, schema)
    else:
        kubernetes_validate.validate(resource, K8S_VERSION, strict=True)


def by_kind(resources: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {r["metadata"]["name"]: r for r in resources if r["kind"] == kind}


def check_deployment_properties(resources: list[dict[str, Any]], min_matchers: int = 2) -> None:
    deployments = by_kind(resources, "Deployment")
    matcher, tablet = deployments["lfr-matcher"], deployments["lfr-tablet"]
    assert matcher["spec"]["replicas"] >= min_matchers
    for deployment in (matcher, tablet):
        pod = deployment["spec"]["template"]
        # The selector picks the pod template's own labels.
        assert deployment["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
        assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
        for container in pod["spec"]["containers"] + pod["spec"].get("initContainers", []):
            assert container["securityContext"]["allowPrivilegeEscalation"] is False
            assert container["securityContext"]["readOnlyRootFilesystem"] is True
    [container] = matcher["spec"]["template"]["spec"]["containers"]
    assert container["readinessProbe"]["exec"]["command"][:2] == ["lfr", "health"]  # gRPC health
    volumes = {v["name"]: v for v in matcher["spec"]["template"]["spec"]["volumes"]}
    assert volumes["grpc-tls"]["secret"]["secretName"] == "lfr-grpc-tls"  # TLS from Secrets
    assert volumes["client-ca"]["secret"]["secretName"] == "lfr-client-ca"
    assert [c["args"][:2] for c in matcher["spec"]["template"]["spec"]["initContainers"]] == [
        ["db", "upgrade"]
    ]
    assert (
        tablet["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]["path"] == "/healthz"
    )

    services = by_kind(resources, "Service")
    assert services["lfr-matcher"]["spec"]["clusterIP"] == "None"  # headless: client-side balancing
    for name, service in services.items():
        pod_labels = deployments[name]["spec"]["template"]["metadata"]["labels"]
        assert service["spec"]["selector"].items() <= pod_labels.items(), name

    budgets = by_kind(resources, "PodDisruptionBudget")
    assert budgets["lfr-matcher"]["spec"]["minAvailable"] >= 1
    assert budgets["lfr-matcher"]["spec"]["selector"]["matchLabels"] == {
        "app.kubernetes.io/name": "lfr-matcher"
    }

    ingress = by_kind(resources, "Ingress")["lfr-tablet"]
    assert ingress["spec"]["tls"][0]["secretName"] == "lfr-tablet-tls"
    assert ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["name"] == "lfr-tablet"


def check_network_policies(resources: list[dict[str, Any]]) -> None:
    policies = by_kind(resources, "NetworkPolicy")
    deny = policies["lfr-default-deny"]["spec"]
    assert deny["podSelector"] == {}
    assert "ingress" not in deny
    assert set(deny["policyTypes"]) == {"Ingress", "Egress"}
    # Cameras (the only ipBlock) reach the matcher's gRPC port and nothing else.
    camera_rules = [
        rule
        for rule in policies["lfr-matcher"]["spec"]["ingress"]
        if any("ipBlock" in peer for peer in rule["from"])
    ]
    assert [[p["port"] for p in rule["ports"]] for rule in camera_rules] == [[50051]]
    assert not any(
        "ipBlock" in peer for rule in policies["lfr-tablet"]["spec"]["ingress"] for peer in rule["from"]
    )
    # Only lfr's pods reach PostgreSQL.
    database = policies["lfr-postgresql"]["spec"]
    assert database["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": "postgresql"}
    assert [peer for rule in database["ingress"] for peer in rule["from"]] == [
        {"podSelector": {"matchLabels": {"app.kubernetes.io/part-of": "lfr"}}}
    ]
    for name in ("lfr-matcher", "lfr-tablet"):
        pod = by_kind(resources, "Deployment")[name]["spec"]["template"]
        assert pod["metadata"]["labels"]["app.kubernetes.io/part-of"] == "lfr"


@pytest.mark.parametrize("index", range(len(base_resources())))
def test_each_base_resource_is_valid(index: int) -> None:
    validate(base_resources()[index])


def test_the_base_has_what_a_deployment_needs() -> None:
    resources = base_resources()
    kinds = {r["kind"] for r in resources}
    assert {"Deployment", "Service", "Ingress", "PodDisruptionBudget", "NetworkPolicy"} <= kinds
    assert {"ServiceMonitor", "PrometheusRule"} <= kinds
    check_deployment_properties(resources)
    check_network_policies(resources)


def test_a_schema_violation_is_caught() -> None:
    """The validators refuse what a cluster would refuse (so a passing test means something)."""
    deployment = by_kind(base_resources(), "Deployment")["lfr-matcher"]
    broken = json.loads(json.dumps(deployment))
    broken["spec"]["template"]["spec"]["containers"][0]["readinessProb"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(broken)
    monitor = json.loads(json.dumps(by_kind(base_resources(), "ServiceMonitor")["lfr"]))
    monitor["spec"]["endpoints"][0]["intervall"] = "15s"
    with pytest.raises(jsonschema.ValidationError):
        validate(monitor)


@pytest.mark.parametrize("overlay", OVERLAYS, ids=[o.name for o in OVERLAYS])
def test_each_overlay_renders_to_valid_resources(overlay: Path) -> None:
    resources = rendered(overlay)
    for resource in resources:
        validate(resource)
        assert (
            resource["metadata"].get("namespace")
            == yaml.safe_load((overlay / "kustomization.yaml").read_text())["namespace"]
        )
    check_deployment_properties(resources)
    check_network_policies(resources)
    images = {
        c["image"]
        for d in by_kind(resources, "Deployment").values()
        for c in d["spec"]["template"]["spec"]["containers"]
    }
    assert all(":" in image and "/" in image for image in images), images  # a real reference, tagged
    config = by_kind(resources, "ConfigMap")
    [name] = config
    assert name.startswith("lfr-config-")  # generated, hashed: a config change rolls the pods
    matcher_volumes = by_kind(resources, "Deployment")["lfr-matcher"]["spec"]["template"]["spec"]["volumes"]
    assert {"name": "config", "configMap": {"name": name}} in matcher_volumes
