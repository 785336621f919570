"""Crash safety: `lfr serve` killed with SIGKILL right after answering ALERT keeps the alert and a valid
audit chain, and after restart arms again only while the window is still valid. Also drives the CLI."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import numpy as np
import pytest

from lfr.v1 import control_pb2 as pb
from lfr.v1 import control_pb2_grpc, ingest_pb2, ingest_pb2_grpc
from tests.integration.conftest import DIM, MODEL, observation, stamp, unit

LFR = str(Path(sys.executable).parent / "lfr")
WINDOW_SECONDS = 12


def lfr(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([LFR, *args], capture_output=True, text=True, timeout=60, check=False)


class Matcher:
    def __init__(self, config: Path) -> None:
        self.process = subprocess.Popen(
            [LFR, "serve", "--config", str(config)],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert self.process.stdout is not None
        for line in self.process.stdout:
            if "lfr matcher ready" in line:
                self.port = int(line.split("grpc port ")[1].split()[0])
                break
        else:
            raise AssertionError(f"lfr serve exited with {self.process.wait()}")
        self.channel = grpc.insecure_channel(f"127.0.0.1:{self.port}")

    def kill(self) -> None:
        self.channel.close()
        os.kill(self.process.pid, signal.SIGKILL)
        assert self.process.wait(timeout=10) == -signal.SIGKILL
        self._close_pipe()

    def stop(self) -> int:
        self.channel.close()
        self.process.terminate()
        code = self.process.wait(timeout=30)
        self._close_pipe()
        return code

    def _close_pipe(self) -> None:
        if self.process.stdout is not None:
            self.process.stdout.close()

    def observe(self, token: str, vector: np.ndarray) -> ingest_pb2.ObservationResult:
        stub = ingest_pb2_grpc.CameraIngestStub(self.channel)
        batch = ingest_pb2.ObservationBatch(observations=[observation(1, vector)])
        [answer] = list(stub.Stream(iter([batch]), metadata=(("authorization", f"Bearer {token}"),)))
        return answer.results[0]


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "lfr.yaml"
    path.write_text(
        f"store:\n  url: sqlite:///{tmp_path / 'lfr.db'}\n"
        "grpc:\n  listen: 127.0.0.1:0\n  grace_seconds: 1\n"
        "metrics:\n  enabled: false\n"
        "matching:\n  gate_refresh_seconds: 0.2\n"
        "policy:\n  equity_gate: 'off'\n"  # not about the equity gate (tests/evaluation/test_gate_*.py are)
    )
    return path


@pytest.fixture
def tokens(config: Path) -> dict[str, str]:
    assert (
        lfr("account", "add", "sam", "--role", "supervisor", "--role", "admin", "-c", str(config)).returncode
        == 0
    )
    assert lfr("account", "add", "sue", "--role", "supervisor", "-c", str(config)).returncode == 0
    assert lfr("account", "add", "cam-1", "--camera", "-c", str(config)).returncode == 0
    issued = {
        name: lfr("account", "token", name, "-c", str(config)).stdout.strip()
        for name in ("sam", "sue", "cam-1")
    }
    assert all(len(t) > 20 for t in issued.values())
    return issued


@pytest.fixture
def matchers(config: Path) -> Iterator[list[Matcher]]:
    started: list[Matcher] = []
    yield started
    for matcher in started:
        if matcher.process.poll() is None:
            matcher.kill()


def test_alert_survives_kill_9_and_rearming_respects_the_window(config, tokens, matchers):
    md = (("authorization", f"Bearer {tokens['sam']}"),)
    rng = np.random.default_rng(3)
    people = [unit(rng.normal(size=DIM)) for _ in range(3)]
    matchers.append(first := Matcher(config))
    watchlists = control_pb2_grpc.WatchlistsStub(first.channel)
    wl = watchlists.CreateWatchlist(
        pb.CreateWatchlistRequest(name="x", model_id=MODEL, dimension=DIM), metadata=md
    )
    for i, person in enumerate(people):
        watchlists.AddSubject(
            pb.AddSubjectRequest(
                watchlist_id=wl.id,
                reference=f"r{i}",
                model_id=MODEL,
                dimension=DIM,
                embeddings_f32le=[person.astype("<f4").tobytes()],
            ),
            metadata=md,
        )
    watchlists.SealWatchlist(pb.WatchlistRef(watchlist_id=wl.id), metadata=md)
    deployments = control_pb2_grpc.DeploymentsStub(first.channel)
    ends = datetime.now(UTC) + timedelta(seconds=WINDOW_SECONDS)
    window = deployments.CreateWindow(
        pb.CreateWindowRequest(
            purpose="p",
            legal_basis="l",
            location="x",
            camera_ids=["cam-1"],
            watchlist_id=wl.id,
            threshold=0.8,
            starts_at=stamp(datetime.now(UTC) - timedelta(minutes=1)),
            ends_at=stamp(ends),
        ),
        metadata=md,
    )
    deployments.AuthoriseWindow(
        pb.WindowRef(window_id=window.id), metadata=(("authorization", f"Bearer {tokens['sue']}"),)
    )
    result = first.observe(tokens["cam-1"], people[1])
    assert result.outcome == ingest_pb2.OUTCOME_ALERT
    first.kill()  # no shutdown hook runs: only what was committed before ALERT was answered survives

    matchers.append(second := Matcher(config))
    alerts = control_pb2_grpc.AlertsStub(second.channel)
    stored = alerts.GetAlert(pb.AlertRef(alert_id=result.alert_id), metadata=md)
    assert stored.window_id == window.id
    assert stored.crop_jpeg.startswith(b"\xff\xd8")
    verdict = control_pb2_grpc.AuditStub(second.channel).Verify(pb.Empty(), metadata=md)
    assert verdict.ok, verdict.reason
    assert datetime.now(UTC) < ends - timedelta(seconds=1), "restart took too long for this test's window"
    assert second.observe(tokens["cam-1"], people[2]).outcome == ingest_pb2.OUTCOME_ALERT  # armed again

    # The CLI against the restarted server: a table of windows, and a clear error for a bad token.
    listed = lfr("window", "list", "--server", f"127.0.0.1:{second.port}", "--token", tokens["sam"])
    assert listed.returncode == 0
    assert window.id[:12] in listed.stdout
    refused = lfr("window", "list", "--server", f"127.0.0.1:{second.port}", "--token", "wrong")
    assert refused.returncode != 0
    assert "UNAUTHENTICATED" in refused.stderr

    time.sleep(max(0.0, (ends - datetime.now(UTC)).total_seconds()) + 0.5)
    assert second.observe(tokens["cam-1"], people[2]).outcome == ingest_pb2.OUTCOME_NOT_ARMED  # expired
    assert second.stop() == 0  # SIGTERM: graceful
