"""Head pitch by gender on real faces: `python -m bench.pitch_by_gender [--lfw 1500] [--utkface 2500]`.

Detects the largest face of a seeded random sample of LFW and UTKFace images (manifests give gender;
detector at det_size 256, as the development evaluation runs it), reads pitch with the shipped estimator
(`head_pose.estimate_head_pose`) and with a candidate that takes the scale from the eye line and
down-weights the mouth line (`eye_scale_pitch`, mouth weights given by --weights), and prints per dataset:
median pitch by gender, degrees of pitch per 0.1 inter-ocular distances of mouth width (a smile widens the
mouth), and pitch rejections by gender at 35 and 40 degrees with a two-sided Fisher exact p. Keypoints stay
in memory. Needs LFR_MODEL_ROOT / LFR_MODEL_PACK and the datasets under --datasets. Asserts nothing.
"""

from __future__ import annotations

import argparse
import csv
import math
import random
from pathlib import Path

import cv2
import numpy as np
from scipy.stats import fisher_exact

from lfr.adapters.embedder import InsightFaceEmbedder, ModelSettings
from lfr.adapters.head_pose import (
    MOUTH_DEPTH,
    MOUTH_DROP,
    NOSE_DEPTH,
    NOSE_DROP,
    estimate_head_pose,
)

MIN_EYE_COS = 0.2


def eye_scale_pitch(keypoints: np.ndarray, mouth_weight: float, iterations: int = 6) -> float:
    """Candidate pitch (degrees): heights of the nose tip and mouth midpoint below the eye line, over the
    scale s = eye-line length / cos(yaw); weighted Gauss-Newton fit of s*(drop*cos p + depth*sin p) from
    the rigid fit's pitch. Under the model the eye line's length is s*cos(yaw) whatever the pitch, so only
    the mouth term (weight `mouth_weight`) sees expression. Its weakness: the nose tip's height peaks at
    atan(NOSE_DEPTH / NOSE_DROP) = 43 degrees down, so near the 35-degree limit only the mouth tells pitch."""
    (lx, ly), (rx, ry), (nx, ny), (mlx, mly), (mrx, mry) = keypoints.reshape(5, 2).tolist()
    rigid = estimate_head_pose(keypoints)
    if not math.isfinite(rigid.pitch):
        return math.nan
    eye_dx, eye_dy = rx - lx, ry - ly
    ex, ey = (lx + rx) / 2, (ly + ry) / 2
    unit = max(math.cos(math.radians(rigid.yaw)), MIN_EYE_COS) / (eye_dx * eye_dx + eye_dy * eye_dy)
    nose_h = ((ny - ey) * eye_dx - (nx - ex) * eye_dy) * unit
    mouth_h = (((mly + mry) / 2 - ey) * eye_dx - ((mlx + mrx) / 2 - ex) * eye_dy) * unit
    p = math.radians(rigid.pitch)
    for _ in range(iterations):
        c, s = math.cos(p), math.sin(p)
        r_n, r_m = nose_h - (NOSE_DROP * c + NOSE_DEPTH * s), mouth_h - (MOUTH_DROP * c + MOUTH_DEPTH * s)
        j_n, j_m = NOSE_DROP * s - NOSE_DEPTH * c, MOUTH_DROP * s - MOUTH_DEPTH * c
        p -= (j_n * r_n + mouth_weight * j_m * r_m) / (j_n * j_n + mouth_weight * j_m * j_m)
    return math.degrees(p)


def sample(datasets: Path, name: str, count: int, seed: int) -> list[tuple[str, Path]]:
    with (datasets / name / "manifest.csv").open() as file:
        rows = list(csv.DictReader(file))
    random.Random(seed).shuffle(rows)
    picked = []
    for row in rows[:count]:
        gender = row.get("gender") or row.get("gender_afifi") or ""
        if gender in ("F", "M"):
            picked.append((gender, datasets / name / row["path"]))
    return picked


def report(name: str, genders: np.ndarray, mouth_width: np.ndarray, pitch: np.ndarray) -> str:
    female, male = np.nanmedian(pitch[genders == "F"]), np.nanmedian(pitch[genders == "M"])
    parts = [f"{name}: median F {female:+.1f} M {male:+.1f}"]
    ok = np.isfinite(pitch)
    parts.append(f"{np.polyfit(mouth_width[ok], pitch[ok], 1)[0] / 10:.1f} deg/0.1 mouth width")
    for limit in (35, 40):
        rejected = {g: ~(np.abs(pitch[genders == g]) <= limit) for g in "FM"}
        table = [[int(rejected[g].sum()), int((~rejected[g]).sum())] for g in "FM"]
        p_value = fisher_exact(table)[1]
        parts.append(
            f">{limit}: F {table[0][0]}/{len(rejected['F'])} ({rejected['F'].mean():.2%}) "
            f"M {table[1][0]}/{len(rejected['M'])} ({rejected['M'].mean():.2%}) p {p_value:.2g}"
        )
    return " | ".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--datasets", type=Path, default=Path("/work/shared/datasets"))
    parser.add_argument("--lfw", type=int, default=1500)
    parser.add_argument("--utkface", type=int, default=2500)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--weights", type=float, nargs="*", default=[0.03, 0.1, 0.3])
    args = parser.parse_args()
    embedder = InsightFaceEmbedder(ModelSettings(det_size=256))
    for name, count in (("lfw", args.lfw), ("utkface", args.utkface)):
        genders, keypoints = [], []
        for gender, path in sample(args.datasets, name, count, args.seed):
            faces = embedder.detect(cv2.imread(str(path)))
            if faces:
                face = max(faces, key=lambda f: f.width * f.height)
                genders.append(gender)
                keypoints.append(face.keypoints.astype(np.float64))
        points = np.array(keypoints)
        g = np.array(genders)
        width = np.linalg.norm(points[:, 4] - points[:, 3], axis=1) / np.linalg.norm(
            points[:, 1] - points[:, 0], axis=1
        )
        print(
            report(
                f"{name} rigid (shipped)", g, width, np.array([estimate_head_pose(k).pitch for k in points])
            )
        )
        for weight in args.weights:
            pitch = np.array([eye_scale_pitch(k, weight) for k in points])
            print(report(f"{name} eye-scale w={weight}", g, width, pitch))


if __name__ == "__main__":
    main()
