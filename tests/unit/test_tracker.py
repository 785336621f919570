from __future__ import annotations

import numpy as np
import pytest

from lfr.adapters.camera.tracker import Tracker, TrackerPolicy, iou_matrix


def box(x: float, y: float, side: float = 50) -> list[float]:
    return [x, y, x + side, y + side]


class Payload:
    def __init__(self, name: str) -> None:
        self.name = name
        self.wiped = False


def wipe(payload: Payload) -> None:
    payload.wiped = True


def make(**policy: float) -> Tracker[Payload]:
    return Tracker(TrackerPolicy(**policy), wipe)  # type: ignore[arg-type]


def test_iou_of_identical_disjoint_and_half_overlapping_boxes() -> None:
    got = iou_matrix(np.array([box(0, 0)]), np.array([box(0, 0), box(100, 100), box(25, 0)]))
    np.testing.assert_allclose(got, [[1.0, 0.0, 25 * 50 / (2 * 2500 - 25 * 50)]])


def test_moving_face_keeps_its_track_and_a_new_face_gets_another() -> None:
    tracker = make()
    first = tracker.assign(np.array([box(0, 0)]), now=0.0)
    second = tracker.assign(np.array([box(300, 0), box(5, 3)]), now=0.1)
    assert second[1] == first[0]
    assert second[0] != first[0]
    assert tracker.active == 2


def test_two_boxes_never_share_one_track() -> None:
    tracker = make()
    (only,) = tracker.assign(np.array([box(0, 0)]), now=0.0)
    ids = tracker.assign(np.array([box(2, 0), box(4, 0)]), now=0.1)
    assert len(set(ids)) == 2
    assert only in ids


def test_first_face_goes_at_once_then_only_the_best_per_interval() -> None:
    tracker = make(min_interval_s=1.0, max_age_s=5.0)
    (track,) = tracker.assign(np.array([box(0, 0)]), 0.0)
    first = Payload("first")
    tracker.offer(track, 0.5, first)
    assert [p.name for _, p in tracker.due(0.0)] == ["first"]

    offered = []
    for i, score in enumerate([0.3, 0.9, 0.6, 0.2]):
        now = 0.1 + i * 0.2
        tracker.assign(np.array([box(i, 0)]), now)
        offered.append(Payload(f"s{score}"))
        tracker.offer(track, score, offered[-1])
        assert tracker.due(now) == []  # the interval has not passed
    released = tracker.due(1.0)
    assert [(t, p.name) for t, p in released] == [(track, "s0.9")]
    assert [p.wiped for p in offered] == [True, False, True, True]


def test_track_that_ends_releases_its_held_face_and_is_forgotten() -> None:
    tracker = make(min_interval_s=10.0, max_age_s=0.5)
    (track,) = tracker.assign(np.array([box(0, 0)]), 0.0)
    tracker.offer(track, 0.5, Payload("a"))
    tracker.due(0.0)
    tracker.assign(np.array([box(1, 0)]), 0.2)
    tracker.offer(track, 0.4, Payload("b"))
    assert tracker.due(0.3) == []
    assert [p.name for _, p in tracker.due(0.8)] == ["b"]
    assert tracker.active == 0


def test_face_without_track_or_worse_than_held_is_wiped() -> None:
    tracker = make(min_interval_s=10.0)
    stray = Payload("stray")
    tracker.offer("nobody", 1.0, stray)
    assert stray.wiped


@pytest.mark.parametrize("limit", [1, 3])
def test_tracks_are_bounded_and_the_stalest_ends_first(limit: int) -> None:
    tracker = make(max_tracks=limit, max_age_s=100.0)
    held = []
    for i in range(limit + 2):
        (track,) = tracker.assign(np.array([box(i * 100, 0)]), float(i))
        held.append(Payload(str(i)))
        tracker.offer(track, 0.5, held[-1])
    assert tracker.active == limit
    assert [p.wiped for p in held] == [True, True] + [False] * limit
    tracker.clear()
    assert all(p.wiped for p in held)
