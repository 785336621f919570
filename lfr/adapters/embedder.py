"""The one face embedder lfr uses everywhere (camera node, enrolment, evaluation): insightface detection
plus recognition, with a model id derived from the recogniser's bytes so embeddings of different models
can never be mixed."""

from __future__ import annotations

import hashlib
import logging
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from lfr.domain.errors import LfrError

logger = logging.getLogger(__name__)

DEFAULT_PACK = "buffalo_l"
INSIGHTFACE_HOME = "~/.insightface"


class ModelPackError(LfrError):
    """The configured model pack is missing, incomplete or unreadable."""


class ModelSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    root: str | None = Field(
        default=None,
        description="folder holding models/<pack>/ (insightface's root); env LFR_MODEL_ROOT; "
        "unset: insightface's own ~/.insightface with download",
    )
    pack: str | None = Field(default=None, description="model pack name; env LFR_MODEL_PACK")
    det_size: int = Field(default=640, ge=128, le=1920, description="detector input side in px")
    det_threshold: float = Field(default=0.5, gt=0, le=1, description="minimum detector score")
    providers: list[str] | None = Field(
        default=None,
        description="onnxruntime execution providers in order of preference; "
        "unset: CUDA when this onnxruntime build offers it, else CPU",
    )
    intra_op_threads: int = Field(default=0, ge=0, le=64, description="onnxruntime threads; 0 = default")

    def resolved_root(self) -> str | None:
        return self.root or os.environ.get("LFR_MODEL_ROOT") or None

    def resolved_pack(self) -> str:
        return self.pack or os.environ.get("LFR_MODEL_PACK") or DEFAULT_PACK


@dataclass(frozen=True, slots=True)
class DetectedFace:
    bbox: np.ndarray  # (4,) x1, y1, x2, y2 in image pixels
    keypoints: np.ndarray  # (5, 2): left eye, right eye, nose, left mouth corner, right mouth corner
    score: float

    @property
    def width(self) -> float:
        return float(self.bbox[2] - self.bbox[0])

    @property
    def height(self) -> float:
        return float(self.bbox[3] - self.bbox[1])

    @property
    def interocular(self) -> float:
        return float(np.linalg.norm(self.keypoints[1] - self.keypoints[0]))


class FaceEmbedder(Protocol):
    """What the camera node and enrolment need; InsightFaceEmbedder is the one real implementation."""

    model_id: str
    dimension: int

    def detect(self, image_bgr: np.ndarray, max_faces: int = 0) -> list[DetectedFace]: ...
    def align(self, image_bgr: np.ndarray, face: DetectedFace) -> np.ndarray: ...
    def embed_aligned(self, aligned_faces: Sequence[np.ndarray]) -> np.ndarray: ...


def model_id_for(recogniser_file: Path) -> str:
    digest = hashlib.sha256(recogniser_file.read_bytes()).hexdigest()
    return f"{recogniser_file.stem}@sha256:{digest[:32]}"


def locate_pack(settings: ModelSettings) -> Path | None:
    """The pack folder to load, or None to let insightface find or download it in its default home."""
    root = settings.resolved_root()
    pack = settings.resolved_pack()
    if root is None:
        return None
    folder = Path(root).expanduser() / "models" / pack
    if not folder.is_dir():
        raise ModelPackError(
            f"model pack {pack!r} not found: looked for the folder {folder} "
            "(set LFR_MODEL_ROOT to the folder holding models/<pack>/, LFR_MODEL_PACK to the pack)"
        )
    if not list(folder.glob("*.onnx")):
        raise ModelPackError(f"model pack folder {folder} holds no .onnx files")
    return folder


def default_providers(available: Sequence[str]) -> list[str]:
    """CUDA first when the installed onnxruntime has it (onnxruntime-gpu); CPU always as the fallback."""
    return [p for p in ("CUDAExecutionProvider",) if p in available] + ["CPUExecutionProvider"]


