"""The metrics an operator alerts on besides the matching itself: audit chain verification, certificate
expiry, failed background duties and the tablet's own health endpoint and metrics."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from prometheus_client import CollectorRegistry

from lfr.bootstrap import Container, build_container, build_tablet_app
from lfr.domain.audit import AuditAction, AuditEvent
from lfr.domain.errors import StoreUnavailable
from tests.integration.conftest import matcher_config
from tests.pki import make_pki


@pytest.fixture
def container(tmp_path: Path) -> Container:
    built = build_container(matcher_config(f"sqlite:///{tmp_path / 'lfr.db'}"), registry=CollectorRegistry())
    yield built
    built.close()


def value(container: Container, name: str, **labels: str) -> float | None:
    return container.registry.get_sample_value(name, labels)


def test_the_audit_chain_is_verified_unattended_and_a_broken_chain_shows(container: Container) -> None:
    with container.store() as uow:
        for n in range(3):
            uow.audit.append(
                AuditEvent(AuditAction.WINDOW_ARMED, "system", "window", f"w{n}", datetime.now(UTC), {})
            )
        uow.commit()
    container.verify_audit()
    assert value(container, "lfr_audit_chain_ok") == 1
    verified_at = value(container, "lfr_audit_verified_timestamp_seconds")
    assert verified_at is not None
    assert abs(verified_at - datetime.now(UTC).timestamp()) < 60

    with container.store.engine.begin() as connection:
        connection.exec_driver_sql("""UPDATE audit_records SET details_json = '{"n":9}' WHERE seq = 2""")
    container.verify_audit()
    assert value(container, "lfr_audit_chain_ok") == 0


def test_certificate_expiry_is_exported_for_each_configured_certificate(tmp_path: Path) -> None:
    pki = make_pki(tmp_path)
    config = matcher_config(
        f"sqlite:///{tmp_path / 'lfr.db'}",
        **{
            "grpc.tls_cert_file": str(pki.server.cert),
            "grpc.tls_key_file": str(pki.server.key),
            "grpc.client_ca_file": str(pki.ca),
            "tablet.tls_cert_file": str(pki.server.cert),
            "tablet.tls_key_file": str(pki.server.key),
        },
    )
    container = build_container(config, registry=CollectorRegistry())
    try:
        container.check_certificates()
        expires = x509.load_pem_x509_certificate(pki.server.cert.read_bytes()).not_valid_after_utc
        for name in ("grpc", "tablet"):
            assert value(container, "lfr_certificate_expiry_timestamp_seconds", certificate=name) == (
                expires.timestamp()
            )
        assert value(container, "lfr_certificate_expiry_timestamp_seconds", certificate="grpc_client_ca")
    finally:
        container.close()


def test_a_failed_duty_is_counted(container: Container) -> None:
    def broken() -> None:
        raise StoreUnavailable("database is down")

    container.run_duty("retention_purge", broken)
    container.run_duty("retention_purge", broken)
    assert value(container, "lfr_duty_failures_total", duty="retention_purge") == 2


async def test_the_tablet_answers_health_and_metrics(container: Container) -> None:
    app = build_tablet_app(container, serve_metrics=True)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://tablet") as client:
        health = await client.get("/healthz")
        assert health.status_code == 200
        assert health.json()["status"] == "ok"
        metrics = await client.get("/metrics")
        assert metrics.status_code == 200
        assert "lfr_tablet_requests_total" in metrics.text
        assert 'route="/healthz"' in metrics.text

    embedded = build_tablet_app(container)  # inside `lfr serve` the matcher's own port serves /metrics
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=embedded), base_url="http://tablet"
    ) as client:
        assert (await client.get("/healthz")).status_code == 200
        assert (await client.get("/metrics")).status_code == 404
