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
        np.full(8, 3e19, np.float32),  # finite, but its squares overflow float32
        np.array([np.nan, np.inf, 0, 0, 0, 0, 0, 0]),
    ]
    queries, reasons = normalise_queries(vectors, 8)
    for vector, row, reason in zip(vectors, queries, reasons, strict=True):
        with np.errstate(over="ignore"):  # the 3e19 row, in numpy's own norm
            expected = one_by_one(vector)
        if isinstance(expected, str):
            assert reason == expected
            assert not row.any()  # nothing of a refused embedding is searched
        else:
            assert reason is None
            np.testing.assert_allclose(row, expected, atol=1e-6)
    assert queries.dtype == np.float32
    assert queries.flags.c_contiguous


def sequential_hash(model_id, dimension, enrolled) -> str:
    """content_hash as first written (one digest update per piece): sealed windows hold its digests."""
    import hashlib

    digest = hashlib.sha256()
    digest.update(f"lfr-watchlist-v1\x00{model_id}\x00{dimension}\x00".encode())
    for item in sorted(enrolled, key=lambda e: e.subject.id):
        s = item.subject
        for text in (s.id, s.reference, s.display_name, s.category, s.reason, s.image_source):
            encoded = text.encode()
            digest.update(len(encoded).to_bytes(4, "big") + encoded)
        digest.update(hashlib.sha256(s.reference_image_jpeg or b"").digest())
        rows = np.ascontiguousarray(item.embeddings, dtype="<f4")
        digest.update(rows.shape[0].to_bytes(4, "big") + rows.tobytes())
    return digest.hexdigest()


def test_the_batched_content_hash_is_the_digest_sealed_windows_hold():
    from lfr.domain.watchlist import EnrolledSubject, Subject, content_hash

    rng = np.random.default_rng(9)
    enrolled = [
        EnrolledSubject(
            Subject(
                f"s{i:05d}", "wl", f"r{i}", f"Näme {i}", "c", "why", "custody", b"\xff\xd8" * (i % 3) or None
            ),
            rng.standard_normal((1 + i % 3, 512)).astype(np.float32),
        )
        for i in range(3000)  # ~12 MB of rows: the digest is fed in several pieces
    ]
    rng.shuffle(enrolled)
    assert content_hash("m", 512, enrolled) == sequential_hash("m", 512, enrolled)
