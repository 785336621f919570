"""FAISS's OpenBLAS kernel is checked and, where it falls back to a generic one, replaced before FAISS loads.

Real OpenBLAS (FAISS's bundled copy), real child processes: the kernel is fixed when the library loads, so the
end-to-end comparison runs each configuration in its own interpreter.
"""

from __future__ import annotations

import ast
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from typer.testing import CliRunner

from lfr.adapters import blas_kernel
from lfr.adapters.blas_kernel import (
    ENV,
    agrees,
    choose,
    cpu_flags,
    cpu_lacks,
    faiss_openblas,
    probe,
    supported_candidates,
)

ROOT = Path(__file__).resolve().parents[2]
LIBRARY = faiss_openblas()
needs_bundled_openblas = pytest.mark.skipif(LIBRARY is None, reason="this faiss bundles no OpenBLAS")

AVX512 = frozenset({"avx512f", "avx512bw", "avx512dq", "avx512vl", "avx512cd", "avx2", "fma", "avx", "pni"})

# Searches a seeded random flat index through lfr's own FAISS module (which runs the kernel check first) and
# writes the raw top-10 rows and scores, plus the kernel the loaded library reports.
_SEARCH = r"""
import json, sys
import numpy as np
from lfr.adapters.faiss_index import FaissFlatIndex
from lfr.adapters.blas_kernel import kernel_report
rng = np.random.default_rng(7)
x = rng.standard_normal((5000, 512)).astype(np.float32)
x /= np.linalg.norm(x, axis=1, keepdims=True)
q = x[rng.choice(5000, 64, replace=False)] + 0.3 * rng.standard_normal((64, 512)).astype(np.float32)
q /= np.linalg.norm(q, axis=1, keepdims=True)
index = FaissFlatIndex([str(i) for i in range(5000)], x)
scores, ids = index.raw_search(q, 10)  # the batch goes through BLAS (over the threshold)
one_scores, one_ids = index.raw_search(q[:1], 10)
np.savez(sys.argv[1], ids=ids, scores=scores, one_ids=one_ids, one_scores=one_scores)
print(json.dumps(kernel_report().as_dict()))
"""


