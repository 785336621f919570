"""Enrolment and probe fusion on the development data: `python -m bench.template_fusion --cache FILE`.

Reads the evaluation harness's embedding cache (evaluation/extraction.py; computes nothing) for the LFW
and UTKFace development sets. Watchlist of N = 1,000 LFW identities: every identity with at least 4
embedded images is mated (enrolled from its 1st, or 1st and 2nd, image; searched with its 3rd and 4th);
the rest of the list is filled with LFW identities that have a single image, so that every identity
with 2 or 3 images stays off the list as a non-mated multi-sample searcher.

Table 1 (enrolment fusion): one image vs two images scored as the max over templates or as the mean
template, single-sample probes, threshold at FPIR 0.1% over the UTKFace non-mated searches.

Table 2 (four-way): enrolment {1 image, 2 images as the mean template} x probe {single sample: 3rd and
4th image searched separately; multi-sample: the 3rd and 4th image as one track, fused as the matcher
does (lfr/services/track_evidence.py: an alert if a single face reaches the threshold, or the fused
probe does and one face reaches threshold - 0.10)}. Thresholds: at FPIR 0.1% on UTKFace single-sample
non-mated searches (how a deployment threshold is set), and the recommended 0.58. Multi-sample FPIR is
measured on off-list LFW identities' first two images (the only multi-image non-mated searchers the
data allows), with an exact interval. The quality gate is not applied (every detected face is used).
Prints tables; asserts nothing.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import sqlite3
from pathlib import Path

import numpy as np

from evaluation.metrics import clopper_pearson_interval, wilson_interval

DATASETS = Path("../shared/datasets")
SUPPORT_MARGIN = 0.10
RECOMMENDED = 0.58


def load_vectors(cache: Path, root: Path, name: str) -> dict[str, tuple[str, np.ndarray]]:
    """image path -> (identity, vector) for every image of `root`'s manifest found in the cache."""
    return {
        path: (identity, vector) for path, (identity, vector, _) in load_labelled(cache, root, name).items()
    }


