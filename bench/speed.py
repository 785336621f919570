"""Matcher speed at scale, all in one run, in queries per CPU-second (the machine is shared: wall-clock
ratios between a threaded pipeline and a one-thread loop are biased by other people's load).

    OMP_NUM_THREADS=1 python -m bench.speed                       # 10k and 100k, index types at 100k
    python -m bench.speed --sizes 10000 --index-size 20000 --e2e-seconds 4   # a quick look
    python -m bench.speed --million                               # adds 1M (~35 min on 2 busy cores)
    python -m bench.speed --sizes "" --million --start-sizes "" --skip kernel   # only the 1M rows and types

Parts (each figure: queries answered / CPU seconds of the process that answered them):
- kernel: flat search with the kernel FAISS's OpenBLAS picks alone vs the one lfr chose (child processes);
- per N: numpy GEMM (the roofline: Q @ X.T, batch 256, one thread), FAISS alone (lfr's FaissIndex, batch
  256, one thread; and split in 2 shards searched in parallel), and the matcher end to end (bench.matcher:
  loopback gRPC, 8 camera streams, micro-batcher, SQLite): CPU of the matcher process per embedding
  answered, saturated; then p99 latency at 50% of the saturated rate; memory (RSS growth of the matcher
  process once its index is built, against the raw vectors);
- per index type at `--index-size` (and at 1M with `--million`): build CPU (2 threads), memory, q per
  CPU-second, recall@1 and alerts kept against exact search, on synthetic faces (`--types-data`: clustered
  around sub-centres as real faces are, or isotropic, the worst case for IVF and HNSW; mated probes at
  cosine ~0.6 to their listed face; see docs/benchmarks.md);
- with `--million`: FAISS alone at 1M, and `lfr serve` over a bulk-filled 1M store: start, memory (steady
  and peak) and the same camera load as end to end (CPU of the serve process).
The load average is printed beside every table.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np

if TYPE_CHECKING:
    from bench.matcher import Params

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


def load_params(n: int, seconds: float, warmup: float = 1.5, search_threads: int = 1) -> Params:
    """The matcher rows' load: 8 streams x 32 observations a message, a watchlist face per 100."""
    from bench.matcher import Params

    return Params(
        subjects=n,
        streams=8,
        batch=32,
        in_flight=2,
        seconds=seconds,
        warmup=warmup,
        match_every=100,
        paced_fraction=0.5,
        store="sqlite",
        batch_wait_ms=1.5,
        batch_max=256,
        search_threads=search_threads,
    )


def matcher_row(label: str, search: dict[str, float], e2e: dict[str, float] | None, memory: str) -> list[str]:
    """One row of the matcher vs FAISS vs GEMM table ("-" where the end-to-end part was skipped)."""
    return [
        label,
        f"{search['roofline']:,.0f}",
        f"{search['faiss_1']:,.0f}",
        f"{search['faiss_2']:,.0f} ({search['faiss_2_cpu_share']:.1f} CPUs)",
        f"{e2e['e2e_qps_cpu']:,.0f}" if e2e else "-",
        f"{e2e['e2e_qps_cpu'] / search['faiss_1']:.0%}" if e2e else "-",
        f"{e2e['e2e_qps_cpu'] / search['roofline']:.0%}" if e2e else "-",
        f"{e2e['alert_p99_ms']:.1f} (p50 {e2e['alert_p50_ms']:.1f}, {e2e['alerts']} alerts)" if e2e else "-",
        memory,
        f"{os.getloadavg()[0]:.1f}",
    ]


def end_to_end(n: int, seconds: float, search_threads: int) -> dict[str, float]:
    from bench.matcher import run_load, start_matcher

    params = load_params(n, seconds, search_threads=search_threads)
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
    return {**load_figures(answered, used, saturated, paced), "rss_growth": steady, "setup_s": setup_s}


