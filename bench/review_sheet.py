"""Contact sheets of an evaluation's highest-scoring non-mated pairs, for a reviewer to look at by eye.

    python -m bench.review_sheet var/eval-reports/dev/report.json var/review --rows 8 [--size 1000]

Each row: rank in the list, score, the probe counted as a non-mated search, and the listed identity's
enrolled image plus up to two more of its images (from the manifest). Written under var/ (never committed:
they hold dataset images).
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("report", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--rows", type=int, default=8)
    parser.add_argument("--size", type=int, default=None, help="watchlist size (default: the largest)")
    parser.add_argument("--limit", type=int, default=80)
    parser.add_argument("--roots", nargs="*", default=[], help="dataset=folder (default from the config)")
    args = parser.parse_args()
    import cv2
    import yaml

    document = json.loads(args.report.read_text())
    config = yaml.safe_load(document["config"])
    import os

    roots = {d["name"]: Path(os.path.expandvars(d["root"])) for d in config["datasets"] if d.get("root")}
    roots |= {k: Path(v) for k, v in (r.split("=", 1) for r in args.roots)}
    others: dict[str, list[str]] = {}
    for name, root in roots.items():
        manifest = root / "manifest.csv"
        if manifest.is_file():
            with manifest.open(newline="", encoding="utf-8") as handle:
                for row in csv.DictReader(handle):
                    if row.get("identity"):
                        others.setdefault(f"{name}:{row['identity']}", []).append(row["path"])
    watchlists = document["audit"]["watchlists"]
    chosen = (
        max(watchlists, key=lambda w: w["size"])
        if args.size is None
        else next(w for w in watchlists if w["size"] == args.size)
    )
    pairs = chosen["pairs"][: args.limit]
    tile = 150

    def load(dataset: str, key: str) -> np.ndarray:
        image = cv2.imread(str(roots[dataset] / key), cv2.IMREAD_COLOR)
        if image is None:
            return np.full((tile, tile, 3), 200, np.uint8)
        return cv2.resize(image, (tile, tile), interpolation=cv2.INTER_AREA)

    args.out.mkdir(parents=True, exist_ok=True)
    for start in range(0, len(pairs), args.rows):
        rows = []
        for number, p in enumerate(pairs[start : start + args.rows], start=start + 1):
            listed_dataset, listed_key = p["listed_image"] or (p["probe_dataset"], p["probe_image"])
            more = [k for k in others.get(p["listed_identity"], []) if k != listed_key][:2]
            tiles = [load(p["probe_dataset"], p["probe_image"]), np.full((tile, 12, 3), 255, np.uint8),
                     load(listed_dataset, listed_key)] + [load(listed_dataset, k) for k in more]  # fmt: skip
            tiles += [np.full((tile, tile, 3), 255, np.uint8)] * (5 - len(tiles))
            strip = np.hstack(tiles)
            label = np.full((26, strip.shape[1], 3), 255, np.uint8)
            text = f"#{number} score {p['score']:.3f}  {p['probe_image'][-38:]}  ->  {p['listed_identity']}"
            cv2.putText(label, text, (4, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
            rows.append(np.vstack([label, strip]))
        sheet = np.vstack(rows)
        path = args.out / f"pairs_{start + 1:03d}.png"
        cv2.imwrite(str(path), sheet)
        print(path)


if __name__ == "__main__":
    main()
