"""Preparing a model pack for this CPU: its recogniser rewritten as float (fp32) or static int8 (QDQ), timed
on this host, checked against the original on real faces, and written as a new pack under a new model id.

A prepared recogniser computes (nearly) the same embeddings, but not bit-identical ones: its model id is new,
so a watchlist enrolled with the original refuses its embeddings and must be re-enrolled with the new pack.
The harness (`lfr eval run`, then `lfr eval compare`) is what proves it equivalent at the operating point.
"""

from __future__ import annotations

import hashlib
import json
import logging
import platform
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path

import numpy as np

from lfr import __version__
from lfr.adapters.embedder import (
    InsightFaceEmbedder,
    ModelPackError,
    ModelSettings,
    locate_pack,
    model_id_for,
)
from lfr.adapters.model_graph import (
    GraphRewriteError,
    dequantised,
    load_model,
    named_for_insightface,
    statically_quantised,
)

logger = logging.getLogger(__name__)

MANIFEST = "lfr-prepared.json"  # not insightface's own manifest.json, which it would try to read
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp"}
# One face in this many is held out of calibration and used to check agreement with the original.
HOLD_OUT_EVERY = 4


class PackFormat(StrEnum):
    AUTO = "auto"
    FP32 = "fp32"
    QDQ = "qdq"


METHODS = {
    PackFormat.FP32: "fp32: the recogniser's int8 weights dequantised into plain float Conv/MatMul layers "
    "(the same weights; no run-time activation re-quantising)",
    PackFormat.QDQ: "qdq: static int8 (onnxruntime quantize_static, QDQ format, per-channel int8 weights, "
    "uint8 activations with MinMax ranges from the calibration faces); depthwise convolutions and the "
    "first convolution stay float",
}


@dataclass(frozen=True, slots=True)
class Candidate:
    format: PackFormat
    cpu_ms_per_face: float
    median_cosine: float
    min_cosine: float
    agrees: bool


@dataclass(frozen=True, slots=True)
class PreparedPack:
    folder: Path
    model_id: str
    source_model_id: str
    format: PackFormat
    source_cpu_ms_per_face: float
    candidates: list[Candidate] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class PrepareRequest:
    source: ModelSettings
    out_root: Path
    name: str | None
    format: PackFormat
    calibration: Path
    calibration_limit: int = 300
    timing_runs: int = 200
    min_cosine: float = 0.98


def calibration_images(folder: Path, limit: int) -> list[Path]:
    """Up to `limit` images spread evenly over the folder's sorted listing (LFW sorts by name: the first
    300 would be a handful of people whose names start with A)."""
    if not folder.is_dir():
        raise ModelPackError(f"calibration folder {folder} does not exist")
    images = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not images:
        raise ModelPackError(
            f"calibration folder {folder} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})"
        )
    if len(images) <= limit:
        return images
    picks = np.linspace(0, len(images) - 1, limit).round().astype(int)
    return [images[i] for i in sorted(set(picks.tolist()))]


def calibration_digest(folder: Path, images: Sequence[Path]) -> str:
    """Names and contents of the calibration images, as one SHA-256: the set can be recognised, not read."""
    digest = hashlib.sha256()
    for image in images:
        digest.update(image.relative_to(folder).as_posix().encode() + b"\x00")
        digest.update(hashlib.sha256(image.read_bytes()).digest())
    return digest.hexdigest()


def aligned_faces(embedder: InsightFaceEmbedder, images: Sequence[Path]) -> list[np.ndarray]:
    """Each image's largest face, aligned the way the camera node aligns it before embedding."""
    import cv2

    faces = []
    for image in images:
        pixels = cv2.imread(str(image))
        if pixels is None:
            continue
        found = embedder.detect(pixels)
        if found:
            largest = max(found, key=lambda f: f.width * f.height)
            faces.append(embedder.align(pixels, largest))
    return faces


