"""Shared by the deployment tests: where deploy/ is, and tools that CI installs but a laptop may lack."""

from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"


def tool(name: str) -> str:
    """The path of a command-line tool; CI (.ci/run installs them) fails without it, elsewhere skips."""
    found = shutil.which(name)
    if found is None:
        message = f"{name} is not installed (apt-get install prometheus provides promtool and prometheus)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return found


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
