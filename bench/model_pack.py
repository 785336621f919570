"""Recognition cost per face, original pack vs prepared pack: `python -m bench.model_pack PACK [PACK ...]`.

Each PACK is ROOT:NAME (the folder holding models/NAME/). Two measurements per pack and onnxruntime thread
setting (1, and 0 = onnxruntime's default):
- `recogniser`: the camera embedder's own `embed_aligned` on aligned LFW faces, one face per call and five
  per call (a frame with five faces), CPU time by `time.process_time` (all threads of this process);
- `camera node`: a real CameraNode (bench.camera's set-up: composed 1280x720 frames, 5 LFW faces each, the
  tracker releasing every face) and the CPU time of the whole process per embedded face.
Figures are faces per CPU-second (higher is better) and CPU-ms per face; the load average before each row is
printed, because on a shared machine the CPU a process gets per second is not its own to choose.
Prints a table; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import os
import time
from pathlib import Path

import cv2
import grpc
import numpy as np

from bench.camera import SHARED, NoMatch, compose, lfw_faces, run_once
from lfr.adapters.camera.tracker import TrackerPolicy
from lfr.adapters.embedder import InsightFaceEmbedder, ModelSettings
from lfr.v1 import ingest_pb2_grpc


def load(pack: str, threads: int) -> InsightFaceEmbedder:
    root, _, name = pack.rpartition(":")
    return InsightFaceEmbedder(ModelSettings(root=root, pack=name, det_size=640, intra_op_threads=threads))


def lfw_photos(count: int) -> list[np.ndarray]:
    root = Path(os.environ.get("LFR_TEST_DATASETS") or SHARED / "datasets") / "lfw"
    with (root / "manifest.csv").open(newline="") as handle:
        paths = [root / row["path"] for row, _ in zip(csv.DictReader(handle), range(count), strict=False)]
    return [cv2.imread(str(p)) for p in paths]


def aligned(embedder: InsightFaceEmbedder, photos: list[np.ndarray]) -> list[np.ndarray]:
    crops = []
    for photo in photos:
        found = embedder.detect(photo)
        if found:
            crops.append(embedder.align(photo, max(found, key=lambda f: f.width * f.height)))
    return crops


def recogniser_cost(embedder: InsightFaceEmbedder, crops: list[np.ndarray], batch: int, calls: int) -> float:
    """CPU seconds per face."""
    batches = [crops[i : i + batch] for i in range(0, len(crops) - batch + 1, batch)]
    for b in batches[:3]:
        embedder.embed_aligned(b)
    start = time.process_time()
    for i in range(calls):
        embedder.embed_aligned(batches[i % len(batches)])
    return (time.process_time() - start) / (calls * batch)


async def node_cost(embedder: InsightFaceEmbedder, frames: int, port: int) -> float:
    """CPU seconds per embedded face for the whole camera node."""
    scenes = compose(lfw_faces(10), 5, 10)
    every_face = TrackerPolicy(min_interval_s=0.0)
    await run_once(embedder, scenes, 5, every_face, port)  # warm-up
    start = time.process_time()
    result = await run_once(embedder, scenes, frames, every_face, port)
    cpu = time.process_time() - start
    return cpu / (result["embedded_s"] * result["elapsed_s"])


async def main(args: argparse.Namespace) -> None:
    server = grpc.aio.server()
    ingest_pb2_grpc.add_CameraIngestServicer_to_server(NoMatch(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    photos = lfw_photos(40)
    print(
        "| pack | model id | threads | measure | faces per call | CPU-ms per face | faces per CPU-s "
        "| load avg |\n|---|---|---|---|---|---|---|---|"
    )
    for threads in args.threads:
        for pack in args.packs:
            load_before = os.getloadavg()[0]
            embedder = load(pack, threads)
            crops = aligned(embedder, photos)
            rows = [
                ("recogniser", batch, recogniser_cost(embedder, crops, batch, args.calls)) for batch in (1, 5)
            ]
            rows.append(("camera node", 5, await node_cost(embedder, args.frames, port)))
            for measure, batch, seconds in rows:
                print(
                    f"| {pack.rpartition(':')[2]} | {embedder.model_id[:40]} | {threads or 'default'} | "
                    f"{measure} | {batch} | {1000 * seconds:.1f} | {1 / seconds:.1f} | "
                    f"{load_before:.1f} |",
                    flush=True,
                )
    await server.stop(0)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("packs", nargs="+", help="ROOT:NAME of each pack to time")
    parser.add_argument("--calls", type=int, default=100, help="recogniser calls timed per row")
    parser.add_argument("--frames", type=int, default=20, help="camera node frames timed per pack")
    parser.add_argument(
        "--threads", type=int, nargs="+", default=[1, 0], help="intra-op threads (0: default)"
    )
    asyncio.run(main(parser.parse_args()))
