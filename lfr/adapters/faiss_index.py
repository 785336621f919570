"""Exact inner-product search over L2-normalised embeddings with FAISS (cosine similarity)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from lfr.adapters.blas_kernel import ensure_blas_kernel, record_loaded_kernel

# Before FAISS loads its OpenBLAS, which reads its kernel choice only then (see blas_kernel). Every user of
# FAISS imports it through this module.
ensure_blas_kernel()

import faiss  # noqa: E402

from lfr.domain.matching import Candidate, collapse_to_subjects  # noqa: E402

record_loaded_kernel()

# FAISS uses BLAS only for batches of >= 20 queries by default; below that it scans per query. Batches of
# 16-32 are what the micro-batcher produces, and BLAS makes them ~5x faster (see PERF_NOTES.md).
BLAS_THRESHOLD = 4


def faiss_version() -> str:
    return str(faiss.__version__)


def configure_faiss(threads: int = 1) -> None:
    """One OpenMP thread per search: we parallelise across requests, and multi-threaded single queries
    collapse when the machine is busy."""
    faiss.omp_set_num_threads(threads)
    faiss.cvar.distance_compute_blas_threshold = BLAS_THRESHOLD


class FaissFlatIndex:
    def __init__(self, subject_of_row: Sequence[str], vectors: np.ndarray) -> None:
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[0] != len(subject_of_row):
            raise ValueError("need one subject id per embedding row")
        self._dimension = int(vectors.shape[1])
        self._index = faiss.IndexFlatIP(self._dimension)
        self._index.add(vectors)
        self._subject_of_row = list(subject_of_row)
        counts: dict[str, int] = {}
        for subject in self._subject_of_row:
            counts[subject] = counts.get(subject, 0) + 1
        self._max_rows_per_subject = max(counts.values(), default=1)

    @property
    def size(self) -> int:
        return int(self._index.ntotal)

    @property
    def dimension(self) -> int:
        return self._dimension

    def search(self, queries: np.ndarray, k: int) -> list[tuple[Candidate, ...]]:
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        if self.size == 0:
            return [() for _ in range(queries.shape[0])]
        # Enough rows that k distinct subjects survive even if each top subject has all its rows on top.
        rows = min(self.size, k * self._max_rows_per_subject)
        scores, ids = self._index.search(queries, rows)
        return [collapse_to_subjects(ids[i], scores[i], self._subject_of_row, k) for i in range(len(ids))]


def faiss_flat_index(subject_of_row: Sequence[str], vectors: np.ndarray) -> FaissFlatIndex:
    return FaissFlatIndex(subject_of_row, vectors)
