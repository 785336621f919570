"""Head-pose accuracy and cost: `python -m bench.pose [--noise-px 0.5] [--iod-px 40] [--pnp]`.

A synthetic camera (focal length = frame width, 1280x720, principal point at the centre) photographs the
five-point face model (`lfr.adapters.head_pose.FACE_MODEL`) rotated by known yaw, pitch and roll, at a random
place in the frame, with Gaussian pixel noise on each keypoint. The true angles are the head's rotation
relative to the line of sight from the camera to the face (what decides how the face looks); the camera
projection is full perspective, so off-centre faces and faces close to the camera are seen obliquely, as
real ones are. Prints the estimator's error per true yaw and per true pitch, a grid summary and the cost
per face; `--pnp` adds cv2.solvePnP (SQPNP, true intrinsics) as a reference. Asserts nothing.
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable, Iterable

import numpy as np

from lfr.adapters.head_pose import FACE_MODEL, estimate_head_pose, rotation

Estimator = Callable[[np.ndarray, tuple[int, int]], tuple[float, float]]
FRAME = (1280, 720)


def _towards(direction: np.ndarray) -> np.ndarray:
    """The smallest rotation taking the optical axis (0, 0, 1) onto `direction`."""
    d = direction / np.linalg.norm(direction)
    axis = np.cross([0.0, 0.0, 1.0], d)
    sin, cos = float(np.linalg.norm(axis)), float(d[2])
    if sin < 1e-12:
        return np.eye(3)
    k = axis / sin
    cross = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + sin * cross + (1 - cos) * cross @ cross


def project(
    yaw: float,
    pitch: float,
    roll: float,
    *,
    at: tuple[float, float] = (FRAME[0] / 2, FRAME[1] / 2),
    iod_px: float = 40.0,
    noise_px: float = 0.0,
    rng: np.random.Generator | None = None,
    frame: tuple[int, int] = FRAME,
    model: np.ndarray = FACE_MODEL,
) -> np.ndarray:
    """(5, 2) keypoints of the model seen at pixel `at` with `iod_px` between the eyes of a frontal face."""
    focal = float(frame[0])
    centre = np.array([frame[0] / 2, frame[1] / 2])
    distance = focal / iod_px  # model units (1 = inter-ocular distance)
    ray = np.array([(at[0] - centre[0]) / focal, (at[1] - centre[1]) / focal, 1.0])
    position = ray * distance  # the eye midpoint, on the ray through `at`
    camera_points = (_towards(ray) @ rotation(yaw, pitch, roll) @ model.T).T + position
    points = focal * camera_points[:, :2] / camera_points[:, 2:] + centre
    if noise_px > 0:
        points = points + (rng or np.random.default_rng()).normal(0.0, noise_px, points.shape)
    return points


def opencv_pnp(keypoints: np.ndarray, frame: tuple[int, int]) -> tuple[float, float]:
    """Reference: cv2.solvePnP with the true intrinsics, angles made relative to the line of sight."""
    import cv2

    focal = float(frame[0])
    matrix = np.array([[focal, 0, frame[0] / 2], [0, focal, frame[1] / 2], [0, 0, 1]])
    ok, rvec, tvec = cv2.solvePnP(FACE_MODEL, keypoints.astype(np.float64), matrix, None,
                                  flags=cv2.SOLVEPNP_SQPNP)  # fmt: skip
    if not ok:
        return math.nan, math.nan
    head = _towards(tvec.ravel()).T @ cv2.Rodrigues(rvec)[0]
    yaw = math.degrees(math.atan2(head[2, 0], math.hypot(head[2, 1], head[2, 2])))
    return yaw, math.degrees(math.atan2(head[2, 1], head[2, 2]))


def lfr_estimator(keypoints: np.ndarray, frame: tuple[int, int]) -> tuple[float, float]:
    pose = estimate_head_pose(keypoints)
    return pose.yaw, pose.pitch


def samples(
    yaws: Iterable[float], pitches: Iterable[float], rolls: Iterable[float], *, repeats: int, noise_px: float,
    iod_px: float, seed: int = 0,
) -> list[tuple[float, float, float, np.ndarray]]:  # fmt: skip
    """Every (yaw, pitch, roll) `repeats` times, each at a random place in the frame with fresh noise."""
    rng = np.random.default_rng(seed)
    margin = 2 * iod_px
    out = []
    for yaw in yaws:
        for pitch in pitches:
            for roll in rolls:
                for _ in range(repeats):
                    at = (rng.uniform(margin, FRAME[0] - margin), rng.uniform(margin, FRAME[1] - margin))
                    points = project(yaw, pitch, roll, at=at, iod_px=iod_px, noise_px=noise_px, rng=rng)
                    out.append((yaw, pitch, roll, points))
    return out


def _errors(estimator: Estimator, cases: list[tuple[float, float, float, np.ndarray]]) -> np.ndarray:
    """Rows of (true yaw, true pitch, estimated yaw, estimated pitch)."""
    return np.array([(y, p, *estimator(points, FRAME)) for y, p, _, points in cases])


def _curve(title: str, rows: np.ndarray, column: int) -> None:
    print(f"\n{title}\n| true | mean estimate | mean error | max abs error |\n|---:|---:|---:|---:|")
    for value in np.unique(rows[:, column]):
        chosen = rows[rows[:, column] == value]
        error = chosen[:, column + 2] - value
        print(f"| {value:+.0f} | {np.nanmean(chosen[:, column + 2]):+.1f} | {np.nanmean(error):+.1f} "
              f"| {np.nanmax(np.abs(error)):.1f} |")  # fmt: skip


def _timing(estimator: Estimator, cases: list[tuple[float, float, float, np.ndarray]]) -> float:
    points = [c[3].astype(np.float32) for c in cases[:200]]
    started = time.perf_counter()
    rounds = 20
    for _ in range(rounds):
        for p in points:
            estimator(p, FRAME)
    return (time.perf_counter() - started) / (rounds * len(points)) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--noise-px", type=float, default=0.5)
    parser.add_argument("--iod-px", type=float, default=40.0)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--pnp", action="store_true", help="also cv2.solvePnP with the true intrinsics")
    args = parser.parse_args()
    estimators: dict[str, Estimator] = {"lfr": lfr_estimator}
    if args.pnp:
        estimators["solvePnP SQPNP"] = opencv_pnp
    print(f"noise {args.noise_px} px per keypoint, inter-ocular {args.iod_px} px, frame {FRAME}, focal "
          f"{FRAME[0]} px, {args.repeats} random placements per angle")  # fmt: skip
    kwargs = {"repeats": args.repeats, "noise_px": args.noise_px, "iod_px": args.iod_px}
    yaw_cases = samples(range(-90, 91, 10), [0], [-30, 0, 30], **kwargs)
    pitch_cases = samples([0], range(-50, 51, 10), [-30, 0, 30], **kwargs)
    grid = samples(range(-60, 61, 15), range(-35, 36, 7), [-30, 0, 30], **kwargs)
    for name, estimator in estimators.items():
        print(f"\n## {name}")
        _curve("Yaw sweep (pitch 0, roll -30/0/30):", _errors(estimator, yaw_cases), 0)
        _curve("Pitch sweep (yaw 0, roll -30/0/30):", _errors(estimator, pitch_cases), 1)
        rows = _errors(estimator, grid)
        yaw_err, pitch_err = np.abs(rows[:, 2] - rows[:, 0]), np.abs(rows[:, 3] - rows[:, 1])
        print(f"\nGrid |yaw| <= 60, |pitch| <= 35, roll -30/0/30 ({len(rows)} faces): yaw error p50 "
              f"{np.nanpercentile(yaw_err, 50):.1f} p95 {np.nanpercentile(yaw_err, 95):.1f} max "
              f"{np.nanmax(yaw_err):.1f}; pitch error p50 {np.nanpercentile(pitch_err, 50):.1f} p95 "
              f"{np.nanpercentile(pitch_err, 95):.1f} max {np.nanmax(pitch_err):.1f}; no estimate "
              f"{int(np.isnan(rows[:, 2]).sum())}")  # fmt: skip
        print(f"cost per face: {_timing(estimator, grid):.1f} us")


if __name__ == "__main__":
    main()
