"""Report documents shaped like `lfr eval run`'s report.json, with chosen counts, for the equity gate's
tests. (The regression test in test_gate_evidence.py uses a real run's report instead.)"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def rate(count: int, searches: int) -> dict[str, Any]:
    return {"count": count, "searches": searches, "value": count / searches if searches else None}


def threshold_row(
    threshold: float,
    false_positives: int,
    groups: dict[str, int],
    significant: bool = False,
    attribute: str = "gender",
) -> dict[str, Any]:
    """`groups`: non-mated searches per group; false positives shared in proportion."""
    total = sum(groups.values())
    return {
        "threshold": threshold,
        "fpir": rate(false_positives, total),
        "significant_differential": significant,
        "groups": [
            *(
                {
                    "attribute": attribute,
                    "group": name,
                    "tested": True,
                    "fpir": rate(round(false_positives * n / total), n),
                }
                for name, n in groups.items()
            ),
            {
                "attribute": "dataset",
                "group": "utkface",
                "tested": False,
                "fpir": rate(false_positives, total),
            },
        ],
    }


def report(
    model_id: str = "model-a",
    sizes: Sequence[int] = (1000,),
    thresholds: Sequence[float] = (0.5, 0.6, 0.7),
    false_positives: int = 400,
    groups: dict[str, int] | None = None,
    recommended: float | None = 0.5,
    significant_at: Sequence[float] = (),
    index_type: str | None = "flat",
) -> dict[str, Any]:
    groups = groups if groups is not None else {"F": 50_000, "M": 50_000}
    document: dict[str, Any] = {
        "report_version": 2,
        "name": "test",
        "model_id": model_id,
        "dataset_fingerprint": "sha256:data",
        "recommended_threshold": recommended,
        "passed": recommended is not None,
        "statistics": {"alpha": 0.05},
        "watchlists": [
            {
                "size": size,
                "recommended_threshold": recommended,
                "thresholds": [
                    threshold_row(t, false_positives, groups, significant=t in significant_at)
                    for t in thresholds
                ],
            }
            for size in sizes
        ],
    }
    if index_type is not None:
        document["index_type"] = index_type
    return document