def load_labelled(cache: Path, root: Path, name: str) -> dict[str, tuple[str, np.ndarray, str]]:
    """image path -> (identity, vector, gender label or "") for every cached image of `root`'s manifest."""
    with (root / "manifest.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    digests = {hashlib.sha256((root / r["path"]).read_bytes()).hexdigest(): r for r in rows}
    db = sqlite3.connect(f"file:{cache}?mode=ro", uri=True)
    found: dict[str, tuple[str, np.ndarray, str]] = {}
    for digest, blob in db.execute("SELECT content_sha256, vector FROM embedding WHERE vector IS NOT NULL"):
        row = digests.get(digest)
        if row is not None:
            vector = np.frombuffer(blob, dtype=np.float32)
            gender = row.get("gender_afifi") or row.get("gender") or ""
            found[row["path"]] = (row.get("identity", "") or f"{name}:{row['path']}", vector, gender)
    return found


def unit(rows: np.ndarray) -> np.ndarray:
    out: np.ndarray = rows / np.linalg.norm(rows, axis=-1, keepdims=True)
    return out


class Gallery:
    def __init__(self, templates: list[list[np.ndarray]], rule: str) -> None:
        rows, owners = [], []
        for n, subject in enumerate(templates):
            chosen = [np.mean(unit(np.stack(subject)), axis=0)] if rule == "mean" else subject
            rows += chosen
            owners += [n] * len(chosen)
        self.rows, self.owners, self.size = unit(np.stack(rows)), np.array(owners), len(templates)

    def scores(self, queries: np.ndarray) -> np.ndarray:
        """(queries, subjects): each subject's best row score."""
        raw = unit(queries) @ self.rows.T
        out = np.full((len(queries), self.size), -np.inf, dtype=np.float32)
        np.maximum.at(out.T, self.owners, raw.T)
        return out


def track_scores(gallery: Gallery, faces: list[np.ndarray], threshold: float) -> np.ndarray:
    """(tracks, subjects) decision scores of two-face tracks under the matcher's rule: a subject's score
    is the best of its single-face scores and, where one face reaches threshold - margin, the fused
    probe's score (otherwise the fused score cannot raise it)."""
    a, b = gallery.scores(faces[0]), gallery.scores(faces[1])
    single = np.maximum(a, b)
    fused = gallery.scores(faces[0] + faces[1])
    supported = single >= threshold - SUPPORT_MARGIN
    out: np.ndarray = np.where(supported, np.maximum(single, fused), single)
    return out


def threshold_at(non_mated_top: np.ndarray, fpir: float) -> float:
    ordered = np.sort(non_mated_top)
    allowed = int(np.floor(fpir * len(ordered)))
    return float(ordered[len(ordered) - allowed - 1]) + 1e-6


def tpir(scores: np.ndarray, truth: np.ndarray, threshold: float) -> tuple[int, int]:
    rank1 = scores.argmax(axis=1) == truth
    hits = rank1 & (scores[np.arange(len(truth)), truth] >= threshold)
    return int(hits.sum()), len(truth)


def pct(k: int, n: int, exact: bool = False) -> str:
    low, high = (clopper_pearson_interval if exact else wilson_interval)(k, n)
    return f"{k / n:.1%} ({low:.1%}-{high:.1%})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cache", type=Path, required=True)
    parser.add_argument("--datasets", type=Path, default=DATASETS)
    parser.add_argument("--size", type=int, default=1000)
    parser.add_argument("--fpir", type=float, default=0.001)
    args = parser.parse_args()
    lfw = load_labelled(args.cache, args.datasets / "lfw", "lfw")
    utk = load_labelled(args.cache, args.datasets / "utkface", "utk")
    by_identity: dict[str, list[np.ndarray]] = {}
    gender_of: dict[str, str] = {}
    for path in sorted(lfw):
        identity, vector, gender = lfw[path]
        by_identity.setdefault(identity, []).append(vector)
        gender_of[identity] = gender
    mated = sorted(i for i, v in by_identity.items() if len(v) >= 4)
    singles = sorted(i for i, v in by_identity.items() if len(v) == 1)
    off_list = sorted(i for i, v in by_identity.items() if 2 <= len(v) < 4)
    rng = np.random.default_rng(0)
    fill = list(rng.choice(singles, size=max(args.size - len(mated), 0), replace=False))
    listed = mated + fill
    truth = np.arange(len(mated))
    third = np.stack([by_identity[i][2] for i in mated])
    fourth = np.stack([by_identity[i][3] for i in mated])
    utk_probes = np.stack([v for _, v, _ in utk.values()])
    utk_gender = np.array([g for _, _, g in utk.values()])
    mated_gender = np.array([gender_of[i] for i in mated])
    off_gender = np.array([gender_of[i] for i in off_list])
    per_group: list[str] = []
    off_faces = [np.stack([by_identity[i][k] for i in off_list]) for k in (0, 1)]
    print(
        f"N = {len(listed)} listed ({len(mated)} mated identities); mated searches: {2 * len(mated)} single "
        f"(3rd and 4th image), {len(mated)} two-sample; non-mated: {len(utk_probes)} UTKFace single, "
        f"{len(off_list)} off-list LFW two-sample"
    )

    print("\nEnrolment fusion, single-sample probes, threshold at FPIR 0.1%:\n")
    print("| enrolment | threshold | TPIR (95% CI) | mean mated score |")
    print("|---|---:|---:|---:|")
    for name, count, rule in (
        ("1 image", 1, "mean"),
        ("2 images, max over templates", 2, "max"),
        ("2 images, mean template", 2, "mean"),
    ):
        gallery = Gallery([by_identity[i][:count] for i in listed], rule)
        threshold = threshold_at(gallery.scores(utk_probes).max(axis=1), args.fpir)
        scores = np.concatenate([gallery.scores(third), gallery.scores(fourth)])
        both = np.concatenate([truth, truth])
        k, n = tpir(scores, both, threshold)
        mean_mated = float(scores[np.arange(len(both)), both].mean())
        print(f"| {name} | {threshold:.3f} | {pct(k, n)} | {mean_mated:.3f} |")

    print("\nFour-way: enrolment x probe (TPIR with 95% CI; FPIR of two-sample non-mated searches):\n")
    print(
        "| enrolment | probe | threshold (FPIR 0.1%) | TPIR there | two-sample FPIR there "
        "| TPIR at 0.58 | FPIR at 0.58 |"
    )
    print("|---|---|---:|---:|---:|---:|---:|")
    for enrol_name, count in (("1 image", 1), ("2 images (mean)", 2)):
        gallery = Gallery([by_identity[i][:count] for i in listed], "mean")
        utk_top = gallery.scores(utk_probes).max(axis=1)
        threshold = threshold_at(utk_top, args.fpir)
        for probe_name in ("single sample", "two-sample track"):
            cells = []
            for t in (threshold, RECOMMENDED):
                if probe_name == "single sample":
                    scores = np.concatenate([gallery.scores(third), gallery.scores(fourth)])
                    k, n = tpir(scores, np.concatenate([truth, truth]), t)
                    false = int((utk_top >= t).sum()), len(utk_top)
                else:
                    k, n = tpir(track_scores(gallery, [third, fourth], t), truth, t)
                    off = track_scores(gallery, off_faces, t).max(axis=1)
                    false = int((off >= t).sum()), len(off)
                cells.append((pct(k, n), pct(*false, exact=True)))
                if t == threshold:
                    per_group.append(
                        group_row(gallery, enrol_name, probe_name, t, [third, fourth], truth, mated_gender,
                                  utk_top, utk_gender, off_faces, off_gender)
                    )  # fmt: skip
            first, second = cells
            print(
                f"| {enrol_name} | {probe_name} | {threshold:.3f} | {first[0]} | "
                f"{first[1] if probe_name != 'single sample' else '(0.1% by construction)'} "
                f"| {second[0]} | {second[1]} |"
            )

    print("\nBy gender (LFW gender_afifi; UTKFace gender), at each row's FPIR-0.1% threshold:\n")
    print("| enrolment | probe | TPIR F | TPIR M | FPIR F | FPIR M |")
    print("|---|---|---:|---:|---:|---:|")
    for row in per_group:
        print(row)


