"""Index types by config: every kind builds through one factory, finds what exact search finds (within its
approximation), shards merge to the exact answer, and no copy of the vectors is kept outside FAISS."""

from __future__ import annotations

import gc
import weakref

import numpy as np
import pytest

from lfr.adapters.faiss_index import FaissIndex, check_index_spec, subject_codes
from lfr.adapters.index_spec import IndexSpec
from lfr.config import load_config, matching_index_type
from lfr.domain.errors import InvalidInput

DIM = 64


def clustered(subjects: int, rows_each: int, seed: int = 5) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Subjects with several embeddings each near a centre, and probes near the centres (face-like)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((subjects, DIM)).astype(np.float32)
    vectors = np.repeat(centres, rows_each, axis=0) + 0.4 * rng.standard_normal(
        (subjects * rows_each, DIM)
    ).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    probes = centres[rng.choice(subjects, 200, replace=False)] + 0.5 * rng.standard_normal((200, DIM)).astype(
        np.float32
    )
    probes /= np.linalg.norm(probes, axis=1, keepdims=True)
    return [f"s{i:05d}" for i in range(subjects) for _ in range(rows_each)], vectors, probes


def exact_best(subject_of_row: list[str], vectors: np.ndarray, probes: np.ndarray, k: int) -> list[list[str]]:
    best: list[list[str]] = []
    for scores in probes @ vectors.T:
        per_subject: dict[str, float] = {}
        for row in np.argsort(-scores):
            per_subject.setdefault(subject_of_row[row], float(scores[row]))
            if len(per_subject) == k:
                break
        best.append(list(per_subject))
    return best


def test_flat_is_exact_and_shards_merge_to_the_same_answer():
    subject_of_row, vectors, probes = clustered(800, 3)
    truth = exact_best(subject_of_row, vectors, probes, 5)
    one = FaissIndex(subject_of_row, vectors)
    three = FaissIndex(subject_of_row, vectors, IndexSpec("flat", shards=3))
    a, b = one.search(probes, 5), three.search(probes, 5)
    assert [[c.subject_id for c in found] for found in a] == truth
    assert [[c.subject_id for c in found] for found in b] == truth
    np.testing.assert_allclose(
        [[c.score for c in f] for f in a], [[c.score for c in f] for f in b], atol=1e-6
    )
    three.close()


def assert_same_knn_with_ties(ref_scores, ref_ids, new_scores, new_ids, tolerance=1e-5):
    """As faiss's contrib/evaluation.py check_ref_knn_with_draws: scores equal; ids equal except that rows
    with equal scores may come in any order, and the last score's group may be cut at another row. Equal
    within `tolerance`: the same vector scores a few ULPs apart when another GEMM (shard) computes it."""
    np.testing.assert_allclose(ref_scores, new_scores, rtol=tolerance, atol=tolerance)
    for i in range(len(ref_ids)):
        if np.array_equal(ref_ids[i], new_ids[i]):
            continue
        for j in np.flatnonzero(ref_ids[i] != new_ids[i]):
            if abs(ref_scores[i, j] - ref_scores[i, -1]) <= tolerance:
                continue  # the cut-off group: which of its rows made the top k is arbitrary
            tied = np.abs(ref_scores[i] - ref_scores[i, j]) <= tolerance
            assert new_ids[i, j] in ref_ids[i, tied], (i, j)


@pytest.mark.parametrize("shards", [2, 3])
def test_sharded_search_gives_the_unsharded_top_k_on_a_random_problem_with_ties(shards):
    rng = np.random.default_rng(17)
    vectors = rng.standard_normal((4000, DIM)).astype(np.float32)
    vectors[3500:3700] = vectors[100:300]  # exact ties, across the shards' boundaries
    vectors[1900:2100] = vectors[300:500]
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    subject_of_row = [f"s{i % 3000:05d}" for i in range(4000)]  # some subjects with several rows
    probes = vectors[rng.choice(4000, 300)] + 0.3 * rng.standard_normal((300, DIM)).astype(np.float32)
    probes /= np.linalg.norm(probes, axis=1, keepdims=True)
    one = FaissIndex(subject_of_row, vectors)
    split = FaissIndex(subject_of_row, vectors, IndexSpec("flat", shards=shards))
    for k in (1, 5, 20):
        assert_same_knn_with_ties(*one.raw_search(probes, k), *split.raw_search(probes, k))
        one_codes, one_scores = one.search_codes(probes, k)
        split_codes, split_scores = split.search_codes(probes, k)
        assert_same_knn_with_ties(one_scores, one_codes, split_scores, split_codes)
    split.close()


