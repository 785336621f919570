"""What an approximate search index loses against exact search, on the evaluation's own searches.

recall@1: the share of searches whose best subject is the one exact search finds. Alerts kept at a
threshold: of the searches where exact search would alert (best score >= threshold), the share where the
index alerts on the same subject. Both over every mated and non-mated search of one watchlist.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from evaluation.protocol import WatchlistRun


@dataclass(frozen=True, slots=True)
class IndexAgreement:
    watchlist_size: int
    index: str
    searches: int
    recall_at_1: float
    threshold: float | None
    exact_alerts: int
    alerts_kept: float | None  # None when exact search raises no alert at this threshold


def best_of(run: WatchlistRun) -> tuple[np.ndarray, np.ndarray]:
    """The index's best subject and score per search, mated then non-mated (the order of exact_best)."""
    candidates = [*run.mated.candidates, *run.nonmated.candidates]
    subjects = np.array([c[0].subject_id if c else None for c in candidates], dtype=object)
    scores = np.array([c[0].score if c else -np.inf for c in candidates], dtype=np.float64)
    return subjects, scores


def agreement(run: WatchlistRun, threshold: float | None) -> IndexAgreement | None:
    """None when the run searched exactly (nothing to compare)."""
    if run.exact_best is None:
        return None
    exact_subjects, exact_scores = run.exact_best
    subjects, scores = best_of(run)
    same = subjects == exact_subjects
    alerts_kept, exact_alerts = None, 0
    if threshold is not None:
        would = exact_scores >= threshold
        exact_alerts = int(would.sum())
        if exact_alerts:
            alerts_kept = float((would & same & (scores >= threshold)).sum() / exact_alerts)
    return IndexAgreement(
        run.size,
        run.index,
        len(same),
        float(same.mean()) if len(same) else 1.0,
        threshold,
        exact_alerts,
        alerts_kept,
    )


def write_agreements(agreements: list[IndexAgreement], folder: Path) -> Path:
    path = folder / "index_agreement.json"
    path.write_text(json.dumps([asdict(a) for a in agreements], indent=2) + "\n")
    return path
