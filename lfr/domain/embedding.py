"""Embedding validation and the rule that embeddings from different models never mix."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from lfr.domain.errors import InvalidEmbedding, ModelMismatch

FloatArray = npt.NDArray[np.float32]

# Below this L2 norm a vector carries no usable direction; normalising it would amplify noise.
MIN_NORM = 1e-6


def normalised(vector: npt.ArrayLike, dimension: int) -> FloatArray:
    """Return `vector` as a unit-length float32 row, or raise InvalidEmbedding saying what is wrong."""
    array = np.asarray(vector, dtype=np.float32)
    if array.ndim != 1:
        raise InvalidEmbedding(f"embedding must be one-dimensional, got shape {array.shape}")
    if array.shape[0] != dimension:
        raise InvalidEmbedding(f"embedding has dimension {array.shape[0]}, expected {dimension}")
    if not np.isfinite(array).all():
        raise InvalidEmbedding("embedding contains NaN or infinite values")
    norm = float(np.linalg.norm(array))
    if norm < MIN_NORM:
        raise InvalidEmbedding("embedding has zero norm")
    return (array / norm).astype(np.float32, copy=False)


def normalised_rows(vectors: npt.ArrayLike, dimension: int) -> FloatArray:
    """Validate and L2-normalise each row of a 2-D array (enrolment of several images at once)."""
    array = np.asarray(vectors, dtype=np.float32)
    if array.ndim != 2 or array.shape[0] == 0:
        raise InvalidEmbedding(f"expected a non-empty (n, {dimension}) array, got shape {array.shape}")
    return np.stack([normalised(row, dimension) for row in array])


def require_model(model_id: str, expected: str) -> None:
    if model_id != expected:
        raise ModelMismatch(f"embedding made by model {model_id!r}, this watchlist needs {expected!r}")


def wipe(buffer: np.ndarray | bytearray | memoryview | None) -> None:
    """Overwrite a biometric buffer in place so no copy of a passer-by's data outlives the decision."""
    if buffer is None:
        return
    if isinstance(buffer, np.ndarray):
        if buffer.flags.writeable:
            buffer.fill(0)
        return
    if isinstance(buffer, memoryview):
        if not buffer.readonly:
            buffer.cast("B")[:] = b"\x00" * buffer.nbytes
        return
    buffer[:] = b"\x00" * len(buffer)