def group_row(
    gallery: Gallery,
    enrol_name: str,
    probe_name: str,
    threshold: float,
    faces: list[np.ndarray],
    truth: np.ndarray,
    mated_gender: np.ndarray,
    utk_top: np.ndarray,
    utk_gender: np.ndarray,
    off_faces: list[np.ndarray],
    off_gender: np.ndarray,
) -> str:
    """TPIR and FPIR per gender for one four-way row (single-sample FPIR on UTKFace, two-sample FPIR on
    the off-list LFW identities)."""
    cells = []
    if probe_name == "single sample":
        scores = np.concatenate([gallery.scores(faces[0]), gallery.scores(faces[1])])
        both, genders = np.concatenate([truth, truth]), np.concatenate([mated_gender, mated_gender])
        false_top, false_gender = utk_top, utk_gender
    else:
        scores, both, genders = track_scores(gallery, faces, threshold), truth, mated_gender
        false_top, false_gender = track_scores(gallery, off_faces, threshold).max(axis=1), off_gender
    for group in ("F", "M"):
        mask = genders == group
        k, n = tpir(scores[mask], both[mask], threshold)
        cells.append(pct(k, n))
    for group in ("F", "M"):
        mask = false_gender == group
        cells.append(pct(int((false_top[mask] >= threshold).sum()), int(mask.sum()), exact=True))
    return f"| {enrol_name} | {probe_name} | " + " | ".join(cells) + " |"


if __name__ == "__main__":
    main()
