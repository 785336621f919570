"""Client channels to the matcher, plaintext or TLS (optionally with a client certificate for mutual TLS).

Every gRPC client in lfr (control commands, `lfr enrol`, the camera node) builds its channel here, so a
CA file, a client certificate and the plaintext warning mean the same thing everywhere. PEM files are
read and checked once, when the credentials are built, and a bad file is an `InvalidInput` naming it.
"""

from __future__ import annotations

import ipaddress
import logging
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from lfr.domain.errors import InvalidInput

logger = logging.getLogger(__name__)

ChannelOptions = Sequence[tuple[str, Any]]


def read_pem(what: str, path: Path) -> bytes:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InvalidInput(f"cannot read {what} {path}: {exc.strerror}") from exc
    if b"-----BEGIN " not in data:
        raise InvalidInput(f"{what} {path} is not a PEM file")
    return data


def check_key_pair(what: str, cert_file: Path, key_file: Path) -> None:
    """Refuses a certificate and key that do not belong together (or cannot be parsed) with both paths,
    rather than letting gRPC fail later in a handshake with a message naming neither."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    try:
        # An empty password makes an encrypted key fail here instead of prompting on the terminal.
        context.load_cert_chain(cert_file, key_file, password=b"")
    except ssl.SSLError as exc:
        raise InvalidInput(
            f"{what}: certificate {cert_file} and key {key_file} are not a usable pair "
            f"(mismatched, encrypted or malformed: {exc.reason or exc})"
        ) from exc
    except OSError as exc:
        raise InvalidInput(f"{what}: cannot read {cert_file} or {key_file}: {exc.strerror}") from exc


def check_ca_bundle(what: str, ca_file: Path) -> bytes:
    data = read_pem(what, ca_file)
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(cadata=data.decode("ascii"))
    except (ssl.SSLError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"{what} {ca_file} holds no usable CA certificate") from exc
    return data


def is_loopback(address: str) -> bool:
    """Whether a gRPC address (host:port, [v6]:port, ipv4:/ipv6:/dns:/// or unix: targets) stays on this
    machine; an empty or wildcard host listens on every interface, so it is not loopback."""
    target = address
    if target.startswith(("unix:", "unix-abstract:")):
        return True
    for prefix in ("dns:///", "dns:", "ipv4:", "ipv6:"):
        if target.startswith(prefix):
            target = target.removeprefix(prefix)
            break
    if target.startswith("["):
        host = target[1 : target.find("]")]
    else:
        host = target.rpartition(":")[0] if ":" in target else target
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True, slots=True)
class ChannelSecurity:
    """How a client reaches the matcher: plaintext when nothing is set; TLS trusting `ca_file` (the
    system's roots if unset) when a CA or a client certificate is given; mutual TLS with both cert+key."""

    ca_file: Path | None = None
    client_cert_file: Path | None = None
    client_key_file: Path | None = None

    @property
    def uses_tls(self) -> bool:
        return self.ca_file is not None or self.client_cert_file is not None

    def credentials(self) -> grpc.ChannelCredentials | None:
        """Reads and checks the PEM files; None for plaintext."""
        if (self.client_cert_file is None) != (self.client_key_file is None):
            given, missing = (
                ("client certificate", "client key")
                if self.client_key_file is None
                else ("client key", "client certificate")
            )
            raise InvalidInput(f"a {given} was given without its {missing}: mutual TLS needs both")
        if not self.uses_tls:
            return None
        roots = check_ca_bundle("CA file", self.ca_file) if self.ca_file is not None else None
        chain = key = None
        if self.client_cert_file is not None and self.client_key_file is not None:
            chain = read_pem("client certificate", self.client_cert_file)
            key = read_pem("client key", self.client_key_file)
            check_key_pair("client TLS", self.client_cert_file, self.client_key_file)
        return grpc.ssl_channel_credentials(root_certificates=roots, private_key=key, certificate_chain=chain)


def warn_if_plaintext(address: str, credentials: grpc.ChannelCredentials | None) -> None:
    if credentials is None and not is_loopback(address):
        logger.warning(
            "connecting to %s WITHOUT TLS: the bearer token crosses the network in clear; "
            "give the matcher's CA file to use TLS",
            address,
        )


def sync_channel(
    address: str, credentials: grpc.ChannelCredentials | None, options: ChannelOptions | None = None
) -> grpc.Channel:
    if credentials is None:
        return grpc.insecure_channel(address, options=options)
    return grpc.secure_channel(address, credentials, options=options)


def aio_channel(
    address: str, credentials: grpc.ChannelCredentials | None, options: ChannelOptions | None = None
) -> grpc.aio.Channel:
    if credentials is None:
        return grpc.aio.insecure_channel(address, options=options)
    return grpc.aio.secure_channel(address, credentials, options=options)


def open_channel(
    address: str, security: ChannelSecurity | None = None, options: ChannelOptions | None = None
) -> grpc.Channel:
    """A synchronous channel; raises InvalidInput for unusable PEM files, warns about plaintext."""
    credentials = (security or ChannelSecurity()).credentials()
    warn_if_plaintext(address, credentials)
    return sync_channel(address, credentials, options)


def open_aio_channel(
    address: str, security: ChannelSecurity | None = None, options: ChannelOptions | None = None
) -> grpc.aio.Channel:
    """An asyncio channel; raises InvalidInput for unusable PEM files, warns about plaintext."""
    credentials = (security or ChannelSecurity()).credentials()
    warn_if_plaintext(address, credentials)
    return aio_channel(address, credentials, options)
