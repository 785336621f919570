"""Makes sure FAISS's bundled OpenBLAS runs a GEMM kernel this CPU supports well, before FAISS is loaded.

faiss-cpu bundles its own OpenBLAS (0.3.15 in faiss-cpu 1.15), which does not know recent Intel models and
falls back to its oldest x86-64 kernel (`Prescott`, SSE3): flat search then runs at about a fifth of the
CPU's GEMM peak. OpenBLAS reads `OPENBLAS_CORETYPE` once, when the library is loaded, so the choice has to be
made before `import faiss`: `lfr.adapters.faiss_index` calls `ensure_blas_kernel()` first, and every user of
FAISS goes through that module (an architecture test enforces it).

Each probe loads the library in a short child process (a library loaded here could not be re-initialised):
it reports the kernel OpenBLAS picked and multiplies a small random problem with `cblas_sgemm`; the result is
checked here against numpy in float64. A kernel is only chosen if the CPU has every instruction set it needs
(/proc/cpuinfo), OpenBLAS really switched to it, and its product agrees with numpy; otherwise the next best.
An explicit `OPENBLAS_CORETYPE` is respected unless it names a kernel the CPU lacks, one OpenBLAS does not
have, or one whose product is wrong; then it is replaced (and the reason logged).
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

# numpy is imported (and so its own, separate OpenBLAS initialised with its own detection) before this module
# ever sets OPENBLAS_CORETYPE, so the variable only steers FAISS's copy.
import numpy as np

logger = logging.getLogger(__name__)

ENV = "OPENBLAS_CORETYPE"

# OpenBLAS x86-64 kernels by SGEMM instruction class (higher is faster); names as openblas_get_corename()
# reports them (lower-cased). Unknown names rank 0.
_RANK: dict[str, int] = {
    **dict.fromkeys(
        ["katmai", "coppermine", "northwood", "prescott", "banias", "atom", "core2", "penryn", "dunnington"],
        1,
    ),
    **dict.fromkeys(["nehalem", "opteron", "opteron(sse3)", "barcelona", "nano", "bobcat"], 1),
    **dict.fromkeys(["sandybridge", "bulldozer", "piledriver"], 2),
    **dict.fromkeys(["haswell", "steamroller", "excavator", "zen"], 3),
    **dict.fromkeys(["skylakex", "cooperlake"], 4),
}

# What each kernel we would choose needs from the CPU (/proc/cpuinfo flag names). Best first. Cooperlake is
# left out on purpose: its SGEMM is SkylakeX's (it only adds bfloat16 GEMM, which FAISS does not use).
CANDIDATES: tuple[tuple[str, frozenset[str]], ...] = (
    (
        "SkylakeX",
        frozenset({"avx512f", "avx512bw", "avx512dq", "avx512vl", "avx512cd", "avx2", "fma", "avx"}),
    ),
    ("Haswell", frozenset({"avx2", "fma", "avx"})),
    ("Sandybridge", frozenset({"avx"})),
    ("Nehalem", frozenset({"sse4_2", "ssse3"})),
    ("Core2", frozenset({"ssse3"})),
    ("Prescott", frozenset({"pni"})),
)
REQUIREMENTS: dict[str, frozenset[str]] = {
    **{name.lower(): needs for name, needs in CANDIDATES},
    "cooperlake": CANDIDATES[0][1] | {"avx512_bf16"},
    "zen": frozenset({"avx2", "fma", "avx"}),
    "excavator": frozenset({"avx2", "fma", "avx"}),
    "steamroller": frozenset({"avx", "fma"}),
    "piledriver": frozenset({"avx", "fma"}),
    "bulldozer": frozenset({"avx"}),
}

# The verification problem: odd sizes so the kernel's edge paths run too.
_M, _N, _K = 37, 301, 512
_TOLERANCE = 1e-4  # float32 products of unit-variance data against float64: errors are ~1e-6 relative


@dataclass
class KernelReport:
    """What was found and decided; the same object answers `lfr doctor` and the metrics."""

    library: str | None = None  # FAISS's OpenBLAS, or None if FAISS does not bundle one
    detected: str | None = None  # what OpenBLAS picks by itself
    preset: str | None = None  # OPENBLAS_CORETYPE as found in the environment
    chosen: str | None = None  # what FAISS will run
    loaded: str | None = None  # what FAISS's OpenBLAS reports once loaded (the proof)
    source: str = "none"  # "detected" | "preset" | "override" | "too-late" | "none"
    best_supported: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def running(self) -> str | None:
        """The kernel FAISS runs: what the loaded library says, else what was chosen."""
        return self.loaded or self.chosen

    @property
    def is_fallback(self) -> bool:
        """True if FAISS runs a weaker kernel than this CPU supports without anyone having asked for it."""
        return self.source != "preset" and rank(self.running) < rank(self.best_supported)

    def as_dict(self) -> dict[str, object]:
        return {
            "library": self.library,
            "detected": self.detected,
            "preset": self.preset,
            "chosen": self.chosen,
            "loaded": self.loaded,
            "source": self.source,
            "best_supported": self.best_supported,
            "notes": list(self.notes),
        }


_report: KernelReport | None = None


def rank(kernel: str | None) -> int:
    return _RANK.get((kernel or "").lower(), 0)


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> frozenset[str]:
    """The instruction-set flags every core reports (the intersection: a kernel must run on all of them)."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return frozenset()
    per_core = [
        frozenset(line.split(":", 1)[1].split()) for line in text.splitlines() if line.startswith("flags")
    ]
    return frozenset.intersection(*per_core) if per_core else frozenset()


