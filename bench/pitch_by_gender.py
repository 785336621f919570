"""Head pitch by gender on real faces: `python -m bench.pitch_by_gender [--lfw 1500] [--utkface 2500]`.

Detects the largest face of a seeded random sample of LFW and UTKFace images (manifests give gender;
detector at det_size 256, as the development evaluation runs it), reads pitch with the shipped estimator
(`head_pose.estimate_head_pose`: eyes and nose tip) and with the previous one (the rigid five-point fit's
own pitch, whose vertical scale is the mouth line), and prints per dataset: median pitch by gender, degrees
of pitch per 0.1 inter-ocular distances of mouth width (a smile widens the mouth), and pitch rejections by
gender at 35 and 40 degrees with a two-sided Fisher exact p. Keypoints stay in memory. Needs
LFR_MODEL_ROOT / LFR_MODEL_PACK and the datasets under --datasets. Asserts nothing.
"""

from __future__ import annotations

import argparse
import csv
import random
from pathlib import Path

import cv2
import numpy as np
from scipy.stats import fisher_exact

from lfr.adapters import head_pose
from lfr.adapters.embedder import InsightFaceEmbedder, ModelSettings
from lfr.adapters.head_pose import estimate_head_pose


def rigid_pitch(keypoints: np.ndarray) -> float:
    """The previous estimate: the rigid fit's pitch (the shipped one hands over to it entirely beyond
    EYE_SCALE_YAW, so a range every yaw exceeds makes it do so always)."""
    shipped = head_pose.EYE_SCALE_YAW
    head_pose.EYE_SCALE_YAW = (-2.0, -1.0)
    try:
        return estimate_head_pose(keypoints).pitch
    finally:
        head_pose.EYE_SCALE_YAW = shipped


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
        print(report(f"{name} previous", g, width, np.array([rigid_pitch(k) for k in points])))
        print(report(f"{name} shipped", g, width, np.array([estimate_head_pose(k).pitch for k in points])))


if __name__ == "__main__":
    main()
