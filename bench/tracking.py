"""Track fragmentation and identity switches on generated clips: `python -m bench.tracking [--seeds N]`.

Each clip: 40 people crossing a 1280x720 frame at 10 fps in both directions (several on screen at once),
10% of detections missed, box jitter 4% of the face's width (evaluation/tracking.py). Compares the shipped
motion-predicting tracker with IoU-only association (the motion gates set to zero, which is what the node
shipped before). Pure numpy, a second or two. Prints a table; asserts nothing.
"""

from __future__ import annotations

import argparse

import numpy as np

from evaluation.tracking import RUNNING, WALKING, score_tracker, street_clip
from lfr.adapters.camera.tracker import Tracker, TrackerPolicy

POLICIES = {
    "IoU only (before)": TrackerPolicy(max_speed=0.0, max_residual=0.0, drift=0.0),
    "constant velocity (shipped)": TrackerPolicy(),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, default=5)
    args = parser.parse_args()
    print("| pace | tracker | people | observations | tracks per person | identity switches per person |")
    print("|---|---|---:|---:|---:|---:|")
    for pace in (WALKING, RUNNING):
        for name, policy in POLICIES.items():
            people = observations = tracks = switches = 0
            for seed in range(args.seeds):
                frames = street_clip(pace, seed=seed)
                tracker: Tracker[object] = Tracker(policy)

                def assign(boxes: np.ndarray, now: float, tracker: Tracker[object] = tracker) -> list[str]:
                    ids = tracker.assign(boxes, now)
                    tracker.due(now)
                    return ids

                score = score_tracker(frames, assign)
                people += score.people
                tracks += score.tracks
                switches += score.identity_switches
                observations += sum(len(f.people) for f in frames)
            print(
                f"| {pace.name} | {name} | {people} | {observations} | {tracks / people:.2f} "
                f"| {switches / people:.3f} |"
            )


if __name__ == "__main__":
    main()