def supported_candidates(flags: frozenset[str]) -> list[str]:
    """Kernels this CPU can run, best first."""
    return [name for name, needs in CANDIDATES if needs <= flags]


def cpu_lacks(kernel: str, flags: frozenset[str]) -> frozenset[str]:
    """Instruction sets `kernel` needs that the CPU does not have (empty if fine or not known to us)."""
    return REQUIREMENTS.get(kernel.lower(), frozenset()) - flags


def faiss_openblas() -> Path | None:
    """FAISS's bundled OpenBLAS (faiss_cpu.libs/libopenblas*.so next to the faiss package), without importing
    FAISS."""
    spec = importlib.util.find_spec("faiss")
    if spec is None or spec.origin is None:
        return None
    package = Path(spec.origin).parent
    for folder in (package.parent / "faiss_cpu.libs", package):
        found = sorted(folder.glob("libopenblas*.so*"))
        if found:
            return found[0]
    return None


# Runs in a child process with only the standard library: load the library (OpenBLAS reads
# OPENBLAS_CORETYPE here), report its kernel, multiply A (M x K) by B^T (B is N x K) like FAISS does.
_PROBE = r"""
import ctypes, json, sys
lib = ctypes.CDLL(sys.argv[1])
lib.openblas_get_corename.restype = ctypes.c_char_p
m, n, k = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
data = sys.stdin.buffer.read()
a = (ctypes.c_float * (m * k)).from_buffer_copy(data[: 4 * m * k])
b = (ctypes.c_float * (n * k)).from_buffer_copy(data[4 * m * k :])
c = (ctypes.c_float * (m * n))()
lib.cblas_sgemm.restype = None
lib.cblas_sgemm(101, 111, 112, m, n, k, ctypes.c_float(1.0), a, k, b, k, ctypes.c_float(0.0), c, n)
sys.stdout.write(json.dumps({"core": lib.openblas_get_corename().decode(), "c": list(c)}))
"""


@dataclass(frozen=True)
class Probe:
    core: str | None
    correct: bool
    error: str | None = None


def probe(library: Path, coretype: str | None, timeout: float = 30.0) -> Probe:
    """Loads `library` in a child process with OPENBLAS_CORETYPE=`coretype` (unset if None) and checks its
    SGEMM against numpy."""
    rng = np.random.default_rng(12345)
    a = rng.standard_normal((_M, _K), dtype=np.float32)
    b = rng.standard_normal((_N, _K), dtype=np.float32)
    env = {key: value for key, value in os.environ.items() if key != ENV}
    env["OMP_NUM_THREADS"] = "1"
    env["OPENBLAS_NUM_THREADS"] = "1"
    if coretype is not None:
        env[ENV] = coretype
    # Its dependencies (libgfortran, libgomp) lie beside it, found through FAISS's RPATH in real use.
    env["LD_LIBRARY_PATH"] = os.pathsep.join(
        [str(library.parent), *filter(None, [os.environ.get("LD_LIBRARY_PATH")])]
    )
    try:
        done = subprocess.run(
            [sys.executable, "-c", _PROBE, str(library), str(_M), str(_N), str(_K)],
            input=a.tobytes() + b.tobytes(),
            capture_output=True,
            env=env,
            timeout=timeout,
            check=False,
        )
    except (OSError, subprocess.SubprocessError) as error:
        return Probe(None, False, f"probe failed: {error}")
    try:
        answer = json.loads(done.stdout)
    except ValueError:
        last = (done.stderr.decode(errors="replace").strip().splitlines() or ["no output"])[-1]
        return Probe(None, False, f"probe failed (exit {done.returncode}): {last}")
    product = np.asarray(answer["c"], dtype=np.float64).reshape(_M, _N)
    return Probe(str(answer["core"]), agrees(product, a, b))


def agrees(product: np.ndarray, a: np.ndarray, b: np.ndarray) -> bool:
    """True if `product` is A @ B^T to float32 accuracy (relative to the size of the terms summed)."""
    reference = a.astype(np.float64) @ b.astype(np.float64).T
    scale = np.abs(a).astype(np.float64) @ np.abs(b).astype(np.float64).T
    return bool(
        product.shape == reference.shape and np.all(np.abs(product - reference) <= _TOLERANCE * scale)
    )


