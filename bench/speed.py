"""Matcher speed at scale, all in one run, in queries per CPU-second (the machine is shared: wall-clock
ratios between a threaded pipeline and a one-thread loop are biased by other people's load).

    OMP_NUM_THREADS=1 python -m bench.speed                       # 10k and 100k, index types at 100k
    python -m bench.speed --sizes 10000 --index-size 20000 --e2e-seconds 4   # a quick look
    python -m bench.speed --million                               # adds FAISS alone / memory at 1M

Parts (each figure: queries answered / CPU seconds of the process that answered them):
- kernel: flat search with the kernel FAISS's OpenBLAS picks alone vs the one lfr chose (child processes);
- per N: numpy GEMM (the roofline: Q @ X.T, batch 256, one thread), FAISS alone (lfr's FaissIndex, batch
  256, one thread; and split in 2 shards searched in parallel), and the matcher end to end (bench.matcher:
  loopback gRPC, 8 camera streams, micro-batcher, SQLite): CPU of the matcher process per embedding
  answered, saturated; then p99 latency at 50% of the saturated rate; memory (RSS growth of the matcher
  process once its index is built, against the raw vectors);
- per index type at `--index-size`: build CPU, memory, q per CPU-second, recall@1 and alerts kept against
  exact search, on synthetic face-like data (mated probes at cosine ~0.6 to their listed face, strangers
  at ~0.0 +- 0.045, as LFW pairs measure with the shipped recogniser; see docs/benchmarks.md).
The load average is printed beside every table.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np

DIM = 512
BATCH = 256
THRESHOLD = 0.58  # the recommended threshold of the shipped pack's evaluation (docs/evaluation.md)


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.1f} / {five:.1f} (1 / 5 min) on {os.cpu_count()} CPUs"


def unit_rows(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = np.empty((n, DIM), dtype=np.float32)
    for start in range(0, n, 100_000):  # in blocks: no float64 copy of a 1M x 512 matrix
        block = rng.standard_normal((min(100_000, n - start), DIM), dtype=np.float32)
        out[start : start + len(block)] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out


def per_cpu_second(work: Callable[[], int], seconds: float) -> float:
    """Queries per CPU-second of this process (all its threads) over at least `seconds` of CPU."""
    work()  # warm
    done, started = 0, time.process_time()
    while time.process_time() - started < seconds:
        done += work()
    return done / (time.process_time() - started)


def rss_bytes() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


# --- kernel --------------------------------------------------------------------------------------------


def kernel_child(seconds: float) -> None:
    from lfr.adapters.blas_kernel import kernel_report
    from lfr.adapters.faiss_index import FaissIndex, configure_faiss

    configure_faiss(1)
    x, q = unit_rows(10_000, 1), unit_rows(BATCH, 2)
    index = FaissIndex([str(i) for i in range(len(x))], x)
    rate = per_cpu_second(lambda: len(index.raw_search(q, 5)[0]), seconds)
    report = kernel_report()
    print(json.dumps({"kernel": report.running if report else None, "qps_cpu": rate}))


def kernel_part(seconds: float) -> list[dict[str, Any]]:
    from lfr.adapters.blas_kernel import faiss_openblas, probe

    library = faiss_openblas()
    alone = probe(library, None).core if library else None
    rows = []
    for preset in ([alone] if alone else []) + [None]:
        env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_CORETYPE"}
        if preset:
            env["OPENBLAS_CORETYPE"] = preset
        out = subprocess.run(
            [sys.executable, "-m", "bench.speed", "--kernel-child", "--seconds", str(seconds)],
            capture_output=True,
            text=True,
            env=env,
            check=True,
        )
        found = json.loads(out.stdout.strip().splitlines()[-1])
        found["how"] = "OpenBLAS alone" if preset else "lfr's check"
        rows.append(found)
    return rows


# --- one watchlist size ---------------------------------------------------------------------------------


def search_part(n: int, seconds: float, x: np.ndarray | None = None) -> dict[str, float]:
    from lfr.adapters.faiss_index import FaissIndex, configure_faiss
    from lfr.adapters.index_spec import IndexSpec

    configure_faiss(1)
    x = unit_rows(n, 3) if x is None else x
    q = unit_rows(BATCH, 4)
    out = {"roofline": per_cpu_second(lambda: len(q @ x.T), seconds)}
    ids = [f"s{i}" for i in range(n)]
    for shards in (1, 2):
        index = FaissIndex(ids, x, IndexSpec("flat", shards=shards))
        out[f"faiss_{shards}"] = per_cpu_second(lambda index=index: len(index.raw_search(q, 5)[0]), seconds)
        started = time.perf_counter()
        cpu = time.process_time()
        for _ in range(3):
            index.raw_search(q, 5)
        out[f"faiss_{shards}_wall"] = 3 * BATCH / (time.perf_counter() - started)
        out[f"faiss_{shards}_cpu_share"] = (time.process_time() - cpu) / (time.perf_counter() - started)
        index.close()
        del index
    return out


def faces_counted(container: Any) -> float:
    total = 0.0
    for metric in container.registry.collect():
        if metric.name == "lfr_faces_received":
            total += sum(s.value for s in metric.samples if s.name.endswith("_total"))
    return total


def end_to_end(n: int, seconds: float, search_threads: int) -> dict[str, float]:
    from bench.matcher import Params, run_load, start_matcher

    params = Params(
        subjects=n,
        streams=8,
        batch=32,
        in_flight=2,
        seconds=seconds,
        warmup=1.5,
        match_every=100,
        paced_fraction=0.5,
        store="sqlite",
        batch_wait_ms=1.5,
        batch_max=256,
        search_threads=search_threads,
    )
    with tempfile.TemporaryDirectory(prefix="lfr-bench-") as folder:
        before = rss_bytes()
        started = time.perf_counter()
        port, tokens, stop, _ = start_matcher(params, Path(folder))
        setup_s = time.perf_counter() - started
        container = stop.container
        steady = rss_bytes() - before
        try:
            faces, cpu = faces_counted(container), time.process_time()
            saturated = run_load(port, tokens, params, rate=0)
            answered, used = faces_counted(container) - faces, time.process_time() - cpu
            paced = run_load(port, tokens, params, rate=saturated["rate"] * params.paced_fraction)
        finally:
            stop()
    return {
        "e2e_qps_cpu": answered / used,
        "e2e_rate_wall": saturated["rate"],
        "paced_rate": paced["rate"],
        "alert_p50_ms": paced["alert_p50_ms"],
        "alert_p99_ms": paced["alert_p99_ms"],
        "result_p99_ms": paced["result_p99_ms"],
        "alerts": paced["alerts"],
        "rss_growth": steady,
        "setup_s": setup_s,
    }


def serve_start(n: int, folder: Path) -> dict[str, float]:
    """`lfr serve` on a SQLite store holding an armed window over n subjects: seconds from launch to the
    port answering and to health SERVING, the process's CPU seconds by then, and its memory."""
    import socket
    from datetime import UTC, datetime, timedelta

    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from bench.matcher import enrol, people
    from lfr.bootstrap import build_container
    from lfr.config import load_config
    from lfr.domain.principal import PrincipalKind, Role
    from lfr.domain.window import WindowSpec

    url = f"sqlite:///{folder / 'start.db'}"
    container = build_container(
        load_config(
            None,
            {
                "store.url": url,
                "metrics.enabled": False,
                "policy.equity_gate": "off",
                "policy.separation_of_duties": False,
            },
        )
    )
    sup = container.principals.create("sup", PrincipalKind.USER, [Role.SUPERVISOR, Role.ADMIN], "bench")
    container.principals.create("cam-0", PrincipalKind.CAMERA, [], "bench")
    wl = container.watchlists.create("bench", "bench-model", DIM, sup)
    enrol(container, wl.id, people(n))
    container.watchlists.seal(wl.id, sup)
    now = datetime.now(UTC)
    spec = WindowSpec("b", "b", "b", frozenset({"cam-0"}), wl.id, 0.6, now, now + timedelta(hours=2))
    container.deployments.authorise(container.deployments.create(spec, sup).id, sup)
    container.close()
    with socket.socket() as probe_socket:
        probe_socket.bind(("127.0.0.1", 0))
        port = probe_socket.getsockname()[1]
    config = folder / "serve.yaml"
    config.write_text(
        f"store:\n  url: {url}\ngrpc:\n  listen: 127.0.0.1:{port}\nmetrics:\n  enabled: false\n"
        'tablet:\n  enabled: false\npolicy:\n  equity_gate: "off"\n'
    )
    lfr = Path(sys.executable).with_name("lfr")
    started = time.perf_counter()
    process = subprocess.Popen([str(lfr), "serve", "--config", str(config)], stdout=subprocess.DEVNULL)
    opened = serving = float("nan")
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        health = health_pb2_grpc.HealthStub(channel)
        while time.perf_counter() - started < 300 and process.poll() is None:
            try:
                status = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=0.5).status
            except grpc.RpcError:
                time.sleep(0.05)
                continue
            if opened != opened:
                opened = time.perf_counter() - started
            if status == health_pb2.HealthCheckResponse.SERVING:
                serving = time.perf_counter() - started
                break
            time.sleep(0.05)
    fields = Path(f"/proc/{process.pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    status_text = Path(f"/proc/{process.pid}/status").read_text()
    memory = {
        line.split(":")[0]: int(line.split()[1]) * 1024
        for line in status_text.splitlines()
        if line.startswith(("VmRSS", "VmHWM"))
    }
    process.terminate()
    process.wait(30)
    return {
        "open_s": opened,
        "serving_s": serving,
        "cpu_s": cpu,
        "rss": memory["VmRSS"],
        "peak": memory["VmHWM"],
    }


# --- index types ---------------------------------------------------------------------------------------


def face_like(n: int, probes: int) -> tuple[np.ndarray, np.ndarray]:
    """Listed faces and probes: half mated (cosine ~0.6 to their listed face), half strangers."""
    listed = unit_rows(n, 5)
    rng = np.random.default_rng(6)
    who = rng.choice(n, probes // 2, replace=False)
    noise = unit_rows(probes // 2, 7)
    mated = 0.6 * listed[who] + 0.8 * noise  # unit noise orthogonal in expectation: cosine ~0.6
    strangers = unit_rows(probes - probes // 2, 8)
    queries = np.concatenate([mated, strangers]).astype(np.float32)
    return listed, queries / np.linalg.norm(queries, axis=1, keepdims=True)


def index_types(n: int, seconds: float, kinds: list[tuple[str, dict[str, int]]]) -> list[dict[str, Any]]:
    from lfr.adapters.faiss_index import FaissIndex, configure_faiss
    from lfr.adapters.index_spec import IndexSpec

    configure_faiss(1)
    listed, queries = face_like(n, 2000)
    ids = [f"s{i}" for i in range(n)]
    rows = []
    truth: tuple[np.ndarray, np.ndarray] | None = None
    for kind, params in kinds:
        spec = IndexSpec(kind, params)
        cpu = time.process_time()
        index = FaissIndex(ids, listed, spec)
        build = time.process_time() - cpu
        codes, scores = index.search_codes(queries, 1)
        best = np.array([index.subjects[c] if c >= 0 else "" for c in codes[:, 0]], dtype=object)
        if truth is None:
            truth = (best, scores[:, 0].astype(np.float64))
        would = truth[1] >= THRESHOLD
        kept = would & (best == truth[0]) & (scores[:, 0] >= THRESHOLD)
        chunk = queries[:BATCH]

        def search(index: FaissIndex = index, chunk: np.ndarray = chunk) -> int:
            return len(index.search_codes(chunk, 5)[0])

        rows.append(
            {
                "index": spec.label(),
                "build_cpu_s": build,
                "memory_x_raw": index.memory_bytes() / listed.nbytes,
                "qps_cpu": per_cpu_second(search, seconds),
                "recall_at_1": float(np.mean(best == truth[0])),
                "alerts_kept": float(kept.sum() / max(1, would.sum())),
                "exact_alerts": int(would.sum()),
            }
        )
        del index
    return rows


# --- report ---------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--index-size", type=int, default=100_000)
    parser.add_argument("--seconds", type=float, default=2.0, help="CPU seconds per search measurement")
    parser.add_argument("--e2e-seconds", type=float, default=6.0, help="wall seconds per load phase")
    parser.add_argument("--search-threads", type=int, default=1, help="matching.search_threads end to end")
    parser.add_argument("--start-sizes", default="100000", help="watchlist sizes for the `lfr serve` start")
    parser.add_argument("--million", action="store_true", help="also FAISS alone and memory at 1M")
    parser.add_argument("--skip", default="", help="comma-separated parts to skip: kernel,e2e,start,types")
    parser.add_argument("--kernel-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.kernel_child:
        kernel_child(args.seconds)
        return
    skip = set(args.skip.split(","))
    from rich.console import Console
    from rich.table import Table

    console = Console(width=170)
    console.print(f"[bold]bench.speed[/] {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {load()}")
    if "kernel" not in skip:
        table = Table(title=f"FAISS flat search, N=10,000, batch {BATCH}, 1 thread; {load()}")
        for column in ("kernel", "chosen by", "queries per CPU-second"):
            table.add_column(column)
        for row in kernel_part(args.seconds):
            table.add_row(str(row["kernel"]), row["how"], f"{row['qps_cpu']:,.0f}")
        console.print(table)

    sizes = [int(s) for s in args.sizes.split(",") if s]
    table = Table(title=f"Matcher vs FAISS alone vs numpy GEMM, batch {BATCH}, queries per CPU-second")
    for column in (
        "N",
        "numpy GEMM",
        "FAISS 1 thread",
        "FAISS 2 shards",
        "matcher e2e",
        "e2e / FAISS",
        "e2e / GEMM",
        "p99 alert ms @50%",
        "RSS growth / raw",
        "load",
    ):
        table.add_column(column, justify="right")
    for n in sizes:
        search = search_part(n, args.seconds)
        e2e = end_to_end(n, args.e2e_seconds, args.search_threads) if "e2e" not in skip else None
        raw = n * DIM * 4
        table.add_row(
            f"{n:,}",
            f"{search['roofline']:,.0f}",
            f"{search['faiss_1']:,.0f}",
            f"{search['faiss_2']:,.0f} ({search['faiss_2_cpu_share']:.1f} CPUs)",
            f"{e2e['e2e_qps_cpu']:,.0f}" if e2e else "-",
            f"{e2e['e2e_qps_cpu'] / search['faiss_1']:.0%}" if e2e else "-",
            f"{e2e['e2e_qps_cpu'] / search['roofline']:.0%}" if e2e else "-",
            f"{e2e['alert_p99_ms']:.1f} (p50 {e2e['alert_p50_ms']:.1f}, {e2e['alerts']} alerts)"
            if e2e
            else "-",
            f"{e2e['rss_growth'] / raw:.2f}x" if e2e else "-",
            f"{os.getloadavg()[0]:.1f}",
        )
        if e2e:
            console.print(
                f"N={n:,}: e2e saturated {e2e['e2e_rate_wall']:,.0f} embeddings/s wall, paced "
                f"{e2e['paced_rate']:,.0f}/s, result p99 {e2e['result_p99_ms']:.1f} ms; setup (enrol + "
                f"start) {e2e['setup_s']:.1f} s; {load()}"
            )
    if args.million:
        x = unit_rows(1_000_000, 9)
        search = search_part(1_000_000, args.seconds, x)
        table.add_row(
            "1,000,000",
            f"{search['roofline']:,.0f}",
            f"{search['faiss_1']:,.0f}",
            f"{search['faiss_2']:,.0f} ({search['faiss_2_cpu_share']:.1f} CPUs)",
            "-",
            "-",
            "-",
            "-",
            "-",
            f"{os.getloadavg()[0]:.1f}",
        )
        del x
    console.print(table)

    if "start" not in skip:
        table = Table(
            title="`lfr serve` start with an armed window (SQLite store); memory is the growth over a "
            "100-subject watchlist's process, against the raw vectors"
        )
        for column in (
            "N",
            "port open s",
            "SERVING s",
            "CPU s by then",
            "RSS",
            "RSS growth / raw",
            "peak growth / raw",
            "load",
        ):
            table.add_column(column, justify="right")
        base: dict[str, float] | None = None
        for n in [100] + [int(x) for x in args.start_sizes.split(",") if x]:
            with tempfile.TemporaryDirectory(prefix="lfr-bench-start-") as folder:
                found = serve_start(n, Path(folder))
            base = base or found
            raw = n * DIM * 4
            table.add_row(
                f"{n:,}",
                f"{found['open_s']:.1f}",
                f"{found['serving_s']:.1f}",
                f"{found['cpu_s']:.1f}",
                f"{found['rss'] / 1e6:.0f} MB",
                f"{(found['rss'] - base['rss']) / raw:.2f}x" if n > 100 else "(baseline)",
                f"{(found['peak'] - base['peak']) / raw:.2f}x" if n > 100 else "(baseline)",
                f"{os.getloadavg()[0]:.1f}",
            )
        console.print(table)

    if "types" not in skip:
        kinds: list[tuple[str, dict[str, int]]] = [
            ("flat", {}),
            ("sq8", {}),
            ("ivf", {"nprobe": 32}),
            ("ivf", {"nprobe": 128}),
            ("hnsw", {"efSearch": 128}),
        ]
        table = Table(
            title=f"Index types at N={args.index_size:,}, synthetic face-like data, threshold {THRESHOLD}; "
            f"{load()}"
        )
        for column in (
            "index",
            "build CPU s",
            "memory / raw",
            "q per CPU-s (batch 256)",
            "recall@1",
            "alerts kept",
        ):
            table.add_column(column, justify="right")
        for row in index_types(args.index_size, args.seconds, kinds):
            table.add_row(
                row["index"],
                f"{row['build_cpu_s']:.1f}",
                f"{row['memory_x_raw']:.2f}x",
                f"{row['qps_cpu']:,.0f}",
                f"{row['recall_at_1']:.4f}",
                f"{row['alerts_kept']:.4f} of {row['exact_alerts']}",
            )
        console.print(table)
    console.print(load())


if __name__ == "__main__":
    main()
