"""Cameras that never read their answers, beside one that does: matcher memory and the normal camera's
round trip, with a real `lfr serve` process (SQLite) measured from outside.

    python -m bench.slow_readers [--silent 16] [--seconds 20] [--batch 200]

Each silent stream writes batches of `--batch` observations as fast as it can and never reads (nor reports
answers_read); the matcher should cut each off (RESOURCE_EXHAUSTED) rather than hold their answers. The
table prints the matcher's RSS over time, how many silent streams were cut off, and the normal camera's
round-trip latency (p50/max) meanwhile.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import grpc
import numpy as np
from google.protobuf.timestamp_pb2 import Timestamp

from lfr.bootstrap import build_container
from lfr.config import load_config
from lfr.domain.principal import PrincipalKind
from lfr.v1 import ingest_pb2, ingest_pb2_grpc

LFR = str(Path(sys.executable).parent / "lfr")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def batch(camera: str, size: int, rng: np.random.Generator) -> ingest_pb2.ObservationBatch:
    now = Timestamp()
    now.FromDatetime(datetime.now(UTC))
    vectors = rng.normal(size=(size, 512)).astype("<f4")
    return ingest_pb2.ObservationBatch(
        observations=[
            ingest_pb2.Observation(
                seq=i + 1,
                camera_id=camera,
                captured_at=now,
                track_id=f"t{i}",
                model_id="bench-model",
                dimension=512,
                embedding_f32le=v.tobytes(),
                crop_jpeg=b"\xff\xd8\xff" + b"\0" * 2000 + b"\xff\xd9",
            )
            for i, v in enumerate(vectors)
        ]
    )


async def measure(
    port: int, pid: int, tokens: dict[str, str], silent: int, seconds: float, size: int
) -> None:
    rng = np.random.default_rng(1)
    cut = 0

    async def silent_stream(name: str) -> None:
        nonlocal cut
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            call = ingest_pb2_grpc.CameraIngestStub(channel).Stream(
                metadata=(("authorization", f"Bearer {tokens[name]}"),)
            )
            message = batch(name, size, rng)
            with contextlib.suppress(grpc.aio.AioRpcError, asyncio.InvalidStateError):
                while True:
                    await call.write(message)
            with contextlib.suppress(grpc.aio.AioRpcError):
                async for _ in call:
                    pass
            if await call.code() == grpc.StatusCode.RESOURCE_EXHAUSTED:
                cut += 1

    tasks = [asyncio.create_task(silent_stream(f"silent-{i}")) for i in range(silent)]
    latencies: list[float] = []
    rows: list[tuple[float, float]] = []
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        call = ingest_pb2_grpc.CameraIngestStub(channel).Stream(
            metadata=(("authorization", f"Bearer {tokens['normal']}"),)
        )
        one = batch("normal", 1, rng)
        started = time.monotonic()
        next_row = started
        while time.monotonic() - started < seconds:
            one.answers_read = len(latencies)
            t = time.monotonic()
            await call.write(one)
            await call.read()
            latencies.append(time.monotonic() - t)
            if time.monotonic() >= next_row:
                rows.append((time.monotonic() - started, rss_mb(pid)))
                next_row += 2
            await asyncio.sleep(0.05)
        await call.done_writing()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    print("t (s)  matcher RSS (MB)")
    for t, rss in rows:
        print(f"{t:5.1f}  {rss:8.0f}")
    print(f"silent streams cut off: {cut} of {silent}")
    print(
        f"normal camera round trip: p50 {1000 * float(np.median(latencies)):.1f} ms, "
        f"max {1000 * max(latencies):.1f} ms, {len(latencies)} answers"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--silent", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--batch", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        config_path = Path(tmp) / "lfr.yaml"
        config_path.write_text(
            f"store:\n  url: sqlite:///{tmp}/lfr.db\ngrpc:\n  listen: 127.0.0.1:0\n  grace_seconds: 1\n"
            "metrics:\n  enabled: false\ntablet:\n  enabled: false\n"
        )
        container = build_container(load_config(config_path))
        tokens = {}
        for name in ["normal", *(f"silent-{i}" for i in range(args.silent))]:
            container.principals.create(name, PrincipalKind.CAMERA, set(), "bench")
            tokens[name] = container.principals.issue_token(name, "bench")
        container.close()
        process = subprocess.Popen(
            [LFR, "serve", "--config", str(config_path)],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        try:
            assert process.stdout is not None
            for line in process.stdout:
                if "lfr matcher ready" in line:
                    port = int(line.split("grpc port ")[1].split()[0])
                    break
            else:
                raise SystemExit("lfr serve did not start")
            asyncio.run(measure(port, process.pid, tokens, args.silent, args.seconds, args.batch))
        finally:
            process.terminate()
            process.wait(timeout=30)


if __name__ == "__main__":
    main()
