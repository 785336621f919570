"""Real `lfr serve`, `lfr tablet serve` and `lfr camera` processes run with core dumps off, even when
started with a core size limit: a dump would hold faces (a test dump once held 541 of 2,000 passer-by
crops)."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest

LFR = str(Path(sys.executable).parent / "lfr")
STARTED_WITH = 64 * 1024 * 1024


def allow_core_dumps() -> None:
    resource.setrlimit(resource.RLIMIT_CORE, (STARTED_WITH, STARTED_WITH))


def core_limits(pid: int) -> tuple[str, str]:
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max core file size"):
            soft, hard = line.split()[4:6]
            return soft, hard
    raise AssertionError("no core limit line")


def config(tmp_path: Path) -> Path:
    path = tmp_path / "lfr.yaml"
    path.write_text(
        f"store:\n  url: sqlite:///{tmp_path / 'lfr.db'}\n"
        "grpc:\n  listen: 127.0.0.1:0\n  grace_seconds: 1\n"
        "metrics:\n  enabled: false\n"
        "tablet:\n  enabled: false\n  listen: 127.0.0.1:0\n"
    )
    return path


def test_lfr_serve_runs_without_core_dumps(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [LFR, "serve", "--config", str(config(tmp_path))],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        preexec_fn=allow_core_dumps,
    )
    try:
        assert process.stdout is not None
        for line in process.stdout:
            if "lfr matcher ready" in line:
                break
        else:
            raise AssertionError(f"lfr serve exited with {process.wait()}")
        assert core_limits(process.pid) == ("0", "0")
    finally:
        process.terminate()
        process.wait(timeout=30)
        if process.stdout is not None:
            process.stdout.close()


def test_lfr_tablet_serve_runs_without_core_dumps(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [LFR, "tablet", "serve", "--config", str(config(tmp_path))],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=allow_core_dumps,
    )
    try:
        assert core_limits(process.pid)[1] in (str(STARTED_WITH), "0")  # inherited until Python runs
        deadline = time.monotonic() + 30
        while core_limits(process.pid) != ("0", "0"):
            assert process.poll() is None, f"lfr tablet serve exited with {process.returncode}"
            assert time.monotonic() < deadline, f"core limit still {core_limits(process.pid)}"
            time.sleep(0.1)
    finally:
        process.terminate()
        process.wait(timeout=30)


def core_dumps_go_off(process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while core_limits(process.pid) != ("0", "0"):
        assert process.poll() is None, f"the process exited with {process.returncode}"
        assert time.monotonic() < deadline, f"core limit still {core_limits(process.pid)}"
        time.sleep(0.01)


@pytest.mark.models
def test_lfr_camera_runs_without_core_dumps(tmp_path: Path) -> None:
    from tests.camera.conftest import model_settings
    from tests.support import tiny_jpeg

    settings = model_settings()
    if not (Path(settings.root or "") / "models" / settings.resolved_pack()).is_dir():
        pytest.skip("model pack not found: set LFR_MODEL_ROOT and LFR_MODEL_PACK")
    frames = tmp_path / "frames"
    frames.mkdir()
    for n in range(3):
        (frames / f"{n}.jpg").write_bytes(tiny_jpeg(size=64))
    config = tmp_path / "cam.yaml"
    config.write_text(
        f"camera_id: cam-1\nmatcher: {{address: '127.0.0.1:9'}}\nsource: {{uri: {frames}}}\n"
        "metrics: {enabled: false}\n"
    )
    env = {**os.environ, "LFR_CAMERA_TOKEN": "t0k3n", "LFR_MODEL_ROOT": settings.root or ""}
    env["LFR_MODEL_PACK"] = settings.resolved_pack()
    process = subprocess.Popen(
        [LFR, "camera", "--config", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=allow_core_dumps,
        env=env,
    )
    try:
        core_dumps_go_off(process)
    finally:
        process.terminate()
        process.wait(timeout=30)
