"""The `lfr` command on a host with only some extras installed: every command is listed with a help line,
a command whose extra is missing says which one in one line, and `lfr serve` runs the matcher without the
tablet when the tablet extra is absent. Extras are hidden from a child process by blanking their modules
(the real per-role venvs are built by scripts/check-extras in CI)."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import typer.main

from lfr import __version__
from lfr.cli.extras import EXTRA_OF_MODULE
from lfr.cli.main import app
from tests.deploy.support import ROOT

CORE_ONLY = sorted(EXTRA_OF_MODULE)  # every module an extra provides


def lfr_without(modules: list[str], *args: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
    code = (
        "import sys\n"
        f"for name in {modules!r}: sys.modules[name] = None\n"
        "sys.argv[0] = 'lfr'\n"
        "from lfr.cli.main import main\n"
        "main()\n"
    )
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120, **kwargs
    )


def walk(command: Any, path: str = "lfr") -> list[tuple[str, Any]]:
    found = [(path, command)]
    if hasattr(command, "commands"):  # a group
        for name, sub in command.commands.items():
            found += walk(sub, f"{path} {name}")
    return found


def test_every_command_has_a_help_line() -> None:
    missing = [
        path for path, command in walk(typer.main.get_command(app)) if not (command.help or "").strip()
    ]
    assert not missing, missing


def test_version_matches_the_package() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["version"] == __version__
    done = lfr_without([], "--version")
    assert done.stdout.strip() == f"lfr {__version__}"


def test_core_only_lists_every_command_and_names_the_missing_extra() -> None:
    helped = lfr_without(CORE_ONLY, "--help")
    assert helped.returncode == 0, helped.stderr
    for name in ("serve", "audit", "window", "camera", "tablet", "eval", "demo"):
        assert name in helped.stdout
    assert "not installed here" in helped.stdout
    for args, extra in (
        (["camera", "-c", "camera.yaml"], "camera"),
        (["eval", "run", "eval.yaml"], "eval"),
        (["enrol", "--images", ".", "--csv", "list.csv", "--dry-run"], "camera"),
        (["eval", "--help"], "eval"),
        (["demo"], "camera"),
    ):
        done = lfr_without(CORE_ONLY, *args)
        assert done.returncode == 3, (args, done.stdout, done.stderr)
        assert done.stderr.strip().count("\n") == 0, done.stderr  # one line, no traceback
        assert f"install lfr[{extra}]" in done.stderr, (args, done.stderr)


def test_a_command_needing_an_extra_at_run_time_names_it(tmp_path: Path) -> None:
    config = tmp_path / "lfr.yaml"
    config.write_text("store: {url: 'postgresql+psycopg://lfr@127.0.0.1:1/lfr'}\n")
    done = lfr_without(CORE_ONLY, "account", "list", "-c", str(config))
    assert done.returncode != 0
    assert "install lfr[postgres]" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr

    config.write_text(f"store: {{url: 'sqlite:///{tmp_path / 'lfr.db'}'}}\n")
    done = lfr_without(
        CORE_ONLY, "tablet", "password", "x", "--password-stdin", "-c", str(config), input="pw\n"
    )
    assert "install lfr[tablet]" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


def test_core_only_serve_runs_the_matcher_without_the_tablet_and_says_so(tmp_path: Path) -> None:
    config = tmp_path / "lfr.yaml"
    config.write_text(
        f"store: {{url: 'sqlite:///{tmp_path / 'lfr.db'}'}}\n"
        "grpc: {listen: '127.0.0.1:0', grace_seconds: 0}\nmetrics: {enabled: false}\n"
    )
    code = (
        "import sys\n"
        f"for name in {CORE_ONLY!r}: sys.modules[name] = None\n"
        "from lfr.cli.main import main\nmain()\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", code, "serve", "-c", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        ready = process.stdout.readline()
        assert "lfr matcher ready: grpc port" in ready
        assert "tablet" not in ready
    finally:
        process.terminate()
        _out, err = process.communicate(timeout=30)
    assert "tablet web app not started" in err
    assert "install lfr[tablet]" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("extra", ["camera", "tablet", "eval", "postgres"])
def test_every_extra_in_the_hint_table_exists(extra: str) -> None:
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert extra in extras
    assert extra in set(EXTRA_OF_MODULE.values())
