"""The built wheel: its runtime floors for protobuf and grpcio are at least the versions its generated gRPC
code demands (else `pip install lfr` can pick a runtime that refuses the code with VersionError)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

from tests.deploy.support import ROOT


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    out = tmp_path_factory.mktemp("wheel")
    work = tmp_path_factory.mktemp("build")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    # A copy of the source, so the build leaves nothing behind in the work tree.
    files = subprocess.run(
        ["git", "-C", str(ROOT), "ls-files", "-co", "--exclude-standard", "-z"],
        check=True,
        capture_output=True,
    ).stdout.split(b"\0")
    for name in filter(None, files):
        source = ROOT / name.decode()
        if source.is_file():
            target = work / name.decode()
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(source.read_bytes())
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(out),
            ".",
        ],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    [built] = out.glob("lfr-*.whl")
    return zipfile.ZipFile(built)


def requirement(wheel: zipfile.ZipFile, name: str) -> Requirement:
    [metadata] = [n for n in wheel.namelist() if n.endswith(".dist-info/METADATA")]
    requires = Parser().parsestr(wheel.read(metadata).decode()).get_all("Requires-Dist") or []
    [found] = [Requirement(r) for r in requires if Requirement(r).name == name and not Requirement(r).marker]
    return found


def floor(requirement: Requirement) -> Version:
    return max(Version(s.version) for s in requirement.specifier if s.operator in (">=", "=="))


def test_protobuf_floor_matches_the_generated_code(wheel: zipfile.ZipFile) -> None:
    generated = [n for n in wheel.namelist() if n.startswith("lfr/v1/") and n.endswith("_pb2.py")]
    assert generated
    versions = set()
    for name in generated:
        text = wheel.read(name).decode()
        match = re.search(r"ValidateProtobufRuntimeVersion\(\s*\S+,\s*(\d+),\s*(\d+),\s*(\d+),", text)
        assert match, name
        versions.add(Version(".".join(match.groups())))
    needed = max(versions)
    protobuf = requirement(wheel, "protobuf")
    assert floor(protobuf) >= needed, (str(protobuf), needed)
    # protobuf refuses generated code from another major version in either direction.
    assert not protobuf.specifier.contains(f"{needed.major + 1}.0.0"), str(protobuf)


def test_grpcio_floor_matches_the_generated_code(wheel: zipfile.ZipFile) -> None:
    generated = [n for n in wheel.namelist() if n.startswith("lfr/v1/") and n.endswith("_pb2_grpc.py")]
    assert generated
    needed = max(
        Version(re.search(r"GRPC_GENERATED_VERSION = '([\d.]+)'", wheel.read(n).decode()).group(1))  # type: ignore[union-attr]
        for n in generated
    )
    for name in ("grpcio", "grpcio-health-checking", "grpcio-reflection"):
        assert floor(requirement(wheel, name)) >= needed, (name, needed)


def test_the_wheel_carries_what_the_matcher_needs_at_run_time(wheel: zipfile.ZipFile) -> None:
    names = set(wheel.namelist())
    assert "lfr/v1/control_pb2.py" in names
    assert any(n.startswith("lfr/adapters/storage/migrations/versions/") for n in names)
    assert any(n.startswith("lfr/adapters/tablet/templates/") for n in names)
    [entry_points] = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
    assert "lfr = lfr.cli.main:main" in wheel.read(entry_points).decode()
