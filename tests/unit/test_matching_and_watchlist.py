from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from lfr.domain.embedding import normalised, normalised_rows, require_model, wipe
from lfr.domain.errors import InvalidEmbedding, ModelMismatch, WatchlistStateError
from lfr.domain.matching import Candidate, collapse_to_subjects, decide
from lfr.domain.watchlist import EnrolledSubject, Subject, Watchlist, WatchlistState, content_hash

T0 = datetime(2026, 11, 21, 9, 0, tzinfo=UTC)


def test_best_score_per_subject_and_top_k_distinct_subjects():
    rows = np.array([3, 0, 1, 2, -1])
    scores = np.array([0.9, 0.8, 0.7, 0.95, 0.0], dtype=np.float32)
    subject_of_row = ["a", "b", "a", "a"]
    got = collapse_to_subjects(rows, scores, subject_of_row, k=5)
    assert [c.subject_id for c in got] == ["a", "b"]
    np.testing.assert_allclose([c.score for c in got], [0.95, 0.7], rtol=1e-6)
    assert len(collapse_to_subjects(rows, scores, subject_of_row, k=1)) == 1


def test_decision_is_at_or_above_threshold():
    assert decide((Candidate("a", 0.6),), 0.6).is_match
    assert not decide((Candidate("a", 0.5999),), 0.6).is_match
    assert not decide((), 0.0).is_match


@pytest.mark.parametrize(
    ("vector", "message"),
    [
        (np.ones(7), "dimension 7"),
        (np.array([1.0, np.nan, 0, 0, 0, 0, 0, 0]), "NaN"),
        (np.array([np.inf, 0, 0, 0, 0, 0, 0, 0]), "infinite"),
        (np.zeros(8), "zero norm"),
        (np.ones((2, 8)), "one-dimensional"),
    ],
)
def test_invalid_embeddings_are_refused_with_the_reason(vector, message):
    with pytest.raises(InvalidEmbedding, match=message):
        normalised(vector, 8)


def test_normalised_is_unit_length_float32():
    out = normalised(np.arange(1, 9, dtype=np.float64), 8)
    assert out.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(out), 1.0, rtol=1e-6)
    assert normalised_rows(np.ones((3, 8)), 8).shape == (3, 8)
    with pytest.raises(InvalidEmbedding):
        normalised_rows(np.ones((0, 8)), 8)


def test_model_mismatch_names_both_models():
    with pytest.raises(ModelMismatch, match=r"'b'.*'a'"):
        require_model("b", "a")


def test_wipe_overwrites_in_place():
    vector, crop = np.ones(4, dtype=np.float32), bytearray(b"secret")
    wipe(vector)
    wipe(crop)
    assert not vector.any()
    assert crop == bytearray(6)


def enrolled(subject_id: str = "s1", image: bytes = b"img", seed: int = 0, **changes: str):
    fields = {
        "reference": "R1",
        "display_name": "A",
        "category": "wanted",
        "reason": "warrant",
        "image_source": "custody",
    } | changes
    rows = normalised_rows(np.random.default_rng(seed).normal(size=(2, 8)), 8)
    return EnrolledSubject(Subject(subject_id, "wl", reference_image_jpeg=image, **fields), rows)


def test_content_hash_is_order_independent_and_sensitive_to_every_part():
    a, b = enrolled("s1"), enrolled("s2", seed=1)
    base = content_hash("m", 8, [a, b])
    assert base == content_hash("m", 8, [b, a])
    variants = [
        content_hash("m2", 8, [a, b]),
        content_hash("m", 8, [a]),
        content_hash("m", 8, [enrolled("s1", image=b"other"), b]),
        content_hash("m", 8, [enrolled("s1", reason="other"), b]),
        content_hash("m", 8, [enrolled("s1", seed=5), b]),
    ]
    assert base not in variants
    assert len(set(variants)) == len(variants)


def test_watchlist_states():
    wl = Watchlist("wl", "n", "m", 8, "admin", T0)
    wl.require_editable()
    with pytest.raises(WatchlistStateError):
        wl.require_sealed()
    sealed = wl.seal("h", T0)
    with pytest.raises(WatchlistStateError):
        sealed.require_editable()
    with pytest.raises(WatchlistStateError):
        sealed.seal("h", T0)
    destroyed = sealed.destroy(T0)
    assert destroyed.state is WatchlistState.DESTROYED
    with pytest.raises(WatchlistStateError):
        destroyed.require_sealed()
    with pytest.raises(WatchlistStateError):
        destroyed.destroy(T0)


def test_mean_templates_agree_across_the_blocks_they_are_computed_in(monkeypatch) -> None:
    """Subjects are averaged a block at a time (bounded float64 memory at 1M): a subject's rows scattered
    over the list, and blocks boundaries between subjects, give the same means as one subject at a time."""
    from lfr.domain import watchlist

    rng = np.random.default_rng(3)
    names = [f"s{i}" for i in rng.integers(0, 7, 40)]
    vectors = rng.normal(size=(40, 4)).astype(np.float32)
    monkeypatch.setattr(watchlist, "_MEAN_BLOCK", 3)
    subjects, fused = watchlist.mean_templates(names, vectors)
    assert subjects == list(dict.fromkeys(names))
    for subject, mean in zip(subjects, fused, strict=True):
        expected = vectors[[i for i, n in enumerate(names) if n == subject]].mean(axis=0)
        np.testing.assert_allclose(mean, expected / np.linalg.norm(expected), atol=1e-6)


def test_a_subject_is_searched_by_the_mean_of_its_templates() -> None:
    from lfr.domain.watchlist import mean_templates

    a1, a2 = np.eye(4, dtype=np.float32)[:2]
    b = np.eye(4, dtype=np.float32)[2]
    subjects, fused = mean_templates(["a", "b", "a"], np.stack([a1, b, a2]))
    assert subjects == ["a", "b"]
    np.testing.assert_allclose(fused, [(a1 + a2) / np.sqrt(2), b], atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(fused, axis=1), 1, atol=1e-6)
    assert mean_templates([], np.zeros((0, 4), np.float32))[1].shape == (0, 4)
