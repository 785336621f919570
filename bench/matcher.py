"""End-to-end matcher throughput and latency over loopback gRPC, against FAISS alone on the same data.

    python -m bench.matcher [--subjects 10000] [--streams 8] [--batch 32] [--seconds 10] [--store sqlite]

The matcher (gRPC server, micro-batcher, FAISS, store) runs in this process; the camera streams and the
alert subscriber run in a second process, as cameras would run on other machines. Two load phases:
  saturation: every stream keeps `--in-flight` messages outstanding -> sustained embeddings/s;
  paced:      streams send at `--paced-fraction` of the saturated rate -> latency at a realistic load.
One observation in `--match-every` is a watchlist face, so alerts flow (stored, audited, pushed).

    python -m bench.matcher --ab-rounds 6 [--seconds 5]

Track fusion side by side (issue 10): one matcher, saturated load with fusion off, then on, then off ...
(the order flips every round), the same setup, index and store throughout. Each load is rated per CPU-second
of the matcher's process (this one: the cameras run in another) as well as per wall-clock second, since on
a shared machine the CPU the matcher gets varies more than what it costs; each round gives the ratio on/off.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import multiprocessing as mp
import os
import secrets
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")  # before numpy/faiss load: parallelise across requests

import numpy as np

DIM = 512
MODEL = "bench-model"
SEED = 20261121


@dataclass(frozen=True)
class Params:
    subjects: int
    streams: int
    batch: int
    in_flight: int
    seconds: float
    warmup: float
    match_every: int
    paced_fraction: float
    store: str
    batch_wait_ms: float
    batch_max: int
    index: str = "flat"
    search_threads: int = 1
    # Issue 10: the matcher's per-track fusion. The strangers of a camera all share one track id here,
    # so with it on every observation also costs a fused search: the worst case.
    track_fusion: bool = True
    # Issue 13: the message's embeddings in ObservationBatch.embeddings_f32le (what camera nodes send now);
    # False: one embedding_f32le per observation (camera nodes before it).
    packed: bool = True
    # Camera nodes name a node session and number their observations (lfr/adapters/camera/client.py), so
    # the matcher remembers each answer for re-sends and checks seqs against replays: that per-observation
    # work is part of the hot path. False: neither, as the bench sent before.
    node_session: bool = True


def people(n: int) -> np.ndarray:
    return np.concatenate(list(people_blocks(n))) if n else np.zeros((0, DIM), dtype=np.float32)


def people_blocks(n: int, block: int = 50_000) -> Iterator[np.ndarray]:
    """The rows of people(n) a block at a time (the same values: one generator drawn in order), drawn in
    float32: no float64 copy of the whole matrix (4 GB at 1M), and twice as fast."""
    rng = np.random.default_rng(SEED)
    for start in range(0, n, block):
        rows = rng.standard_normal((min(block, n - start), DIM), dtype=np.float32)
        yield rows / np.linalg.norm(rows, axis=1, keepdims=True)


# --- the matcher side -----------------------------------------------------------------------------------


def enrol(container: Any, watchlist_id: str, vectors: np.ndarray | int) -> None:
    """Bulk enrolment in one transaction (setup, not what is measured). `vectors`: the rows, or a count
    of people(n) rows generated block by block. SQL stores get plain executemany inserts of tuples through
    the driver (one subject at a time takes minutes at 100k; SQLAlchemy's per-row dicts ~10 min at 1M)."""
    from lfr.domain.watchlist import Subject

    blocks = people_blocks(vectors) if isinstance(vectors, int) else iter([vectors])
    engine = getattr(container.store, "engine", None)
    if engine is None:
        with container.store() as uow:
            i = 0
            for block in blocks:
                for row in block:
                    subject = Subject(
                        f"sub_{i:07d}", watchlist_id, f"ref-{i}", f"P{i}", "wanted", "bench", "synthetic"
                    )
                    uow.watchlists.add_subject(subject, row[None, :])
                    i += 1
            uow.commit()
        return
    marker = "?" if engine.dialect.paramstyle == "qmark" else "%s"

    def values(count: int) -> str:
        return ", ".join([marker] * count)

    add_subject = (
        "INSERT INTO watchlist_subjects (id, watchlist_id, reference, display_name, category, reason, "
        f"image_source) VALUES ({values(7)})"
    )
    add_vector = f"INSERT INTO subject_embeddings (subject_id, position, vector_f32le) VALUES ({values(3)})"
    with engine.begin() as connection:
        cursor = connection.connection.cursor()
        if marker == "?":  # SQLite: a 1M-row transaction re-spilled its pages to the WAL (4 GB) with 2 MB
            cursor.execute("PRAGMA cache_size=-262144")
        first = 0
        for block in blocks:
            for start in range(0, len(block), 20_000):
                rows = block[start : start + 20_000].astype("<f4")
                ids = [f"sub_{first + start + i:07d}" for i in range(len(rows))]
                cursor.executemany(
                    add_subject,
                    [
                        (
                            sid,
                            watchlist_id,
                            f"ref-{first + start + i}",
                            f"P{first + start + i}",
                            "wanted",
                            "bench",
                            "synthetic",
                        )
                        for i, sid in enumerate(ids)
                    ],
                )
                cursor.executemany(
                    add_vector, [(sid, 0, row.tobytes()) for sid, row in zip(ids, rows, strict=True)]
                )
            first += len(block)


def start_matcher(params: Params, folder: Path) -> tuple[int, dict[str, str], Any, threading.Thread]:
    from lfr.bootstrap import build_container, running_matcher
    from lfr.config import load_config
    from lfr.domain.principal import PrincipalKind, Role
    from lfr.domain.window import WindowSpec

    url = "memory://" if params.store == "memory" else f"sqlite:///{folder / 'bench.db'}"
    config = load_config(
        None,
        {
            "store.url": url,
            "grpc.listen": "127.0.0.1:0",
            "metrics.enabled": False,
            "matching.batch_wait_ms": params.batch_wait_ms,
            "matching.batch_max": params.batch_max,
            "matching.index": params.index,
            "matching.search_threads": params.search_threads,
            "policy.equity_gate": "off",  # synthetic data: there is no demographic evaluation to require
        },
    )
    container = build_container(config)
    evidence = container.ingest.track_evidence
    evidence.policy = dataclasses.replace(evidence.policy, enabled=params.track_fusion)
    sup = container.principals.create("sup", PrincipalKind.USER, [Role.SUPERVISOR, Role.ADMIN], "bench")
    tokens = {"sup": container.principals.issue_token("sup", "bench")}
    cameras = [f"cam-{i}" for i in range(params.streams)]
    for camera in cameras:
        container.principals.create(camera, PrincipalKind.CAMERA, [], "bench")
        tokens[camera] = container.principals.issue_token(camera, "bench")
    wl = container.watchlists.create("bench", MODEL, DIM, sup)
    enrol(container, wl.id, params.subjects)
    container.watchlists.seal(wl.id, sup)
    now = datetime.now(UTC)
    spec = WindowSpec(
        "bench", "bench", "bench", frozenset(cameras), wl.id, 0.6, now, now + timedelta(hours=2)
    )
    window = container.deployments.create(spec, sup)
    inspector = container.principals.create("insp", PrincipalKind.USER, [Role.SUPERVISOR], "bench")
    container.deployments.authorise(window.id, inspector)  # separation of duties: not its creator

    ready = threading.Event()
    state: dict[str, Any] = {"container": container}

    async def serve() -> None:
        async with running_matcher(container) as running:
            state["port"] = running.port
            state["stop"] = asyncio.Event()
            state["loop"] = asyncio.get_running_loop()
            ready.set()
            await state["stop"].wait()

    thread = threading.Thread(target=asyncio.run, args=(serve(),), daemon=True, name="event loop (gRPC aio)")
    thread.start()
    ready.wait(60)

    def stop() -> None:
        state["loop"].call_soon_threadsafe(state["stop"].set)
        thread.join(30)
        container.close()

    stop.container = container  # type: ignore[attr-defined]  (bench.speed reads its metrics and memory)
    return state["port"], tokens, stop, thread


def faiss_alone(params: Params, seconds: float = 3.0) -> dict[str, float]:
    """The same index type, data and thread setting as the matcher, with nothing around it."""
    from lfr.adapters.faiss_index import FaissFlatIndex, configure_faiss

    configure_faiss(1)
    index = FaissFlatIndex([f"s{i}" for i in range(params.subjects)], people(params.subjects))
    rng = np.random.default_rng(1)
    out = {}
    for size in (params.batch, params.batch_max):
        queries = rng.normal(size=(size, DIM)).astype(np.float32)
        queries /= np.linalg.norm(queries, axis=1, keepdims=True)
        done, started = 0, time.perf_counter()
        while time.perf_counter() - started < seconds:
            index.search(queries, 5)
            done += size
        out[f"faiss_qps_batch{size}"] = done / (time.perf_counter() - started)
    return out


# --- the camera side (separate process) -----------------------------------------------------------------


def load_process(port: int, tokens: dict[str, str], params: Params, rate: float, results: Any) -> None:
    results.put(asyncio.run(_load(port, tokens, params, rate)))


async def _load(port: int, tokens: dict[str, str], params: Params, rate: float) -> dict[str, Any]:
    import grpc
    from google.protobuf.timestamp_pb2 import Timestamp

    from lfr.v1 import control_pb2, control_pb2_grpc, ingest_pb2, ingest_pb2_grpc

    listed = people(min(params.subjects, 50_000))  # whom the matches are of: no 2 GB copy at 1M
    rng = np.random.default_rng(7)
    strangers = rng.normal(size=(2048, DIM)).astype(np.float32)
    strangers /= np.linalg.norm(strangers, axis=1, keepdims=True)
    crop = _crop()
    stamp = Timestamp()
    stamp.FromDatetime(datetime.now(UTC))

    def obs(camera: str, track: str) -> Any:
        return ingest_pb2.Observation(
            camera_id=camera, captured_at=stamp, track_id=track, model_id=MODEL, dimension=DIM, crop_jpeg=crop
        )

    def message(observations: list[Any], vectors: list[np.ndarray]) -> Any:
        if params.packed:
            packed = np.stack(vectors).astype("<f4").tobytes()
            return ingest_pb2.ObservationBatch(observations=observations, embeddings_f32le=packed)
        for item, vector in zip(observations, vectors, strict=True):
            item.embedding_f32le = vector.astype("<f4").tobytes()
        return ingest_pb2.ObservationBatch(observations=observations)

    sent_match: dict[str, float] = {}
    alert_latency: list[float] = []
    result_latency: list[float] = []
    # embeddings: in the measured phase; answered: warm-up and drain too (bench.speed's CPU of a server)
    counted = {"embeddings": 0, "answered": 0}
    phase = {"measuring": False}

    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        subscription = control_pb2_grpc.AlertsStub(channel).Subscribe(
            control_pb2.SubscribeRequest(), metadata=(("authorization", f"Bearer {tokens['sup']}"),)
        )

        async def subscriber() -> None:
            async for alert in subscription:
                sent = sent_match.pop(alert.track_id, None)
                if sent is not None and phase["measuring"]:
                    alert_latency.append(time.perf_counter() - sent)

        async def camera(index: int) -> None:
            name = f"cam-{index}"
            vectors = [
                [strangers[(k * params.batch + j) % len(strangers)] for j in range(params.batch)]
                for k in range(16)
            ]
            pool = [message([obs(name, "s") for _ in chunk], chunk) for chunk in vectors]
            call = ingest_pb2_grpc.CameraIngestStub(channel).Stream(
                metadata=(("authorization", f"Bearer {tokens[name]}"),)
            )
            in_flight: asyncio.Queue[float] = asyncio.Queue(maxsize=params.in_flight)
            session = secrets.token_hex(16) if params.node_session else ""
            seq = 0
            interval = params.batch * params.streams / rate if rate > 0 else 0.0

            answered = [0]  # reported in answers_read: the matcher cuts off streams that do not read

            async def reader() -> None:
                while True:
                    answer = await call.read()
                    if answer == grpc.aio.EOF:
                        return
                    answered[0] += 1
                    counted["answered"] += len(answer.results)
                    sent = in_flight.get_nowait()
                    if phase["measuring"]:
                        result_latency.append(time.perf_counter() - sent)
                        counted["embeddings"] += len(answer.results)

            reading = asyncio.create_task(reader())
            # Independent cameras are not phase-locked: stagger each stream's sends across the interval,
            # or every paced round arrives at once as one maximal batch and latency measures lockstep.
            n, next_at = 0, time.perf_counter() + interval * index / params.streams
            await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
            while not stop_sending.is_set():
                outgoing = pool[n % len(pool)]
                if n % max(1, params.match_every // params.batch) == index % 7:
                    track = f"{name}-{n}"
                    person = listed[(n * 31 + index) % len(listed)]
                    noisy = person + 0.02 * rng.normal(size=DIM).astype(np.float32)
                    outgoing = message(
                        [obs(name, "s") for _ in range(params.batch - 1)] + [obs(name, track)],
                        [*vectors[n % len(pool)][1:], noisy],
                    )
                    sent_match[track] = time.perf_counter()
                if session:
                    outgoing.node_session = session
                    for item in outgoing.observations:
                        seq += 1
                        item.seq = seq
                await in_flight.put(time.perf_counter())
                outgoing.answers_read = answered[0]  # this stream's own pool: serialised by write
                await call.write(outgoing)
                n += 1
                if interval:
                    next_at += interval
                    await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
            await call.done_writing()
            await reading

        stop_sending = asyncio.Event()
        watching = asyncio.create_task(subscriber())
        cameras = [asyncio.create_task(camera(i)) for i in range(params.streams)]
        await asyncio.sleep(params.warmup)
        phase["measuring"] = True
        started = time.perf_counter()
        await asyncio.sleep(params.seconds)
        phase["measuring"] = False
        elapsed = time.perf_counter() - started
        stop_sending.set()
        await asyncio.gather(*cameras)
        await asyncio.sleep(0.2)
        subscription.cancel()
        await asyncio.gather(watching, return_exceptions=True)

    def pct(values: list[float], q: float) -> float:
        return float(np.percentile(values, q) * 1000) if values else float("nan")

    return {
        "rate": counted["embeddings"] / elapsed,
        "result_p50_ms": pct(result_latency, 50),
        "result_p99_ms": pct(result_latency, 99),
        "alert_p50_ms": pct(alert_latency, 50),
        "alert_p99_ms": pct(alert_latency, 99),
        "alerts": len(alert_latency),
        "answered": counted["answered"],
    }


def thread_cpu() -> dict[str, float]:
    """CPU seconds of each of this process's threads so far, by name: Python's name where the thread is a
    Python thread (the matcher's, the event loop's, ...), the kernel's otherwise (gRPC's C core)."""
    names = {t.native_id: t.name for t in threading.enumerate() if t.native_id is not None}
    ticks = os.sysconf("SC_CLK_TCK")
    used: dict[str, float] = {}
    for task in Path("/proc/self/task").iterdir():
        try:
            stat = (task / "stat").read_text()
        except OSError:  # the thread ended meanwhile
            continue
        comm, fields = stat[stat.index("(") + 1 : stat.rindex(")")], stat[stat.rindex(")") + 2 :].split()
        name = names.get(int(task.name), comm)
        used[name] = used.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / ticks  # utime + stime
    return used


def cpu_per_answer(before: dict[str, float], after: dict[str, float], answered: int) -> dict[str, float]:
    """Microseconds of CPU per observation answered, by thread, between two `thread_cpu()` readings."""
    return {name: (cpu - before.get(name, 0.0)) * 1e6 / max(answered, 1) for name, cpu in after.items()}


def _crop() -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (128, 100, 80)).save(buffer, "JPEG")
    return buffer.getvalue()


def run_load(port: int, tokens: dict[str, str], params: Params, rate: float) -> dict[str, Any]:
    context = mp.get_context("spawn")
    results = context.Queue()
    process = context.Process(target=load_process, args=(port, tokens, params, rate, results))
    process.start()
    outcome: dict[str, Any] = results.get(timeout=params.seconds + params.warmup + 120)
    process.join(30)
    return outcome


def side_by_side(params: Params, rounds: int) -> list[dict[str, Any]]:
    """Saturated loads against one matcher with track fusion off and on, alternating, `rounds` pairs.
    The matcher's CPU time is this process's (the cameras and subscriber run in a child process)."""
    runs = []
    with tempfile.TemporaryDirectory(prefix="lfr-bench-") as folder:
        port, tokens, stop, _ = start_matcher(params, Path(folder))
        evidence = stop.container.ingest.track_evidence  # type: ignore[attr-defined]
        try:
            for n in range(rounds):
                order = (False, True) if n % 2 == 0 else (True, False)
                for fusion in order:
                    evidence.clear()
                    evidence.policy = dataclasses.replace(evidence.policy, enabled=fusion)
                    cpu, wall = time.process_time(), time.perf_counter()
                    outcome = run_load(port, tokens, params, rate=0)
                    outcome["matcher_cpu_s"] = time.process_time() - cpu
                    outcome["wall_s"] = time.perf_counter() - wall
                    outcome["per_cpu_s"] = outcome["answered"] / outcome["matcher_cpu_s"]
                    runs.append({"round": n + 1, "fusion": fusion, **outcome})
                    print(
                        f"round {n + 1} fusion {'on ' if fusion else 'off'}: {outcome['rate']:,.0f}/s wall, "
                        f"{outcome['per_cpu_s']:,.0f} per matcher CPU-second "
                        f"({outcome['answered']:,} in {outcome['matcher_cpu_s']:.1f} CPU-s), "
                        f"load average {os.getloadavg()[0]:.1f}",
                        flush=True,
                    )
        finally:
            stop()
    return runs


def print_side_by_side(runs: list[dict[str, Any]]) -> None:
    rounds = sorted({r["round"] for r in runs})
    by = {(r["round"], r["fusion"]): r for r in runs}
    cpu_ratios = [by[n, True]["per_cpu_s"] / by[n, False]["per_cpu_s"] for n in rounds]
    wall_ratios = [by[n, True]["rate"] / by[n, False]["rate"] for n in rounds]
    print("| round | off per CPU-s | on per CPU-s | on / off | off /s wall | on /s wall | on / off (wall) |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for n, cpu_ratio, wall_ratio in zip(rounds, cpu_ratios, wall_ratios, strict=True):
        off, on = by[n, False], by[n, True]
        print(
            f"| {n} | {off['per_cpu_s']:,.0f} | {on['per_cpu_s']:,.0f} | {cpu_ratio:.3f} "
            f"| {off['rate']:,.0f} | {on['rate']:,.0f} | {wall_ratio:.3f} |"
        )
    for name, ratios in (("per matcher CPU-second", cpu_ratios), ("per wall-clock second", wall_ratios)):
        print(
            f"on / off {name}: median {np.median(ratios):.3f}, range {min(ratios):.3f}-{max(ratios):.3f}, "
            f"interquartile {np.percentile(ratios, 25):.3f}-{np.percentile(ratios, 75):.3f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--subjects", type=int, default=10_000)
    parser.add_argument("--streams", type=int, default=8)
    parser.add_argument("--batch", type=int, default=32, help="observations per gRPC message")
    parser.add_argument("--in-flight", type=int, default=2, help="messages outstanding per stream")
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--warmup", type=float, default=2)
    parser.add_argument("--match-every", type=int, default=1000, help="one watchlist face per this many")
    parser.add_argument("--paced-fraction", type=float, default=0.5)
    parser.add_argument("--store", choices=["sqlite", "memory"], default="sqlite")
    parser.add_argument("--batch-wait-ms", type=float, default=1.5)
    parser.add_argument("--batch-max", type=int, default=256)
    parser.add_argument("--track-fusion", choices=["on", "off"], default="on")
    parser.add_argument(
        "--ab-rounds", type=int, default=0, help="track fusion off/on side by side, this many pairs"
    )
    parser.add_argument(
        "--node-session",
        choices=["on", "off"],
        default="on",
        help="name a node session and number the observations, as camera nodes do (off: neither)",
    )
    parser.add_argument(
        "--embeddings",
        choices=["packed", "per-observation"],
        default="packed",
        help="one embeddings_f32le per message (camera nodes since issue 13) or one per observation",
    )
    parser.add_argument("--search-threads", type=int, default=1, help="matching.search_threads")
    args = parser.parse_args()
    params = Params(
        args.subjects,
        args.streams,
        args.batch,
        args.in_flight,
        args.seconds,
        args.warmup,
        args.match_every,
        args.paced_fraction,
        args.store,
        args.batch_wait_ms,
        args.batch_max,
        search_threads=args.search_threads,
        track_fusion=args.track_fusion == "on",
        packed=args.embeddings == "packed",
        node_session=args.node_session == "on",
    )
    if args.ab_rounds:
        print_side_by_side(side_by_side(params, args.ab_rounds))
        return
    from rich.console import Console
    from rich.table import Table

    console = Console()
    faiss = faiss_alone(params)
    with tempfile.TemporaryDirectory(prefix="lfr-bench-") as folder:
        port, tokens, stop, _ = start_matcher(params, Path(folder))
        try:
            before = thread_cpu()
            saturated = run_load(port, tokens, params, rate=0)
            by_thread = cpu_per_answer(before, thread_cpu(), saturated["answered"])
            paced = run_load(port, tokens, params, rate=saturated["rate"] * params.paced_fraction)
        finally:
            stop()
    best_faiss = faiss[f"faiss_qps_batch{params.batch_max}"]
    table = Table(
        title=f"lfr matcher, {params.subjects} subjects x {DIM}-d, {params.streams} streams x "
        f"{params.batch}/message, store {params.store}, "
        f"track fusion {'on' if params.track_fusion else 'off'}, embeddings "
        f"{'packed' if params.packed else 'per observation'}, {params.search_threads} search thread(s), "
        f"{os.cpu_count()} CPUs"
    )
    table.add_column("measure")
    table.add_column("saturated", justify="right")
    table.add_column(f"paced ({params.paced_fraction:.0%})", justify="right")
    table.add_row("end-to-end embeddings/s", f"{saturated['rate']:,.0f}", f"{paced['rate']:,.0f}")
    table.add_row(
        "observation -> result p50 ms", f"{saturated['result_p50_ms']:.1f}", f"{paced['result_p50_ms']:.1f}"
    )
    table.add_row(
        "observation -> result p99 ms", f"{saturated['result_p99_ms']:.1f}", f"{paced['result_p99_ms']:.1f}"
    )
    table.add_row(
        "observation -> alert pushed p50 ms",
        f"{saturated['alert_p50_ms']:.1f}",
        f"{paced['alert_p50_ms']:.1f}",
    )
    table.add_row(
        "observation -> alert pushed p99 ms",
        f"{saturated['alert_p99_ms']:.1f}",
        f"{paced['alert_p99_ms']:.1f}",
    )
    table.add_row("alerts measured", str(saturated["alerts"]), str(paced["alerts"]))
    for key, value in faiss.items():
        table.add_row(f"FAISS alone q/s ({key.removeprefix('faiss_qps_')}, 1 thread)", f"{value:,.0f}", "")
    table.add_row(
        f"end-to-end / FAISS alone (batch{params.batch_max})", f"{saturated['rate'] / best_faiss:.0%}", ""
    )
    console.print(table)
    threads = Table(
        title="matcher process CPU per observation answered, by thread (the saturated load, its warm-up and "
        "drain included)"
    )
    threads.add_column("thread")
    threads.add_column("us per observation", justify="right")
    for name, us in sorted(by_thread.items(), key=lambda item: -item[1]):
        if us >= 0.05:
            threads.add_row(name, f"{us:.1f}")
    threads.add_row("total", f"{sum(by_thread.values()):.1f}")
    threads.add_row(f"(FAISS alone, batch {params.batch_max})", f"{1e6 / best_faiss:.1f}")
    console.print(threads)


if __name__ == "__main__":
    main()
