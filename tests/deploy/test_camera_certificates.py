"""A camera node exports when its certificates (the matcher's CA, its own client certificate) expire, so
the certificate-expiry alert covers the nodes too, not only the matcher."""

from __future__ import annotations

from pathlib import Path

from cryptography import x509
from prometheus_client import CollectorRegistry

from lfr.adapters.camera.metrics import CameraMetrics, export_certificate_expiry
from lfr.adapters.grpc.channels import ChannelSecurity
from tests.pki import make_pki


def test_a_camera_node_exports_its_certificates_expiry(tmp_path: Path) -> None:
    pki = make_pki(tmp_path)
    registry = CollectorRegistry()
    metrics = CameraMetrics(registry, "cam-1")
    export_certificate_expiry(metrics, ChannelSecurity(pki.ca, pki.client.cert, pki.client.key))
    client = x509.load_pem_x509_certificate(pki.client.cert.read_bytes()).not_valid_after_utc
    ca = x509.load_pem_x509_certificate(pki.ca.read_bytes()).not_valid_after_utc
    name = "lfr_camera_certificate_expiry_timestamp_seconds"
    assert registry.get_sample_value(name, {"camera": "cam-1", "certificate": "client"}) == client.timestamp()
    assert registry.get_sample_value(name, {"camera": "cam-1", "certificate": "matcher_ca"}) == ca.timestamp()


def test_a_plaintext_node_exports_none(tmp_path: Path) -> None:
    registry = CollectorRegistry()
    export_certificate_expiry(CameraMetrics(registry, "cam-1"), ChannelSecurity())
    assert (
        registry.get_sample_value(
            "lfr_camera_certificate_expiry_timestamp_seconds", {"camera": "cam-1", "certificate": "client"}
        )
        is None
    )
