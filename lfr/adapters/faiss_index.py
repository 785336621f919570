"""Inner-product search over L2-normalised embeddings with FAISS (cosine similarity).

One factory for every use (the matcher, the evaluation, the benchmarks): `IndexSpec` names the index type
(`matching.index`: flat, sq8, ivf, hnsw or a FAISS index factory string) and its search parameters. The
vectors live only inside FAISS (no numpy copy is kept); rows map to subjects through one int32 array.
`shards` > 1 splits the rows into that many indexes searched by one thread each (FAISS releases the GIL),
with the results merged: both cores work on one batch without OpenMP, whose threads spin and collapse when
the machine is busy (PERF_NOTES.md).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from lfr.adapters.blas_kernel import ensure_blas_kernel, record_loaded_kernel
from lfr.adapters.index_spec import IndexSpec

# Before FAISS loads its OpenBLAS, which reads its kernel choice only then (see blas_kernel). Every user of
# FAISS imports it through this module.
ensure_blas_kernel()

import faiss  # noqa: E402

from lfr.domain.errors import InvalidInput  # noqa: E402
from lfr.domain.matching import Candidate, top_subjects  # noqa: E402

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


def check_index_spec(spec: IndexSpec, dimension: int = 512) -> None:
    """Raises InvalidInput now (at start) if FAISS cannot build this index type."""
    try:
        faiss.index_factory(dimension, spec.factory_string(10_000), faiss.METRIC_INNER_PRODUCT)
    except RuntimeError as exc:
        first = (str(exc).strip().splitlines() or ["rejected"])[0]
        raise InvalidInput(f"FAISS cannot build index {spec.kind!r}: {first}") from exc


def subject_codes(subject_of_row: Sequence[str]) -> tuple[list[str], np.ndarray]:
    """Distinct subjects and each row's index into them. Stores return a subject's rows together, so runs
    of equal ids are found in one vectorised pass; otherwise (or if a subject's rows are split) by sorting."""
    names = np.asarray(subject_of_row, dtype=object)
    if len(names) == 0:
        return [], np.zeros(0, dtype=np.int32)
    starts = np.ones(len(names), dtype=bool)
    starts[1:] = names[1:] != names[:-1]
    subjects = names[starts].tolist()
    if len(set(subjects)) == len(subjects):
        return subjects, (np.cumsum(starts) - 1).astype(np.int32)
    unique, codes = np.unique(names, return_inverse=True)
    return unique.tolist(), codes.astype(np.int32)


def _build_one(spec: IndexSpec, vectors: np.ndarray) -> faiss.Index:
    dimension = int(vectors.shape[1])
    index: faiss.Index
    if spec.exact:
        index = faiss.IndexFlatIP(dimension)
    else:
        index = faiss.index_factory(dimension, spec.factory_string(len(vectors)), faiss.METRIC_INNER_PRODUCT)
        if not index.is_trained:
            index.train(vectors)
        _set_search_params(index, spec)
    index.add(vectors)
    return index


def _set_search_params(index: faiss.Index, spec: IndexSpec) -> None:
    space = faiss.ParameterSpace()
    for name, value in spec.search_params().items():
        if spec.uses(name):
            space.set_index_parameter(index, name, value)


class FaissIndex:
    """One sealed watchlist's vectors, searched by best score per subject."""

    def __init__(
        self, subject_of_row: Sequence[str], vectors: np.ndarray, spec: IndexSpec | None = None
    ) -> None:
        self.spec = spec or IndexSpec()
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[0] != len(subject_of_row):
            raise ValueError("need one subject id per embedding row")
        self._dimension = int(vectors.shape[1])
        self._size = int(vectors.shape[0])
        # Subjects as codes into one list: 4 bytes a row instead of a Python reference, and vectorisable.
        self.subjects, self._codes = subject_codes(subject_of_row)
        self._max_rows_per_subject = int(np.bincount(self._codes).max()) if self._size else 1
        shards = max(1, min(self.spec.shards, self._size // 1000 or 1))
        bounds = np.linspace(0, self._size, shards + 1).astype(int)
        self._offsets = bounds[:-1]
        self._shards = [_build_one(self.spec, vectors[a:b]) for a, b in itertools.pairwise(bounds)]
        self._pool = (
            ThreadPoolExecutor(len(self._shards), "lfr-shard", initializer=configure_faiss, initargs=(1,))
            if len(self._shards) > 1
            else None
        )

    def retune(self, spec: IndexSpec) -> None:
        """Another search parameter (nprobe, efSearch) for the same built index: no rebuild."""
        if (spec.kind, spec.exact) != (self.spec.kind, self.spec.exact):
            raise ValueError(f"index built as {self.spec.kind} cannot be retuned as {spec.kind}")
        if not spec.exact:
            for shard in self._shards:
                _set_search_params(shard, spec)
        self.spec = spec

    @property
    def size(self) -> int:
        return self._size

    @property
    def dimension(self) -> int:
        return self._dimension

    def memory_bytes(self) -> int:
        """What the index holds: FAISS's vectors/codes/graph plus the row-to-subject map."""
        total = self._codes.nbytes
        for shard in self._shards:
            total += (
                int(faiss.serialize_index(shard).nbytes)
                if not isinstance(shard, faiss.IndexFlat)
                else (shard.ntotal * shard.d * 4)
            )
        return total

    def raw_search(self, queries: np.ndarray, rows: int) -> tuple[np.ndarray, np.ndarray]:
        """The `rows` nearest rows of every query over all shards: (scores, row ids), best first; -1 pads."""
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        if len(self._shards) == 1:
            scores, ids = self._shards[0].search(queries, rows)
            return scores, ids
        assert self._pool is not None
        parts = list(
            self._pool.map(lambda shard: shard.search(queries, min(rows, shard.ntotal)), self._shards)
        )
        scores = np.concatenate([s for s, _ in parts], axis=1)
        ids = np.concatenate(
            [np.where(i >= 0, i + offset, -1) for (_, i), offset in zip(parts, self._offsets, strict=True)],
            axis=1,
        )
        scores = np.where(ids >= 0, scores, -np.inf)
        order = np.argsort(-scores, axis=1, kind="stable")[:, :rows]
        return np.take_along_axis(scores, order, axis=1), np.take_along_axis(ids, order, axis=1)

    def search_codes(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The top-k distinct subjects per query as (subject codes, scores), each (queries x k), best first;
        code -1 pads a query with fewer than k subjects. `self.subjects[code]` is the subject id."""
        n = int(np.asarray(queries).shape[0])
        if self._size == 0:
            return np.full((n, k), -1, dtype=np.int32), np.full((n, k), -np.inf, dtype=np.float32)
        # Enough rows that k distinct subjects survive even if each top subject has all its rows on top.
        rows = min(self._size, k * self._max_rows_per_subject)
        scores, ids = self.raw_search(queries, rows)
        codes = np.where(ids >= 0, self._codes[np.maximum(ids, 0)], -1)
        return top_subjects(codes, scores, k)

    def search(self, queries: np.ndarray, k: int) -> list[tuple[Candidate, ...]]:
        codes, scores = self.search_codes(queries, k)
        subjects = self.subjects
        return [
            tuple(Candidate(subjects[c], s) for c, s in zip(row_codes, row_scores, strict=True) if c >= 0)
            for row_codes, row_scores in zip(codes.tolist(), scores.tolist(), strict=True)
        ]

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False)


# The name the rest of the code base knew; exact flat search is the default spec.
FaissFlatIndex = FaissIndex


def faiss_index_factory(spec: IndexSpec) -> _Factory:
    return _Factory(spec)


@dataclass(frozen=True)
class _Factory:
    spec: IndexSpec

    def __call__(self, subject_of_row: Sequence[str], vectors: np.ndarray) -> FaissIndex:
        return FaissIndex(subject_of_row, vectors, self.spec)


def faiss_flat_index(subject_of_row: Sequence[str], vectors: np.ndarray) -> FaissIndex:
    return FaissIndex(subject_of_row, vectors)
