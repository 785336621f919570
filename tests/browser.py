"""How tests and benchmarks start Debian's Chromium: no downloaded browser, no background network."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def require_chromium() -> None:
    """Skips on a developer machine without Chromium; in CI, where scripts/setup installs it, fails."""
    if Path(CHROMIUM).exists():
        return
    if os.environ.get("CI"):
        pytest.fail(f"{CHROMIUM} is missing in CI: scripts/setup should have installed Debian's chromium")
    pytest.skip("Debian's chromium is not installed (scripts/setup installs it)")
