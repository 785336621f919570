"""The matching decision: best score per subject, compared with the window's threshold."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from lfr.domain.embedding import MIN_NORM


@dataclass(frozen=True, slots=True)
class Candidate:
    subject_id: str
    score: float


@dataclass(frozen=True, slots=True)
class MatchDecision:
    candidates: tuple[Candidate, ...]  # best first, one per subject
    threshold: float

    @property
    def best(self) -> Candidate | None:
        return self.candidates[0] if self.candidates else None

    @property
    def is_match(self) -> bool:
        best = self.best
        return best is not None and best.score >= self.threshold


def collapse_to_subjects(
    row_ids: np.ndarray, scores: np.ndarray, subject_of_row: Sequence[str], k: int
) -> tuple[Candidate, ...]:
    """Turn one query's nearest rows (several embeddings per subject) into the top-k distinct subjects.

    `row_ids` of -1 are padding from the index. Ties keep the index's order, which is deterministic.
    """
    best: dict[str, float] = {}
    for row, score in zip(row_ids.tolist(), scores.tolist(), strict=True):
        if row < 0:
            continue
        subject = subject_of_row[row]
        if subject not in best or score > best[subject]:
            best[subject] = score
    ranked = sorted(best.items(), key=lambda item: -item[1])[:k]
    return tuple(Candidate(subject, float(score)) for subject, score in ranked)


def top_subjects(codes: np.ndarray, scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """`collapse_to_subjects` for a whole batch at once, on subject codes (ints, -1 for padding).

    `codes` and `scores` are (queries x rows), each row best first as an index returns them. Returns
    (queries x k) codes and scores of the best k distinct subjects, best first, padded with -1 / -inf. A
    subject's first row in a query is its best; ties keep the index's order.
    """
    queries, width = codes.shape
    out_codes = np.full((queries, k), -1, dtype=np.int32)
    out_scores = np.full((queries, k), -np.inf, dtype=np.float32)
    if width == 0 or queries == 0:
        return out_codes, out_scores
    # First occurrence of each code in its row: sort each row's codes stably (equal codes stay in rank
    # order), mark where a new code starts, and scatter the marks back to the original positions.
    order = np.argsort(codes, axis=1, kind="stable")
    in_order = np.take_along_axis(codes, order, axis=1)
    starts = np.ones_like(in_order, dtype=bool)
    starts[:, 1:] = in_order[:, 1:] != in_order[:, :-1]
    first = np.zeros_like(starts)
    np.put_along_axis(first, order, starts, axis=1)
    first &= codes >= 0
    rank = np.cumsum(first, axis=1) - 1
    keep = first & (rank < k)
    query, column = np.nonzero(keep)
    slot = rank[query, column]
    out_codes[query, slot] = codes[query, column]
    out_scores[query, slot] = scores[query, column]
    return out_codes, out_scores


def normalise_queries(vectors: Sequence[np.ndarray], dimension: int) -> tuple[np.ndarray, list[str | None]]:
    """Validates and L2-normalises a micro-batch of embeddings at once (`embedding.normalised` per row).

    Returns the unit rows as one float32 array (a fresh copy: the caller wipes it after the search) and,
    per input, None if usable or why not; unusable rows are left zero in the array.
    """
    queries = np.zeros((len(vectors), dimension), dtype=np.float32)
    reasons: list[str | None] = [None] * len(vectors)
    try:
        np.stack(vectors, out=queries)  # the usual batch: one copy in C, not one per row
    except ValueError:  # some row is not (dimension,): each row on its own
        for i, vector in enumerate(vectors):
            if vector.ndim != 1:
                reasons[i] = f"embedding must be one-dimensional, got shape {vector.shape}"
            elif vector.shape[0] != dimension:
                reasons[i] = f"embedding has dimension {vector.shape[0]}, expected {dimension}"
            else:
                queries[i] = vector
    with np.errstate(over="ignore", invalid="ignore"):  # the rows that overflow are handled below
        squares = np.einsum("ij,ij->i", queries, queries)
    # A NaN or an infinity makes its row's sum of squares non-finite, and so can finite values too large to
    # square in float32 (those divide to zero, as `normalised` does): only such rows are looked at again.
    for i in np.flatnonzero(~np.isfinite(squares)).tolist():
        if not np.isfinite(queries[i]).all():
            reasons[i] = reasons[i] or "embedding contains NaN or infinite values"
            squares[i] = 0
    norms = np.sqrt(squares)
    for i in np.flatnonzero(norms < MIN_NORM).tolist():
        reasons[i] = reasons[i] or "embedding has zero norm"
    unusable = np.array([r is not None for r in reasons], dtype=bool)
    if unusable.any():
        queries[unusable] = 0
        norms[unusable] = 1
    queries /= norms[:, None]
    return queries, reasons


def decide(candidates: tuple[Candidate, ...], threshold: float) -> MatchDecision:
    return MatchDecision(candidates=candidates, threshold=threshold)
