"""`lfr health`, which the container healthcheck and the Kubernetes readiness probe run: SERVING from a
real `lfr serve` over TLS, a one-line failure when nothing answers or the CA does not match."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.deploy.support import free_port
from tests.pki import Pki, make_pki

LFR = str(Path(sys.executable).parent / "lfr")


def lfr(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-c", "from lfr.cli.main import main; main()", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=60)


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return make_pki(tmp_path)


@pytest.fixture
def served(tmp_path: Path, pki: Pki) -> Iterator[int]:
    config = tmp_path / "lfr.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "store": {"url": f"sqlite:///{tmp_path / 'lfr.db'}"},
                "grpc": {
                    "listen": "127.0.0.1:0",
                    "grace_seconds": 0,
                    "tls_cert_file": str(pki.server.cert),
                    "tls_key_file": str(pki.server.key),
                    "client_ca_file": str(pki.ca),
                },
                "metrics": {"enabled": False},
                "tablet": {"enabled": False},
            }
        )
    )
    process = subprocess.Popen(
        [LFR, "serve", "-c", str(config)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert "lfr matcher ready" in line
        yield int(line.split("grpc port ")[1].split()[0])
    finally:
        process.terminate()
        process.wait(timeout=30)
        if process.stdout is not None:
            process.stdout.close()


def test_serving_over_mutual_tls(served: int, pki: Pki) -> None:
    done = lfr(
        "health",
        "--server",
        f"localhost:{served}",
        "--ca-file",
        str(pki.ca),
        "--client-cert",
        str(pki.client.cert),
        "--client-key",
        str(pki.client.key),
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"localhost:{served}: SERVING"


def test_a_client_without_a_certificate_is_not_healthy(served: int, pki: Pki) -> None:
    done = lfr("health", "--server", f"localhost:{served}", "--ca-file", str(pki.ca), "--timeout", "2")
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1, done.stderr


def test_nothing_listening_is_one_line_and_exit_1() -> None:
    done = lfr("health", "--server", f"127.0.0.1:{free_port()}", "--timeout", "1")
    assert done.returncode == 1
    assert "UNAVAILABLE" in done.stderr or "DEADLINE_EXCEEDED" in done.stderr
    assert "Traceback" not in done.stderr
