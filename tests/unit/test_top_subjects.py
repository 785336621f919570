"""The batch collapse from nearest rows to best distinct subjects agrees with the one-query reference."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from lfr.domain.embedding import normalised
from lfr.domain.errors import InvalidEmbedding
from lfr.domain.matching import collapse_to_subjects, normalise_queries, top_subjects


@st.composite
def searches(draw):
    queries = draw(st.integers(1, 6))
    width = draw(st.integers(1, 12))
    subjects = draw(st.integers(1, 5))
    codes = np.array(
        draw(st.lists(st.integers(-1, subjects - 1), min_size=queries * width, max_size=queries * width))
    ).reshape(queries, width)
    raw = draw(
        st.lists(
            st.sampled_from([0.1, 0.3, 0.5, 0.7, 0.9]), min_size=queries * width, max_size=queries * width
        )
    )
    scores = -np.sort(
        -np.array(raw, dtype=np.float32).reshape(queries, width), axis=1
    )  # index order: best first
    return codes, scores, draw(st.integers(1, 6))


@settings(max_examples=300, deadline=None)
@given(searches())
def test_batch_collapse_equals_the_per_query_collapse(search):
    codes, scores, k = search
    names = [f"s{i}" for i in range(6)]
    got_codes, got_scores = top_subjects(codes, scores, k)
    for q in range(codes.shape[0]):
        expected = collapse_to_subjects(codes[q], scores[q], names, k)
        kept = [(names[c], s) for c, s in zip(got_codes[q], got_scores[q], strict=True) if c >= 0]
        assert [(c.subject_id, c.score) for c in expected] == [(n, float(s)) for n, s in kept]
        assert (got_codes[q][len(kept) :] == -1).all()


def test_a_subject_counts_once_at_its_best_row_and_padding_is_skipped():
    codes = np.array([[2, -1, 2, 0, 1]])
    scores = np.array([[0.9, 0.8, 0.7, 0.6, 0.5]], dtype=np.float32)
    got_codes, got_scores = top_subjects(codes, scores, 2)
    assert got_codes.tolist() == [[2, 0]]
    np.testing.assert_allclose(got_scores, [[0.9, 0.6]])


def one_by_one(vector: np.ndarray) -> np.ndarray | str:
    try:
        return normalised(vector, 8)
    except InvalidEmbedding as exc:
        return str(exc)


def test_batch_normalisation_equals_the_per_embedding_rule():
    rng = np.random.default_rng(4)
    good = rng.standard_normal((3, 8)).astype(np.float32) * 5
    vectors = [
        good[0],
        np.ones(7, np.float32),
        np.array([1.0, np.nan, 0, 0, 0, 0, 0, 0]),
        good[1],
        np.array([np.inf, 0, 0, 0, 0, 0, 0, 0]),
        np.zeros(8),
        np.ones((2, 8)),
        good[2].astype(np.float64),
    ]
    queries, reasons = normalise_queries(vectors, 8)
    for vector, row, reason in zip(vectors, queries, reasons, strict=True):
        expected = one_by_one(vector)
        if isinstance(expected, str):
            assert reason == expected
            assert not row.any()  # nothing of a refused embedding is searched
        else:
            assert reason is None
            np.testing.assert_allclose(row, expected, atol=1e-6)
    assert queries.dtype == np.float32
    assert queries.flags.c_contiguous