def _try(library: Path, kernel: str, report: KernelReport) -> bool:
    result = probe(library, kernel)
    if result.error:
        report.notes.append(f"{kernel}: {result.error}")
        return False
    if (result.core or "").lower() != kernel.lower():
        report.notes.append(f"{kernel}: OpenBLAS does not have it (it ran {result.core})")
        return False
    if not result.correct:
        report.notes.append(f"{kernel}: SGEMM disagrees with numpy; not used")
        return False
    return True


def choose(library: Path, flags: frozenset[str], preset: str | None) -> KernelReport:
    """Decides the kernel (and sets OPENBLAS_CORETYPE accordingly); see the module docstring."""
    report = KernelReport(library=str(library), preset=preset)
    candidates = supported_candidates(flags)
    report.best_supported = candidates[0] if candidates else None
    if preset is not None:
        lacking = cpu_lacks(preset, flags)
        if lacking:
            report.notes.append(f"{ENV}={preset} needs {', '.join(sorted(lacking))}, which this CPU lacks")
        elif _try(library, preset, report):
            report.chosen, report.source = preset, "preset"
            if rank(preset) < rank(report.best_supported):
                report.notes.append(
                    f"{ENV}={preset} is respected, but {report.best_supported} would be faster"
                )
            os.environ[ENV] = preset
            return report
        os.environ.pop(ENV, None)
    detected = probe(library, None)
    report.detected = detected.core
    if detected.error:
        report.notes.append(f"detection: {detected.error}")
    detected_ok = detected.core is not None and detected.correct
    if detected_ok and rank(detected.core) >= rank(report.best_supported):
        report.chosen, report.source = detected.core, "detected"
        return report
    for kernel in candidates:
        if detected_ok and rank(kernel) <= rank(detected.core):
            break  # nothing better than what OpenBLAS picked by itself is left
        if _try(library, kernel, report):
            os.environ[ENV] = kernel
            report.chosen, report.source = kernel, "override"
            return report
    report.chosen, report.source = (detected.core, "detected") if detected_ok else (None, "none")
    if not detected_ok:
        report.notes.append("no kernel verified; FAISS's OpenBLAS is left to itself")
    return report


def ensure_blas_kernel() -> KernelReport:
    """Once per process, before `import faiss`: check and, if needed, fix FAISS's OpenBLAS kernel."""
    global _report
    if _report is not None:
        return _report
    library = faiss_openblas()
    preset = os.environ.get(ENV)
    if library is None:
        _report = KernelReport(preset=preset, notes=["FAISS bundles no OpenBLAS here; nothing to check"])
    elif "faiss" in sys.modules:
        # Too late to steer (the library is loaded); say what it runs.
        _report = KernelReport(library=str(library), preset=preset, source="too-late")
        _report.best_supported = next(iter(supported_candidates(cpu_flags())), None)
        _report.chosen = _loaded_core(library)
        _report.notes.append("FAISS was imported before the kernel check; its kernel cannot be changed now")
    else:
        _report = choose(library, cpu_flags(), preset)
    _log(_report)
    return _report


def record_loaded_kernel() -> None:
    """After `import faiss`: reads the kernel its OpenBLAS really runs; warns if it is not the choice."""
    report = _report
    if report is None or report.library is None:
        return
    report.loaded = _loaded_core(Path(report.library))
    if report.chosen is not None and (report.loaded or "").lower() != report.chosen.lower():
        report.notes.append(f"chose {report.chosen} but FAISS's OpenBLAS runs {report.loaded}")
        logger.warning(
            "FAISS BLAS kernel: chose %s but the loaded library runs %s", report.chosen, report.loaded
        )


def _loaded_core(library: Path) -> str | None:
    import ctypes

    try:
        lib = ctypes.CDLL(str(library))
        lib.openblas_get_corename.restype = ctypes.c_char_p
        return str(lib.openblas_get_corename().decode())
    except (OSError, AttributeError):
        return None


def _log(report: KernelReport) -> None:
    # A preset that works is the operator's choice: naming a faster kernel is advice, not a fault, and at
    # WARNING it would reach the terminal of every command (Python prints warnings with no logging set up).
    fault = report.source in ("too-late", "none") or (report.notes and report.source != "preset")
    level = logging.WARNING if fault else logging.INFO
    logger.log(
        level,
        "FAISS BLAS kernel: %s (%s; OpenBLAS detected %s, best this CPU supports %s)%s",
        report.chosen,
        report.source,
        report.detected,
        report.best_supported,
        "".join(f"; {note}" for note in report.notes),
    )


def kernel_report() -> KernelReport | None:
    """The decision made in this process, if FAISS has been set up."""
    return _report
