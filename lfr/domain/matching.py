"""The matching decision: best score per subject, compared with the window's threshold."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


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


def decide(candidates: tuple[Candidate, ...], threshold: float) -> MatchDecision:
    return MatchDecision(candidates=candidates, threshold=threshold)
