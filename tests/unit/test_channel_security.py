"""Which addresses count as loopback (plaintext stays quiet there), and how a client's TLS settings are
checked before any connection is tried."""

from __future__ import annotations

from pathlib import Path

import pytest

from lfr.adapters.grpc.channels import ChannelSecurity, is_loopback
from lfr.domain.errors import InvalidInput


@pytest.mark.parametrize(
    ("address", "loopback"),
    [
        ("127.0.0.1:50051", True),
        ("127.0.0.1:0", True),
        ("127.8.9.10:50051", True),
        ("localhost:50051", True),
        ("LOCALHOST:50051", True),
        ("[::1]:50051", True),
        ("ipv4:127.0.0.1:50051", True),
        ("dns:///localhost:50051", True),
        ("unix:/run/lfr/grpc.sock", True),
        ("0.0.0.0:50051", False),
        ("[::]:50051", False),
        (":50051", False),
        ("10.0.0.5:50051", False),
        ("matcher.internal:50051", False),
        ("localhost.evil.example:50051", False),
    ],
)
def test_loopback_addresses_are_recognised(address: str, loopback: bool) -> None:
    assert is_loopback(address) is loopback


def test_no_tls_settings_mean_plaintext() -> None:
    security = ChannelSecurity()
    assert not security.uses_tls
    assert security.credentials() is None


@pytest.mark.parametrize(
    ("cert", "key", "message"),
    [
        ("client.crt", None, "client certificate was given without its client key"),
        (None, "client.key", "client key was given without its client certificate"),
    ],
)
def test_half_a_client_certificate_is_refused(
    tmp_path: Path, cert: str | None, key: str | None, message: str
) -> None:
    security = ChannelSecurity(None, tmp_path / cert if cert else None, tmp_path / key if key else None)
    with pytest.raises(InvalidInput, match=message):
        security.credentials()


def test_unreadable_or_non_pem_ca_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match=f"cannot read CA file {tmp_path / 'nope.pem'}"):
        ChannelSecurity(tmp_path / "nope.pem").credentials()
    garbage = tmp_path / "ca.pem"
    garbage.write_text("not a certificate")
    with pytest.raises(InvalidInput, match=f"CA file {garbage} is not a PEM file"):
        ChannelSecurity(garbage).credentials()
    garbage.write_text("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
    with pytest.raises(InvalidInput, match=f"CA file {garbage} holds no usable CA certificate"):
        ChannelSecurity(garbage).credentials()