def load_figures(
    answered: float, cpu_used: float, saturated: dict[str, Any], paced: dict[str, Any]
) -> dict[str, float]:
    """A matcher row's figures from its saturated load (answers per CPU-second of the answering process)
    and its paced load (latency)."""
    return {
        "e2e_qps_cpu": answered / cpu_used,
        "e2e_rate_wall": saturated["rate"],
        "paced_rate": paced["rate"],
        "alert_p50_ms": paced["alert_p50_ms"],
        "alert_p99_ms": paced["alert_p99_ms"],
        "result_p99_ms": paced["result_p99_ms"],
        "alerts": paced["alerts"],
    }


def serve_store(n: int, folder: Path, cameras: int = 8) -> tuple[Path, dict[str, str]]:
    """A SQLite store holding an armed window over n subjects (bulk-filled: ~1-2 min at 1M) and the
    `lfr serve` config over it; the bearer tokens of its supervisor and cameras."""
    import socket
    from datetime import UTC, datetime, timedelta

    from bench.matcher import MODEL, enrol
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
    tokens = {"sup": container.principals.issue_token("sup", "bench")}
    names = [f"cam-{i}" for i in range(cameras)]
    for name in names:
        container.principals.create(name, PrincipalKind.CAMERA, [], "bench")
        tokens[name] = container.principals.issue_token(name, "bench")
    wl = container.watchlists.create("bench", MODEL, DIM, sup)
    enrol(container, wl.id, n)
    container.watchlists.seal(wl.id, sup)
    now = datetime.now(UTC)
    spec = WindowSpec("b", "b", "b", frozenset(names), wl.id, 0.6, now, now + timedelta(hours=2))
    # Only the served process needs the index: not building it here too saves minutes at 1M.
    container.windows_changed = lambda: None  # type: ignore[method-assign]
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
    return config, tokens


def process_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def process_memory(pid: int) -> dict[str, int]:
    text = Path(f"/proc/{pid}/status").read_text()
    return {
        line.split(":")[0]: int(line.split()[1]) * 1024
        for line in text.splitlines()
        if line.startswith(("VmRSS", "VmHWM"))
    }