def _search_in_child(out: Path, coretype: str | None) -> dict[str, object]:
    env = {k: v for k, v in os.environ.items() if k != ENV}
    env["PYTHONPATH"] = str(ROOT)
    if coretype is not None:
        env[ENV] = coretype
    done = subprocess.run(
        [sys.executable, "-c", _SEARCH, str(out)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=True,
    )
    report: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return report


@needs_bundled_openblas
def test_search_results_are_identical_with_and_without_the_kernel_override(tmp_path):
    assert LIBRARY is not None
    alone = probe(LIBRARY, None).core
    best = supported_candidates(cpu_flags())[0]
    if blas_kernel.rank(alone) >= blas_kernel.rank(best):
        # OpenBLAS knows this CPU (an AMD Zen, say): no override happens here, so compare the kernel it
        # picks with the generic one it falls back to on CPUs it does not know, the case the override fixes.
        weak, expected = "Prescott", (alone, "detected")
    else:
        weak, expected = alone, (best, "override")
    # A kernel set explicitly is respected: that is the run without the override.
    plain = _search_in_child(tmp_path / "plain.npz", weak)
    fixed = _search_in_child(tmp_path / "fixed.npz", None)
    assert (plain["loaded"], plain["source"]) == (weak, "preset")
    assert (fixed["loaded"], fixed["source"]) == expected
    a, b = np.load(tmp_path / "plain.npz"), np.load(tmp_path / "fixed.npz")
    np.testing.assert_array_equal(a["ids"], b["ids"])
    np.testing.assert_array_equal(a["one_ids"], b["one_ids"])
    assert np.abs(a["scores"] - b["scores"]).max() <= 1e-5
    assert np.abs(a["one_scores"] - b["one_scores"]).max() <= 1e-5


def test_kernels_are_offered_only_when_the_cpu_has_their_instructions():
    assert supported_candidates(AVX512)[0] == "SkylakeX"
    assert supported_candidates(AVX512 - {"avx512bw"})[0] == "Haswell"
    assert supported_candidates(frozenset({"avx", "pni", "ssse3"})) == ["Sandybridge", "Core2", "Prescott"]
    assert supported_candidates(frozenset()) == []


def test_cpu_flags_are_those_every_core_has(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor: 0\nflags\t: sse avx2 fma\n\nprocessor: 1\nflags\t: sse avx2\n")
    assert cpu_flags(cpuinfo) == {"sse", "avx2"}


def test_a_wrong_product_fails_verification():
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((5, 64)), rng.standard_normal((7, 64))
    right = a @ b.T
    assert agrees(right.astype(np.float32).astype(np.float64), a, b)
    wrong = right.copy()
    wrong[3, 4] += 0.01 * np.abs(a[3]) @ np.abs(b[4])
    assert not agrees(wrong, a, b)
    assert not agrees(right[:, :6], a, b)


@needs_bundled_openblas
def test_a_preset_kernel_the_cpu_lacks_is_replaced(monkeypatch):
    assert LIBRARY is not None
    monkeypatch.delenv(ENV, raising=False)
    flags = cpu_flags()
    if not {"avx2", "fma", "avx"} <= flags:
        pytest.skip("needs a CPU with AVX2 and FMA to run the Haswell kernel for real")
    without_avx512 = frozenset(f for f in flags if not f.startswith("avx512"))
    report = choose(LIBRARY, without_avx512, "SkylakeX")
    assert "SkylakeX needs" in report.notes[0]
    assert "avx512" in report.notes[0]
    # The best AVX2 kernel: Haswell set by the check on an Intel CPU, or OpenBLAS's own Zen on an AMD one.
    assert blas_kernel.rank(report.chosen) == blas_kernel.rank("Haswell")
    if report.source == "override":
        assert os.environ[ENV] == report.chosen == "Haswell"
    else:
        assert (report.source, report.chosen) == ("detected", report.detected)
        assert ENV not in os.environ


@needs_bundled_openblas
@pytest.mark.parametrize("preset", ["NoSuchCore", "Cooperlake"])
def test_a_preset_kernel_openblas_does_not_run_is_replaced(monkeypatch, preset):
    assert LIBRARY is not None
    monkeypatch.delenv(ENV, raising=False)
    if preset == "Cooperlake" and cpu_lacks("SkylakeX", cpu_flags()):
        pytest.skip("Cooperlake needs an AVX-512 CPU to pass the CPU check and reach OpenBLAS")
    flags = cpu_flags() | {"avx512_bf16"}  # so Cooperlake passes the CPU check and reaches OpenBLAS
    if probe(LIBRARY, preset).core == preset:
        pytest.skip(f"this OpenBLAS has {preset}")
    report = choose(LIBRARY, flags, preset)
    assert f"{preset}: OpenBLAS does not have it" in report.notes[0]
    assert report.source in ("override", "detected")
    assert report.chosen is not None
    assert blas_kernel.rank(report.chosen) == blas_kernel.rank(report.best_supported)


@needs_bundled_openblas
def test_an_explicit_weaker_kernel_is_respected_and_the_faster_one_named(monkeypatch, caplog):
    assert LIBRARY is not None
    monkeypatch.delenv(ENV, raising=False)
    report = choose(LIBRARY, cpu_flags(), "Prescott")
    assert (report.chosen, report.source, os.environ[ENV]) == ("Prescott", "preset", "Prescott")
    assert not report.is_fallback  # asked for, so not a fault
    if report.best_supported != "Prescott":
        assert "would be faster" in report.notes[0]
    # Advice, not a warning: a warning would reach the terminal of every lfr command (CI's environment
    # presets a weaker kernel than its CPU supports).
    with caplog.at_level(logging.INFO, logger=blas_kernel.logger.name):
        blas_kernel._log(report)
    assert [r.levelno for r in caplog.records] == [logging.INFO]


def test_the_kernel_is_a_metric():
    from lfr.adapters.metrics import PrometheusIngestMetrics

    registry = CollectorRegistry()
    PrometheusIngestMetrics(registry)
    report = blas_kernel.ensure_blas_kernel()
    text = generate_latest(registry).decode()
    line = next(line for line in text.splitlines() if line.startswith("lfr_faiss_blas_kernel_info"))
    assert f'kernel="{report.running or "unknown"}"' in line
    assert f'source="{report.source}"' in line


@needs_bundled_openblas
def test_doctor_reports_the_kernel_faiss_runs():
    from lfr.cli.main import app

    result = CliRunner().invoke(app, ["doctor", "--json"])
    facts = json.loads(result.stdout)
    report = blas_kernel.ensure_blas_kernel()
    assert facts["blas_kernel"]["loaded"] == report.loaded is not None
    assert result.exit_code == (1 if report.is_fallback else 0)


def test_only_the_faiss_adapter_imports_faiss():
    """The kernel check runs in lfr.adapters.faiss_index before `import faiss`: a module importing FAISS
    directly could load it first and pin the generic kernel."""
    importers = []
    for folder in ("lfr", "evaluation", "bench", "tests"):
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                names = (
                    [a.name for a in node.names]
                    if isinstance(node, ast.Import)
                    else [node.module or ""]
                    if isinstance(node, ast.ImportFrom)
                    else []
                )
                if any(n == "faiss" or n.startswith("faiss.") for n in names):
                    importers.append(str(path.relative_to(ROOT)))
    assert importers == ["lfr/adapters/faiss_index.py"]