@pytest.mark.parametrize(
    ("kind", "params", "least_recall"),
    [
        ("sq8", {}, 0.97),
        ("ivf", {"nprobe": 16}, 0.9),
        ("hnsw", {"efSearch": 64}, 0.9),
        ("IVF16,SQ8", {"nprobe": 8}, 0.9),
        ("HNSW16", {}, 0.9),
    ],
)
def test_approximate_kinds_find_what_exact_search_finds(kind, params, least_recall):
    subject_of_row, vectors, probes = clustered(800, 3)
    truth = [best[0] for best in exact_best(subject_of_row, vectors, probes, 1)]
    index = FaissIndex(subject_of_row, vectors, IndexSpec(kind, params, shards=2))
    found = [f[0].subject_id if f else None for f in index.search(probes, 5)]
    recall = np.mean([a == b for a, b in zip(found, truth, strict=True)])
    assert recall >= least_recall
    assert all(len({c.subject_id for c in f}) == len(f) for f in index.search(probes, 5))  # distinct subjects
    index.close()


def test_retuning_a_built_index_changes_its_search_and_nothing_else():
    subject_of_row, vectors, probes = clustered(800, 3)
    truth = [best[0] for best in exact_best(subject_of_row, vectors, probes, 1)]
    index = FaissIndex(subject_of_row, vectors, IndexSpec("IVF16,Flat", {"nprobe": 1}, shards=2))

    def recall() -> float:
        found = [f[0].subject_id if f else None for f in index.search(probes, 1)]
        return float(np.mean([a == b for a, b in zip(found, truth, strict=True)]))

    narrow = recall()
    index.retune(IndexSpec("IVF16,Flat", {"nprobe": 16}, shards=2))
    assert recall() == 1.0 > narrow  # every list probed: exact
    assert index.spec.search_params()["nprobe"] == 16
    with pytest.raises(ValueError, match="cannot be retuned"):
        index.retune(IndexSpec("hnsw"))
    index.close()


def test_the_index_keeps_no_copy_of_the_vectors():
    subject_of_row, vectors, _ = clustered(300, 2)
    watcher = weakref.ref(vectors)
    index = FaissIndex(subject_of_row, vectors)
    del vectors
    gc.collect()
    assert watcher() is None
    raw = index.size * index.dimension * 4
    assert raw <= index.memory_bytes() < 1.05 * raw
    assert FaissIndex(
        subject_of_row, np.zeros((600, DIM), np.float32) + 0.1, IndexSpec("sq8")
    ).memory_bytes() < (0.35 * raw)


def test_an_empty_watchlist_finds_nobody():
    index = FaissIndex([], np.zeros((0, DIM), np.float32), IndexSpec("flat", shards=2))
    assert index.search(np.ones((2, DIM), np.float32), 3) == [(), ()]


def test_labels_name_the_parameters_that_apply():
    assert IndexSpec().label() == "flat"
    assert IndexSpec("hnsw", {"efSearch": 256, "nprobe": 3}).label() == "hnsw,efSearch=256"
    assert IndexSpec("ivf").label() == "ivf,nprobe=32"
    assert IndexSpec("IVF1024,SQ8", {"nprobe": 64}).label() == "IVF1024,SQ8,nprobe=64"


def test_the_index_is_read_from_config_and_a_bad_one_is_refused():
    config = load_config(None, {"matching.index": "hnsw", "matching.index_params": {"efSearch": 200}})
    assert config.matching.index == "hnsw"
    assert config.matching.index_spec() == IndexSpec("hnsw", {"efSearch": 200}, 1)
    assert load_config(None).matching.index == "flat"
    with pytest.raises(InvalidInput, match="cannot build index 'NotAnIndex'"):
        check_index_spec(load_config(None, {"matching.index": "NotAnIndex"}).matching.index_spec())
    with pytest.raises(InvalidInput, match=r"matching\.index"):
        load_config(None, {"matching.index": "flat; rm -rf /"})
    with pytest.raises(InvalidInput, match="unknown index parameters"):
        load_config(None, {"matching.index_params": {"efConstruction": 3}}).matching.index_spec()


@pytest.mark.parametrize(
    "rows", [["a", "a", "b", "c", "c"], ["b", "a", "b", "c"], ["x"], ["a", "b", "a", "a", "c", "b"]]
)
def test_rows_map_to_their_subjects_whether_grouped_or_not(rows):
    subjects, codes = subject_codes(rows)
    assert [subjects[c] for c in codes] == rows
    assert len(subjects) == len(set(rows))


def test_the_equity_gate_reads_the_configured_index_with_its_parameters():
    assert matching_index_type(load_config(None)) == "flat"
    hnsw = load_config(None, {"matching.index": "hnsw", "matching.index_params": {"efSearch": 64}})
    assert matching_index_type(hnsw) == "hnsw,efSearch=64"
