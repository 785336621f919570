"""Watchlist-size scaling over several seeded draws: how FPIR, TPIR and the recommendation move with N and
with WHO is listed. One draw's recommendation can rest on a handful of false alerts from one listed face;
the spread over draws says how much of a figure is the draw.

Sizes beyond the real identities are padded with synthetic filler (labelled in every row): Gaussian vectors
fitted to the enrolled embeddings, nobody's face, so their effect on FPIR is not that of real people.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from evaluation.analysis import StatisticsSettings, analyse
from evaluation.audit import median_mated_score
from evaluation.protocol import OpenSetProtocol, ProtocolError, WatchlistRun


@dataclass(frozen=True, slots=True)
class Draw:
    seed: int
    size: int
    mated_identities: int
    real_filler: int
    synthetic_filler: int
    mated_searches: int
    nonmated_searches: int
    threshold: float | None  # where TPIR/FPIR are read: the report's operating threshold
    tpir: float
    fpir: float
    false_positives: int
    fpir_upper: float
    recommended_threshold: float | None
    differential_free_threshold: float | None
    # non-mated searches scoring at or above this draw's median mated score: suspected mates that no one
    # has reviewed when this draw lists people the main draw did not
    nonmated_above_median_mated: int = 0


@dataclass(frozen=True, slots=True)
class SizeSummary:
    size: int
    draws: tuple[Draw, ...]
    error: str = ""  # why this size could not be drawn (e.g. no synthetic filler allowed)

    def spread(self, name: str) -> dict[str, float | None]:
        values = np.array(
            [getattr(d, name) for d in self.draws if getattr(d, name) is not None], dtype=np.float64
        )
        values = values[np.isfinite(values)]
        if values.size == 0:
            return {"mean": None, "sd": None, "min": None, "max": None, "n": 0}
        return {
            "mean": float(values.mean()),
            "sd": float(values.std(ddof=1)) if values.size > 1 else 0.0,
            "min": float(values.min()),
            "max": float(values.max()),
            "n": int(values.size),
        }


def watchlist_scaling(
    make_protocol: Callable[[int], OpenSetProtocol],
    prepare: Callable[[WatchlistRun], WatchlistRun],
    sizes: Sequence[int],
    seeds: Sequence[int],
    thresholds: Sequence[float],
    group_by: Sequence[str],
    settings: StatisticsSettings,
    operating_threshold: float | None,
    on_step: Callable[[], None] | None = None,
) -> list[SizeSummary]:
    """For each seed, a fresh watchlist draw (`make_protocol(seed)`), runs of every size (`prepare` applies
    the reviewed exclusions), and the rates at the operating threshold plus that draw's own recommendation."""
    light = StatisticsSettings(
        alpha=settings.alpha,
        confidence=settings.confidence,
        correction=settings.correction,
        min_group_searches=settings.min_group_searches,
        bootstrap_samples=0,  # intervals of one draw are not what this table is for
        recommend_on=settings.recommend_on,
        rank=settings.rank,
        seed=settings.seed,
        fpir_ceiling=settings.fpir_ceiling,
    )
    draws: dict[int, list[Draw]] = {size: [] for size in sizes}
    errors: dict[int, str] = {}
    grid = sorted(set(thresholds) | ({operating_threshold} if operating_threshold is not None else set()))
    for seed in seeds:
        protocol = make_protocol(seed)
        for size in sizes:
            if size in errors:
                continue
            try:
                run = prepare(protocol.run(size))
            except ProtocolError as exc:
                errors[size] = str(exc)
                continue
            analysis = analyse(run, grid, group_by, light, fixed_fpirs=())
            median = median_mated_score(run)
            at = next((r for r in analysis.rows if r.threshold == operating_threshold), None)
            draws[size].append(
                Draw(
                    seed=seed,
                    size=size,
                    mated_identities=run.mated_identities,
                    real_filler=run.real_filler,
                    synthetic_filler=run.synthetic_filler,
                    mated_searches=len(run.mated),
                    nonmated_searches=len(run.nonmated),
                    threshold=operating_threshold,
                    tpir=float("nan") if at is None else at.tpir.value,
                    fpir=float("nan") if at is None else at.fpir.value,
                    false_positives=0 if at is None else at.fpir.errors,
                    fpir_upper=float("nan") if at is None else at.fpir.clopper_pearson[1],
                    recommended_threshold=analysis.recommended_threshold,
                    differential_free_threshold=analysis.differential_free_threshold,
                    nonmated_above_median_mated=int((run.nonmated.top_scores >= median).sum())
                    if np.isfinite(median)
                    else 0,
                )
            )
            if on_step is not None:
                on_step()
    return [SizeSummary(size, tuple(draws[size]), errors.get(size, "")) for size in sizes]