def serve_start(n: int, folder: Path, e2e_seconds: float = 0.0) -> dict[str, float]:
    """`lfr serve` on a store holding an armed window over n subjects: seconds from launch to the port
    answering and to health SERVING, the process's CPU seconds by then, and its memory (RSS at SERVING and
    its peak). With e2e_seconds, then bench.matcher's load against that process (8 camera streams,
    saturated then paced at 50%): embeddings answered per CPU-second of the server, and p99 alert."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    filling = time.perf_counter()
    config, tokens = serve_store(n, folder)
    fill_s = time.perf_counter() - filling
    port = int(config.read_text().split("listen: 127.0.0.1:")[1].split()[0])
    lfr = Path(sys.executable).with_name("lfr")
    started = time.perf_counter()
    process = subprocess.Popen([str(lfr), "serve", "--config", str(config)], stdout=subprocess.DEVNULL)
    opened = serving = float("nan")
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            health = health_pb2_grpc.HealthStub(channel)
            while time.perf_counter() - started < 600 and process.poll() is None:
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
        time.sleep(1.0)  # the build's freed memory is handed back just after SERVING
        found = {
            "open_s": opened,
            "serving_s": serving,
            "cpu_s": process_cpu_s(process.pid),
            "fill_s": fill_s,
        }
        memory = process_memory(process.pid)
        found.update(rss=memory["VmRSS"], peak=memory["VmHWM"])
        if e2e_seconds:
            found.update(serve_load(process.pid, port, tokens, n, e2e_seconds))
    finally:
        process.terminate()
        process.wait(30)
    return found


def serve_load(pid: int, port: int, tokens: dict[str, str], n: int, seconds: float) -> dict[str, float]:
    from bench.matcher import run_load

    params = load_params(n, seconds, warmup=max(1.5, seconds / 4))
    # At 1M a flat search answers ~100 a CPU-second: paced at half of that, 8 streams of 32-observation
    # messages send one message per stream every few seconds, and a 20 s phase held no alert (2026-11-30).
    # Paced, small messages with more watchlist faces keep alerts in the phase; saturated, the messages
    # stay as at 10k and 100k, since that phase's CPU per observation is what the table compares.
    paced_params = dataclasses.replace(params, batch=2, match_every=8) if n >= 500_000 else params
    cpu = process_cpu_s(pid)
    saturated = run_load(port, tokens, params, rate=0)
    used = process_cpu_s(pid) - cpu
    paced = run_load(port, tokens, paced_params, rate=saturated["rate"] * params.paced_fraction)
    return {
        **load_figures(saturated["answered"], used, saturated, paced),
        "rss_after_load": process_memory(pid)["VmRSS"],
    }


# --- index types ---------------------------------------------------------------------------------------


def clustered_rows(n: int, seed: int, groups: int = 64, per_group: int = 16) -> np.ndarray:
    """Face-like rows: each identity is drawn around one of 64 x 16 sub-centres (cosine ~0.1 to others
    of its group, ~0.2 to others of its sub-centre, ~0 beyond), as faces cluster by look and demography.
    A stranger's nearest listed face then scores ~0.29 at 100k (p99 0.34) and ~0.33 at 1M, a mated probe
    0.6: the range real faces show with the shipped recogniser, where isotropic rows are the worst case
    for IVF and HNSW (no structure to exploit)."""
    centres = np.random.default_rng(10)
    group = centres.standard_normal((groups, DIM), dtype=np.float32)
    group /= np.linalg.norm(group, axis=1, keepdims=True)
    sub = centres.standard_normal((groups * per_group, DIM), dtype=np.float32)
    sub /= np.linalg.norm(sub, axis=1, keepdims=True)
    rng = np.random.default_rng(seed)
    out = unit_rows(n, seed + 1000)
    for start in range(0, n, 100_000):
        block = out[start : start + 100_000]
        which = rng.integers(0, len(sub), len(block))
        block *= np.sqrt(0.8)
        block += np.sqrt(0.1) * group[which // per_group] + np.sqrt(0.1) * sub[which]
        block /= np.linalg.norm(block, axis=1, keepdims=True)
    return out


def face_like(n: int, probes: int, data: str) -> tuple[np.ndarray, np.ndarray]:
    """Listed faces and probes: half mated (cosine ~0.6 to their listed face), half strangers drawn like
    the listed (`data`: isotropic or clustered)."""
    rows = clustered_rows if data == "clustered" else unit_rows
    listed = rows(n, 5)
    rng = np.random.default_rng(6)
    who = rng.choice(n, probes // 2, replace=False)
    noise = unit_rows(probes // 2, 7)
    mated = 0.6 * listed[who] + 0.8 * noise  # unit noise orthogonal in expectation: cosine ~0.6
    strangers = rows(probes - probes // 2, 8)
    queries = np.concatenate([mated, strangers]).astype(np.float32)
    return listed, queries / np.linalg.norm(queries, axis=1, keepdims=True)


def parse_kinds(text: str) -> list[tuple[str, dict[str, int]]]:
    """ "flat;sq8;ivf:nprobe=32;IVF1024,Flat:nprobe=64;hnsw:efSearch=128" -> [(kind, params)]."""
    kinds = []
    for item in filter(None, (part.strip() for part in text.split(";"))):
        kind, _, params = item.partition(":")
        pairs = (pair.split("=") for pair in params.split("/") if pair)
        kinds.append((kind, {name: int(value) for name, value in pairs}))
    return kinds


def index_types(
    n: int, kinds: list[tuple[str, dict[str, int]]], data: str, probes: int, budget_s: float
) -> list[dict[str, Any]]:
    """Each kind built once (2 OpenMP threads; its CPU seconds reported), searched on one thread: top-5
    for every probe it has time for (`budget_s` CPU seconds: at least 200 probes, half mated), queries per
    CPU-second over those searches, and recall@1 / alerts kept against exact search on the same probes.
    Consecutive entries of one kind share its build (only the search parameter changes)."""
    from lfr.adapters.faiss_index import FaissIndex, configure_faiss
    from lfr.adapters.index_spec import IndexSpec, ivf_lists

    listed, queries = face_like(n, probes, data)
    half = probes // 2
    ids = [f"s{i}" for i in range(n)]
    rows: list[dict[str, Any]] = []
    truth: tuple[np.ndarray, np.ndarray] | None = None
    index: FaissIndex | None = None
    if not kinds or not IndexSpec(kinds[0][0]).exact:
        raise SystemExit("the first index type must be exact: it is the truth the others are held to")
    for kind, params in kinds:
        spec = IndexSpec(kind, params)
        build = float("nan")
        if index is None or index.spec.kind != kind:
            index = None  # the previous kind's memory goes before the next is built
            configure_faiss(2)
            cpu = time.process_time()
            index = FaissIndex(ids, listed, spec)
            build = time.process_time() - cpu
            configure_faiss(1)
        else:
            index.retune(spec)
        index.search_codes(queries[:16], 5)  # warm
        if truth is None:
            take = np.arange(probes)
        else:
            started = time.process_time()
            index.search_codes(queries[half - 8 : half + 8], 5)
            rate = 16 / max(1e-6, time.process_time() - started)
            some = max(100, min(half, int(rate * budget_s / 2)))
            take = np.concatenate([np.arange(some), half + np.arange(some)])
        codes = np.empty(len(take), dtype=np.int64)
        scores = np.empty(len(take), dtype=np.float64)
        started = time.process_time()
        for first in range(0, len(take), BATCH):
            chunk = take[first : first + BATCH]
            found, best = index.search_codes(queries[chunk], 5)
            codes[first : first + len(chunk)], scores[first : first + len(chunk)] = found[:, 0], best[:, 0]
        qps = len(take) / (time.process_time() - started)
        best_subject = np.array([index.subjects[c] if c >= 0 else "" for c in codes], dtype=object)
        if truth is None:
            truth = (best_subject, scores)
        exact_subject, exact_score = truth[0][take], truth[1][take]
        would = exact_score >= THRESHOLD
        kept = would & (best_subject == exact_subject) & (scores >= THRESHOLD)
        rows.append(
            {
                "index": spec.label() + (f" ({ivf_lists(n):,} lists)" if kind == "ivf" else ""),
                "build_cpu_s": build,
                "memory_x_raw": index.memory_bytes() / listed.nbytes,
                "qps_cpu": qps,
                "probes": len(take),
                "recall_at_1": float(np.mean(best_subject == exact_subject)),
                "alerts_kept": float(kept.sum() / max(1, would.sum())),
                "exact_alerts": int(would.sum()),
            }
        )
        print(f"  {rows[-1]}; {load()}", flush=True)
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
    parser.add_argument(
        "--million",
        action="store_true",
        help="also 1M: FAISS alone, `lfr serve` end to end, start and memory, and index types",
    )
    parser.add_argument("--million-size", type=int, default=1_000_000, help=argparse.SUPPRESS)  # smoke tests
    parser.add_argument("--types", default="flat;sq8;ivf:nprobe=32;ivf:nprobe=128;hnsw:efSearch=128")
    parser.add_argument("--million-types", default="flat;sq8;IVF1024,Flat:nprobe=32;IVF1024,Flat:nprobe=128")
    parser.add_argument(
        "--types-data", default="clustered", help="isotropic and/or clustered, comma-separated"
    )
    parser.add_argument("--probes", type=int, default=2000, help="index types: probes (half at 1M)")
    parser.add_argument(
        "--type-seconds", type=float, default=30.0, help="CPU seconds of probes per index type"
    )
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
        table.add_row(*matcher_row(f"{n:,}", search, e2e, f"{e2e['rss_growth'] / raw:.2f}x" if e2e else "-"))
        if e2e:
            console.print(
                f"N={n:,}: e2e saturated {e2e['e2e_rate_wall']:,.0f} embeddings/s wall, paced "
                f"{e2e['paced_rate']:,.0f}/s, result p99 {e2e['result_p99_ms']:.1f} ms; setup (enrol + "
                f"start) {e2e['setup_s']:.1f} s; {load()}"
            )
    baseline: dict[str, float] | None = None
    million: dict[str, float] | None = None
    big = args.million_size
    if args.million:
        x = unit_rows(big, 9)
        search = search_part(big, args.seconds, x)
        del x
        if "e2e" not in skip:
            baseline = serve_in_folder(100)
            # ~100 answers a second at 1M: longer phases, or the paced one holds only a few alerts.
            million = serve_in_folder(big, max(args.e2e_seconds, 20.0))
        raw = big * DIM * 4
        e2e = million
        memory = steady_and_peak(e2e, baseline, raw) if e2e and baseline else "-"
        table.add_row(*matcher_row(f"{big:,} (`lfr serve`)", search, e2e, memory))
        if e2e:
            console.print(
                f"N={big:,} (`lfr serve`): e2e saturated {e2e['e2e_rate_wall']:,.0f} embeddings/s wall, "
                f"paced {e2e['paced_rate']:,.0f}/s, result p99 {e2e['result_p99_ms']:.1f} ms; store filled "
                f"in {e2e['fill_s']:.0f} s; RSS after the load {e2e['rss_after_load'] / 1e6:,.0f} MB; "
                f"{load()}"
            )
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
        baseline = baseline or serve_in_folder(100)
        measured = [(n, serve_in_folder(n)) for n in [int(x) for x in args.start_sizes.split(",") if x]]
        for n, found in [(100, baseline), *measured, *([(big, million)] if million else [])]:
            raw = n * DIM * 4
            table.add_row(
                f"{n:,}",
                f"{found['open_s']:.1f}",
                f"{found['serving_s']:.1f}",
                f"{found['cpu_s']:.1f}",
                f"{found['rss'] / 1e6:.0f} MB",
                f"{(found['rss'] - baseline['rss']) / raw:.2f}x" if n > 100 else "(baseline)",
                f"{(found['peak'] - baseline['peak']) / raw:.2f}x" if n > 100 else "(baseline)",
                f"{found['load']:.1f}",
            )
        console.print(table)

    if "types" not in skip:
        runs = [(args.index_size, parse_kinds(args.types))]
        if args.million:
            runs.append((big, parse_kinds(args.million_types)))
            console.print(
                "At 1M, not built: `ivf` (4 sqrt(N) = 4,000 lists: k-means over 1M rows, ~400 CPU-s) and "
                "`hnsw` (HNSW32: ~56 CPU-s at 100k, ~11 CPU-min at 1M) unless named in --million-types: "
                "neither fits a shared 2-core machine in a bounded run."
            )
        for data in args.types_data.split(","):
            for n, kinds in runs:
                table = Table(
                    title=f"Index types at N={n:,}, {data} synthetic faces, threshold {THRESHOLD}; {load()}"
                )
                for column in (
                    "index",
                    "build CPU s (2 threads)",
                    "memory / raw",
                    "q per CPU-s (batch 256)",
                    "probes",
                    "recall@1",
                    "alerts kept",
                ):
                    table.add_column(column, justify="right")
                probes = args.probes if n < big else args.probes // 2
                for row in index_types(n, kinds, data, probes, args.type_seconds):
                    table.add_row(
                        row["index"],
                        "(same build)"
                        if row["build_cpu_s"] != row["build_cpu_s"]
                        else f"{row['build_cpu_s']:.1f}",
                        f"{row['memory_x_raw']:.2f}x",
                        f"{row['qps_cpu']:,.0f}",
                        f"{row['probes']:,}",
                        f"{row['recall_at_1']:.4f}",
                        f"{row['alerts_kept']:.4f} of {row['exact_alerts']}",
                    )
                console.print(table)
    console.print(load())


def steady_and_peak(found: dict[str, float], baseline: dict[str, float], raw: int) -> str:
    steady = (found["rss"] - baseline["rss"]) / raw
    return f"{steady:.2f}x (peak {(found['peak'] - baseline['peak']) / raw:.2f}x)"


def serve_in_folder(n: int, e2e_seconds: float = 0.0) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="lfr-bench-start-") as folder:
        found = serve_start(n, Path(folder), e2e_seconds)
    found["load"] = os.getloadavg()[0]
    return found


if __name__ == "__main__":
    main()
