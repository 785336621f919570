"""The demo's deletion scan reads every file of its work folder, the live SQLite database included, from
inside the process that is still serving that database (`lfr demo --keep-running`). Closing any file
descriptor of a file drops every POSIX lock the process holds on it, so a scan that opens and closes
lfr.db in-process silently releases the live connections' SQLite locks. The next `lfr` command on the
same database (say `lfr tablet password sgt-demo`) then believes it is the last connection, checkpoints
and deletes the WAL under the live process, which fails with `disk I/O error` from then on."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from lfr.adapters.storage import open_store
from lfr.demo.scan import Fingerprints, scan_folder
from lfr.domain.clock import SystemClock
from lfr.domain.principal import PrincipalKind, Role
from lfr.services.principals import PrincipalService

LFR = [sys.executable, "-c", "from lfr.cli.main import app; app()"]


def test_a_second_lfr_command_after_the_scan_leaves_the_live_store_working(tmp_path: Path) -> None:
    database = tmp_path / "lfr.db"
    config = tmp_path / "lfr.yaml"
    config.write_text(f"store: {{url: 'sqlite:///{database}'}}\n")
    store = open_store(f"sqlite:///{database}")
    try:
        principals = PrincipalService(store, SystemClock())
        principals.create("sgt-demo", PrincipalKind.USER, {Role.SUPERVISOR}, "test")
        principals.list_principals()  # the live process holds its connection (and its locks) open

        report = scan_folder(tmp_path, Fingerprints(), Fingerprints())
        assert "lfr.db" in {name for name, _ in report.files}

        second = subprocess.run(
            [*LFR, "tablet", "password", "sgt-demo", "--password-stdin", "-c", str(config)],
            input="a long enough password\n",
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert second.returncode == 0, second.stdout + second.stderr

        # The live process goes on writing its store, and what it writes is in the database file that
        # every other process reads (not in a WAL someone else has deleted under it).
        principals.create("pc-demo", PrincipalKind.USER, {Role.OFFICER}, "test")
        principals.issue_token("pc-demo", "test")
        listed = subprocess.run(
            [*LFR, "account", "list", "-c", str(config)], capture_output=True, text=True, timeout=120
        )
        assert listed.returncode == 0, listed.stdout + listed.stderr
        assert "pc-demo" in listed.stdout
    finally:
        store.close()
