"""TLS for the matcher's gRPC port, read and checked once at startup.

Camera and user bearer tokens travel in every call's metadata, so anything but loopback should be TLS.
With `client_ca_file` the port also demands a client certificate signed by that CA (mutual TLS): the
certificate proves the device, the bearer token still names the principal.
"""

from __future__ import annotations

import grpc

from lfr.adapters.grpc.channels import check_ca_bundle, check_key_pair, read_pem
from lfr.config import GrpcSettings


def server_credentials(settings: GrpcSettings) -> grpc.ServerCredentials | None:
    """None for plaintext; raises InvalidInput naming the file when a PEM file is unusable."""
    if settings.tls_cert_file is None or settings.tls_key_file is None:
        return None
    chain = read_pem("grpc.tls_cert_file", settings.tls_cert_file)
    key = read_pem("grpc.tls_key_file", settings.tls_key_file)
    check_key_pair("grpc TLS", settings.tls_cert_file, settings.tls_key_file)
    client_roots = (
        check_ca_bundle("grpc.client_ca_file", settings.client_ca_file)
        if settings.client_ca_file is not None
        else None
    )
    return grpc.ssl_server_credentials(
        [(key, chain)], root_certificates=client_roots, require_client_auth=client_roots is not None
    )
