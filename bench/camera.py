"""Camera node throughput: `python -m bench.camera [--frames N] [--threads T]`.

Frames of 1280x720 are composed from LFW faces (0, 1, 5 or 10 per frame, drifting a few pixels per frame
so tracks persist) and fed unpaced from memory into a real CameraNode (real models, real gRPC client)
streaming to an in-process matcher stand-in that answers NO_MATCH, so the figures are the node's own
cost. Two modes: `tracked` (the default policy: one face per track per second) and `every face` (the
tracker releases every face of every frame: the recogniser's worst case). Prints a table; asserts nothing.
Needs LFR_MODEL_ROOT / LFR_MODEL_PACK and LFR_TEST_DATASETS (or ../shared next to the repository).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

import cv2
import grpc
import numpy as np
from prometheus_client import CollectorRegistry

from lfr.adapters.camera.capture import Capture, LatestFrameSlot
from lfr.adapters.camera.client import MatcherClient
from lfr.adapters.camera.metrics import CameraMetrics
from lfr.adapters.camera.node import CameraNode, CropPolicy, FacePipeline
from lfr.adapters.camera.tracker import TrackerPolicy
from lfr.adapters.embedder import InsightFaceEmbedder, ModelSettings
from lfr.domain.quality import QualityPolicy
from lfr.v1 import ingest_pb2, ingest_pb2_grpc

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


class MemorySource:
    """Cycles through prepared frames; hands out copies because the node wipes every frame it is done with."""

    live = False
    fps: float | None = None

    def __init__(self, frames: list[np.ndarray], count: int) -> None:
        self._frames = frames
        self._left = count
        self._i = 0

    def read(self) -> np.ndarray | None:
        if self._left <= 0:
            return None
        self._left -= 1
        frame = self._frames[self._i % len(self._frames)].copy()
        self._i += 1
        return frame

    def close(self) -> None:
        self._left = 0


class NoMatch(ingest_pb2_grpc.CameraIngestServicer):
    async def Stream(  # type: ignore[override]
        self, request_iterator: AsyncIterator[ingest_pb2.ObservationBatch], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[ingest_pb2.ObservationResults]:
        async for batch in request_iterator:
            yield ingest_pb2.ObservationResults(
                results=[
                    ingest_pb2.ObservationResult(seq=o.seq, outcome=ingest_pb2.OUTCOME_NO_MATCH)
                    for o in batch.observations
                ]
            )


def lfw_faces(count: int) -> list[np.ndarray]:
    root = Path(os.environ.get("LFR_TEST_DATASETS") or SHARED / "datasets") / "lfw"
    with (root / "manifest.csv").open(newline="") as handle:
        paths = [root / row["path"] for row, _ in zip(csv.DictReader(handle), range(count), strict=False)]
    # LFW photos are 250x250 with the face in the middle: crop to the head so composed faces do not
    # overlap, then scale to a typical CCTV face of ~110 px.
    return [cv2.resize(cv2.imread(str(p))[50:200, 50:200], (180, 180)) for p in paths]


def compose(faces: list[np.ndarray], per_frame: int, frames: int) -> list[np.ndarray]:
    out = []
    for k in range(frames):
        scene = np.full((720, 1280, 3), 100, np.uint8)
        for i in range(per_frame):
            x = 20 + (i % 5) * 250 + (k % 10) * 3
            y = 60 + (i // 5) * 320 + (k % 10) * 2
            scene[y : y + 180, x : x + 180] = faces[i]
        out.append(scene)
    return out


async def run_once(
    embedder: InsightFaceEmbedder, frames: list[np.ndarray], count: int, tracking: TrackerPolicy, port: int
) -> dict[str, float]:
    registry = CollectorRegistry()
    metrics = CameraMetrics(registry, "bench")
    slot = LatestFrameSlot(on_drop=metrics.frames_dropped.inc)
    capture = Capture(MemorySource(frames, count), slot, None, on_frame=metrics.frames_captured.inc)
    pipeline = FacePipeline(embedder, QualityPolicy(), tracking, CropPolicy(), metrics)
    client = MatcherClient(
        f"127.0.0.1:{port}", "bench", "bench", embedder.model_id, embedder.dimension, metrics
    )
    node = CameraNode(capture, slot, pipeline, client, metrics)
    started = time.perf_counter()
    summary = await node.run()
    elapsed = time.perf_counter() - started

    def total(name: str, **labels: str) -> float:
        return registry.get_sample_value(name, {"camera": "bench", **labels}) or 0.0

    stage = {s: total("lfr_camera_stage_seconds_sum", stage=s) for s in ("detect", "align", "embed", "send")}
    return {
        "fps": summary.frames / elapsed,
        "elapsed_s": elapsed,
        "faces_s": total("lfr_camera_faces_detected_total") / elapsed,
        "embedded_s": total("lfr_camera_faces_embedded_total") / elapsed,
        **{f"{s}_ms": 1000 * v / summary.frames for s, v in stage.items()},
    }


async def main(args: argparse.Namespace) -> None:
    server = grpc.aio.server()
    ingest_pb2_grpc.add_CameraIngestServicer_to_server(NoMatch(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    faces = lfw_faces(10)
    root = os.environ.get("LFR_MODEL_ROOT") or str(SHARED)
    pack = os.environ.get("LFR_MODEL_PACK") or "buffalo_sc_int8"
    modes = {"tracked": TrackerPolicy(), "every face": TrackerPolicy(min_interval_s=0.0)}
    print(f"{args.frames} frames of 1280x720 per row, onnxruntime intra-op threads per stage: {args.threads}")
    print(
        "| det size | faces/frame | mode | frames/s | faces/s | embedded/s | detect ms | align ms "
        "| embed ms | send ms |\n|---|---|---|---|---|---|---|---|---|---|"
    )
    for det_size in args.det_sizes:
        embedder = InsightFaceEmbedder(
            ModelSettings(root=root, pack=pack, det_size=det_size, intra_op_threads=args.threads)
        )
        for per_frame in args.faces:
            frames = compose(faces, per_frame, 10)
            for mode, tracking in modes.items():
                if per_frame == 0 and mode != "tracked":
                    continue
                await run_once(embedder, frames, 5, tracking, port)  # warm-up
                r = await run_once(embedder, frames, args.frames, tracking, port)
                print(
                    f"| {det_size} | {per_frame} | {mode} | {r['fps']:.1f} | {r['faces_s']:.1f} "
                    f"| {r['embedded_s']:.1f} | {r['detect_ms']:.1f} | {r['align_ms']:.1f} "
                    f"| {r['embed_ms']:.1f} | {r['send_ms']:.2f} |",
                    flush=True,
                )
    await server.stop(0)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--threads", type=int, default=1, help="onnxruntime intra-op threads per session")
    parser.add_argument("--det-sizes", type=int, nargs="+", default=[640, 320])
    parser.add_argument("--faces", type=int, nargs="+", default=[0, 1, 5, 10])
    asyncio.run(main(parser.parse_args()))