def prepare(request: PrepareRequest, say: Callable[[str], None] = logger.info) -> PreparedPack:
    folder = locate_pack(request.source)
    for model_file in sorted(folder.glob("*.onnx")) if folder is not None else []:
        load_model(model_file)  # a corrupt file named as such, not as a loader's stack trace
    source = InsightFaceEmbedder(request.source.model_copy(update={"intra_op_threads": 1}))
    source_file = source.recogniser_file
    source_folder = source_file.parent
    formats = [PackFormat.FP32, PackFormat.QDQ] if request.format is PackFormat.AUTO else [request.format]
    models = request.out_root.expanduser() / "models"
    for possible in [request.name] if request.name else [f"{source_folder.name}-{f}" for f in formats]:
        _require_free(models / possible)

    original = load_model(source_file)
    images = calibration_images(request.calibration, request.calibration_limit)
    faces = aligned_faces(source, images)
    if not faces:
        raise ModelPackError(
            f"no face found in the {len(images)} calibration images under {request.calibration}"
        )
    inputs = [source.recogniser_input([face]) for face in faces]
    held_out = inputs[::HOLD_OUT_EVERY]
    calibration = [x for i, x in enumerate(inputs) if i % HOLD_OUT_EVERY] or inputs
    say(f"calibration: {len(faces)} faces from {len(images)} images; {len(held_out)} held out for agreement")

    source_bytes = source_file.read_bytes()
    reference = _embeddings(source_bytes, held_out)
    source_ms = cpu_ms_per_face(source_bytes, inputs, request.timing_runs)
    say(f"original {source_file.name}: {source_ms:.1f} CPU-ms per face (1 thread)")
    floating = dequantised(original)
    built: dict[PackFormat, bytes] = {}
    candidates = []
    for chosen in formats:
        model = floating if chosen is PackFormat.FP32 else statically_quantised(floating, calibration)
        data = (named_for_insightface(model) if chosen is PackFormat.FP32 else model).SerializeToString()
        cosines = _cosines(reference, _embeddings(data, held_out))
        candidate = Candidate(
            chosen,
            cpu_ms_per_face(data, inputs, request.timing_runs),
            float(np.median(cosines)),
            float(cosines.min()),
            bool(np.median(cosines) >= request.min_cosine),
        )
        say(
            f"{chosen}: {candidate.cpu_ms_per_face:.1f} CPU-ms per face, cosine to the original median "
            f"{candidate.median_cosine:.4f} (min {candidate.min_cosine:.4f})"
            + ("" if candidate.agrees else f": below {request.min_cosine}, rejected")
        )
        built[chosen] = data
        candidates.append(candidate)
    agreeing = [c for c in candidates if c.agrees]
    if not agreeing:
        raise ModelPackError(
            f"no prepared recogniser agrees with the original (median cosine >= {request.min_cosine}); "
            "nothing written"
        )
    best = min(agreeing, key=lambda c: c.cpu_ms_per_face)
    name = request.name or f"{source_folder.name}-{best.format}"
    target = models / name
    recogniser_name = f"{source_file.stem}-{best.format}.onnx"
    manifest = {
        "lfr_prepared_pack": 1,
        "source_pack": source_folder.name,
        "source_recogniser": source_file.name,
        "source_sha256": hashlib.sha256(source_bytes).hexdigest(),
        "source_model_id": source.model_id,
        "recogniser": recogniser_name,
        "recogniser_sha256": hashlib.sha256(built[best.format]).hexdigest(),
        "format": str(best.format),
        "method": METHODS[best.format],
        "calibration": {
            "images": len(images),
            "faces": len(faces),
            "held_out_faces": len(held_out),
            "digest_sha256": calibration_digest(request.calibration, images),
        },
        "timing": {
            "cpu_ms_per_face_original": round(source_ms, 2),
            "runs": request.timing_runs,
            "intra_op_threads": 1,
            "host": host_description(),
        },
        "candidates": [{**asdict(c), "format": str(c.format)} for c in candidates],
        "created_by": f"lfr {__version__}",
        "onnxruntime": _onnxruntime_version(),
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    _write_pack(source_folder, source_file, target, recogniser_name, built[best.format], manifest)
    prepared = InsightFaceEmbedder(ModelSettings(root=str(request.out_root.expanduser()), pack=name))
    if prepared.input_normalisation != source.input_normalisation:
        shutil.rmtree(target)
        raise GraphRewriteError("insightface reads the prepared recogniser's input normalisation differently")
    return PreparedPack(target, prepared.model_id, source.model_id, best.format, source_ms, candidates)


def prepared_description(settings: ModelSettings) -> str | None:
    """What a prepared pack was made from and how (its manifest), or None for any other pack."""
    folder = locate_pack(settings)
    manifest = folder / MANIFEST if folder is not None else None
    if manifest is None or not manifest.is_file():
        return None
    made = json.loads(manifest.read_text())
    source = f"{made['source_pack']} ({made['source_model_id']})"
    return f"{source} prepared by {made['created_by']}: {made['method']}"


def _require_free(target: Path) -> None:
    if target.exists():
        raise ModelPackError(f"{target} already exists: choose another --name or remove it")


def _write_pack(
    source_folder: Path,
    source_file: Path,
    target: Path,
    recogniser: str,
    data: bytes,
    manifest: dict[str, object],
) -> None:
    """The new pack appears whole or not at all: built beside its final place, then renamed."""
    target.parent.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        for other in sorted(source_folder.glob("*.onnx")):
            if other != source_file:
                shutil.copyfile(other, building / other.name)
        (building / recogniser).write_bytes(data)
        manifest["model_id"] = model_id_for(building / recogniser)
        (building / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        building.chmod(0o755)  # mkdtemp's 0700 would hide the pack from the camera node's service user
        _require_free(target)
        building.rename(target)
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise


def _session(model: bytes) -> object:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    return onnxruntime.InferenceSession(model, options, providers=["CPUExecutionProvider"])


def _embeddings(model: bytes, inputs: Sequence[np.ndarray]) -> np.ndarray:
    session = _session(model)
    name = session.get_inputs()[0].name  # type: ignore[attr-defined]
    rows = [session.run(None, {name: x})[0] for x in inputs]  # type: ignore[attr-defined]
    return np.concatenate(rows).astype(np.float32)


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    result: np.ndarray = (a * b).sum(axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    return result


def cpu_ms_per_face(model: bytes, inputs: Sequence[np.ndarray], runs: int) -> float:
    """CPU milliseconds per one-face run on one thread, by process time: on a shared host, wall time
    would measure the neighbours as much as the model."""
    session = _session(model)
    name = session.get_inputs()[0].name  # type: ignore[attr-defined]
    for x in inputs[:5]:
        session.run(None, {name: x})  # type: ignore[attr-defined]
    start = time.process_time()
    for i in range(runs):
        session.run(None, {name: inputs[i % len(inputs)]})  # type: ignore[attr-defined]
    return (time.process_time() - start) / runs * 1000


def host_description() -> dict[str, object]:
    flags: list[str] = []
    model = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and model in ("", platform.machine()):
                model = line.partition(":")[2].strip()
            if line.startswith("flags"):
                flags = line.partition(":")[2].split()
                break
    except OSError:
        pass
    vector = sorted(f for f in flags if f.startswith(("avx512", "avx_vnni", "amx")) or f == "avx2")
    return {"cpu": model, "machine": platform.machine(), "vector_flags": vector}


def _onnxruntime_version() -> str:
    import onnxruntime

    return str(onnxruntime.__version__)
