"""How to score a subject enrolled from several images: `python -m bench.template_fusion --cache FILE`.

Reads the evaluation harness's embedding cache (evaluation/extraction.py; computes nothing) for the LFW
and UTKFace development sets. Watchlist of N = 1,000 LFW identities: every identity with at least 4
embedded images is mated (enrolled from its first 1 or 2 images, searched with its 3rd and 4th, each a
single-sample probe); the rest of the list is filled with other LFW identities (their first 1 or 2
images). Non-mated searches: every embedded UTKFace image (none of them is on the list). Compares
one-image enrolment with two-image enrolment scored as the max over templates and as the mean template,
at the threshold giving FPIR 0.1%. The quality gate is not applied (every detected face is used).
Prints a table; asserts nothing.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import sqlite3
from collections.abc import Callable
from pathlib import Path

import numpy as np

from evaluation.metrics import wilson_interval

DATASETS = Path("../shared/datasets")


def load_vectors(cache: Path, root: Path, name: str) -> dict[str, tuple[str, np.ndarray]]:
    """image path -> (identity, vector) for every image of `root`'s manifest found in the cache."""
    with (root / "manifest.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    digests = {hashlib.sha256((root / r["path"]).read_bytes()).hexdigest(): r for r in rows}
    db = sqlite3.connect(f"file:{cache}?mode=ro", uri=True)
    found: dict[str, tuple[str, np.ndarray]] = {}
    for digest, blob in db.execute("SELECT content_sha256, vector FROM embedding WHERE vector IS NOT NULL"):
        row = digests.get(digest)
        if row is not None:
            vector = np.frombuffer(blob, dtype=np.float32)
            found[row["path"]] = (row.get("identity", "") or f"{name}:{row['path']}", vector)
    return found


def unit(rows: np.ndarray) -> np.ndarray:
    out: np.ndarray = rows / np.linalg.norm(rows, axis=-1, keepdims=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cache", type=Path, required=True)
    parser.add_argument("--datasets", type=Path, default=DATASETS)
    parser.add_argument("--size", type=int, default=1000)
    parser.add_argument("--fpir", type=float, default=0.001)
    args = parser.parse_args()
    lfw = load_vectors(args.cache, args.datasets / "lfw", "lfw")
    utk = load_vectors(args.cache, args.datasets / "utkface", "utk")
    by_identity: dict[str, list[np.ndarray]] = {}
    for path in sorted(lfw):
        identity, vector = lfw[path]
        by_identity.setdefault(identity, []).append(vector)
    mated = sorted(i for i, v in by_identity.items() if len(v) >= 4)
    others = sorted(i for i in by_identity if i not in set(mated))
    rng = np.random.default_rng(0)
    fill = list(rng.choice(others, size=max(args.size - len(mated), 0), replace=False))
    listed = mated + fill
    probes = unit(np.stack([by_identity[i][k] for i in mated for k in (2, 3)]))
    truth = np.repeat(np.arange(len(mated)), 2)
    non_mated = unit(np.stack([v for _, v in utk.values()]))
    print(
        f"N = {len(listed)} listed ({len(mated)} mated identities), {len(probes)} mated searches, "
        f"{len(non_mated)} non-mated searches (UTKFace), FPIR {args.fpir:.1%}"
    )

    rules: dict[str, Callable[[list[np.ndarray]], list[np.ndarray]]] = {
        "1 image": lambda v: [v[0]],
        "2 images, max over templates": lambda v: v[:2],
        "2 images, mean template": lambda v: [np.mean(unit(np.stack(v[:2])), axis=0)],
    }
    print("| enrolment | threshold at FPIR | TPIR (95% CI) | mean mated score |")
    print("|---|---:|---:|---:|")
    for name, templates_of in rules.items():
        rows, owner = [], []
        for n, identity in enumerate(listed):
            for template in templates_of(by_identity[identity]):
                rows.append(template)
                owner.append(n)
        gallery = unit(np.stack(rows))
        owners = np.array(owner)

        def subject_scores(
            queries: np.ndarray, gallery: np.ndarray = gallery, owners: np.ndarray = owners
        ) -> np.ndarray:
            raw = queries @ gallery.T
            out = np.full((len(queries), len(listed)), -np.inf, dtype=np.float32)
            np.maximum.at(out.T, owners, raw.T)
            return out

        non_top = np.sort(subject_scores(non_mated).max(axis=1))
        allowed = int(np.floor(args.fpir * len(non_top)))
        threshold = float(non_top[len(non_top) - allowed - 1]) + 1e-6
        scores = subject_scores(probes)
        rank1 = scores.argmax(axis=1) == truth
        mated_score = scores[np.arange(len(truth)), truth]
        hits = int(np.sum(rank1 & (mated_score >= threshold)))
        low, high = wilson_interval(hits, len(truth))
        print(
            f"| {name} | {threshold:.3f} | {hits / len(truth):.1%} ({low:.1%}-{high:.1%}) "
            f"| {mated_score.mean():.3f} |"
        )


if __name__ == "__main__":
    main()