class InsightFaceEmbedder:
    def __init__(self, settings: ModelSettings) -> None:
        import onnxruntime
        from insightface.app import FaceAnalysis

        folder = locate_pack(settings)
        options = onnxruntime.SessionOptions()
        if settings.intra_op_threads:
            options.intra_op_num_threads = settings.intra_op_threads
        try:
            self._app = FaceAnalysis(
                name=str(folder) if folder is not None else settings.resolved_pack(),
                root=INSIGHTFACE_HOME,
                allowed_modules=["detection", "recognition"],
                providers=settings.providers or default_providers(onnxruntime.get_available_providers()),
                sess_options=options,
            )
        except (AssertionError, OSError, RuntimeError, ValueError) as exc:
            where = folder or f"{INSIGHTFACE_HOME}/models/{settings.resolved_pack()}"
            raise ModelPackError(f"cannot load model pack from {where}: {exc or type(exc).__name__}") from exc
        for task, wanted in (
            ("detection", "a face detector (e.g. det_*.onnx)"),
            ("recognition", "a recogniser (e.g. w600k_*.onnx)"),
        ):
            if task not in self._app.models:
                raise ModelPackError(f"model pack at {self._app.model_dir} lacks {wanted}")
        self._app.prepare(
            ctx_id=-1, det_size=(settings.det_size, settings.det_size), det_thresh=settings.det_threshold
        )
        # insightface's alignment calls a scikit-image API deprecated in 0.26; the warning is not ours to fix
        # and would repeat for every face in camera and evaluation logs.
        warnings.filterwarnings("ignore", category=FutureWarning, module="insightface.utils.face_align")
        self._detector = self._app.models["detection"]
        self._recogniser = self._app.models["recognition"]
        self.recogniser_file = Path(self._recogniser.model_file)
        self.model_id = model_id_for(self.recogniser_file)
        self.dimension = int(self._recogniser.output_shape[1])
        logger.info(
            "loaded model pack %s: recogniser %s, %d-d", self._app.model_dir, self.model_id, self.dimension
        )

    def detect(self, image_bgr: np.ndarray, max_faces: int = 0) -> list[DetectedFace]:
        boxes, keypoints = self._detector.detect(image_bgr, max_num=max_faces, metric="default")
        if boxes.shape[0] == 0:
            return []
        return [
            DetectedFace(boxes[i, :4].copy(), keypoints[i].copy(), float(boxes[i, 4]))
            for i in range(boxes.shape[0])
        ]

    def align(self, image_bgr: np.ndarray, face: DetectedFace) -> np.ndarray:
        from insightface.utils import face_align

        size = int(self._recogniser.input_size[0])
        aligned: np.ndarray = face_align.norm_crop(image_bgr, landmark=face.keypoints, image_size=size)
        return aligned

    def recogniser_input(self, aligned_faces: Sequence[np.ndarray]) -> np.ndarray:
        """The tensor the recogniser is fed for these faces, normalised exactly as `embed_aligned` does
        (what calibrating a quantised recogniser needs)."""
        import cv2

        recogniser = self._recogniser
        mean = float(recogniser.input_mean)
        blob: np.ndarray = cv2.dnn.blobFromImages(
            list(aligned_faces),
            1.0 / recogniser.input_std,
            recogniser.input_size,
            (mean, mean, mean),
            swapRB=True,
        )
        return np.ascontiguousarray(blob, dtype=np.float32)

    @property
    def input_normalisation(self) -> tuple[float, float]:
        """(mean, std) insightface chose for this recogniser from its graph."""
        return float(self._recogniser.input_mean), float(self._recogniser.input_std)

    def embed_aligned(self, aligned_faces: Sequence[np.ndarray]) -> np.ndarray:
        """One batched recogniser run over several aligned faces; rows are L2-normalised float32."""
        if not aligned_faces:
            return np.zeros((0, self.dimension), dtype=np.float32)
        features: np.ndarray = np.asarray(self._recogniser.get_feat(list(aligned_faces)), dtype=np.float32)
        norms = np.linalg.norm(features, axis=1, keepdims=True)
        unit: np.ndarray = features / np.maximum(norms, 1e-12)
        return unit
