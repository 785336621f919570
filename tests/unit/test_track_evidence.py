"""Track evidence: memory only, bounded in tracks and in time, wiped (zeroed) when it goes."""

from __future__ import annotations

import numpy as np

from lfr.domain.matching import Candidate
from lfr.services.track_evidence import TrackEvidence, TrackEvidencePolicy


def probe(seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=8).astype(np.float32)
    return v / np.linalg.norm(v)


def key(track: str, window: str = "w1") -> tuple[str, str, str, str]:
    return (window, "cam-1", "s", track)


def test_the_fused_probe_is_the_unit_mean_of_the_track_faces() -> None:
    evidence = TrackEvidence()
    assert evidence.add(key("a"), "s:1", probe(1), ()) is None  # one face: nothing to fuse
    fused = evidence.add(key("a"), "s:2", probe(2), (Candidate("x", 0.4),))
    assert fused is not None
    expected = probe(1) + probe(2)
    np.testing.assert_allclose(fused, expected / np.linalg.norm(expected), atol=1e-6)
    assert evidence.support(key("a"), "x") == 0.4
    assert evidence.supports(key("a"), "x", threshold=0.5)
    assert not evidence.supports(key("a"), "x", threshold=0.51)
    assert evidence.support(key("a"), "nobody") == float("-inf")


def test_the_stalest_track_goes_first_when_full_and_is_zeroed() -> None:
    evidence = TrackEvidence(TrackEvidencePolicy(max_tracks=2))
    evidence.add(key("a"), None, probe(1), ())
    (first,) = evidence._tracks.values()
    evidence.add(key("b"), None, probe(2), ())
    evidence.add(key("a"), None, probe(3), ())  # "a" is now the most recent
    evidence.add(key("c"), None, probe(4), ())
    assert set(evidence._tracks) == {key("a"), key("c")}
    assert first.total.any()  # "a" stayed
    evidence.clear()
    assert len(evidence) == 0
    assert not first.total.any()


def test_a_quiet_track_is_forgotten_after_max_age() -> None:
    now = [0.0]
    evidence = TrackEvidence(TrackEvidencePolicy(max_age_s=10), monotonic=lambda: now[0])
    evidence.add(key("old"), None, probe(1), ())
    (old,) = evidence._tracks.values()
    now[0] = 10.5
    evidence.add(key("new"), None, probe(2), ())
    assert list(evidence._tracks) == [key("new")]
    assert not old.total.any()


def test_only_armed_windows_keep_their_tracks_and_disabled_keeps_nothing() -> None:
    evidence = TrackEvidence()
    evidence.add(key("a", "w1"), None, probe(1), ())
    evidence.add(key("b", "w2"), None, probe(2), ())
    evidence.retain_windows(["w2"])
    assert list(evidence._tracks) == [key("b", "w2")]
    off = TrackEvidence(TrackEvidencePolicy(enabled=False))
    assert off.add(key("a"), None, probe(1), ()) is None
    assert off.add(key("a"), None, probe(2), ()) is None
    assert len(off) == 0


def test_best_single_scores_are_bounded_per_track() -> None:
    evidence = TrackEvidence(TrackEvidencePolicy(max_subjects=3))
    candidates = tuple(Candidate(f"s{i}", i / 10) for i in range(6))
    evidence.add(key("a"), None, probe(1), candidates)
    (track,) = evidence._tracks.values()
    assert set(track.best_single) == {"s3", "s4", "s5"}


def test_no_fused_probe_while_no_face_supports_any_subject() -> None:
    evidence = TrackEvidence(TrackEvidencePolicy(support_margin=0.1))
    evidence.add(key("a"), None, probe(1), (Candidate("x", 0.3),), threshold=0.6)
    assert evidence.add(key("a"), None, probe(2), (Candidate("x", 0.49),), threshold=0.6) is None
    assert evidence.faces(key("a")) == 2  # still remembered: a later supporting face fuses all three
    fused = evidence.add(key("a"), None, probe(3), (Candidate("y", 0.5),), threshold=0.6)
    assert fused is not None
    expected = probe(1) + probe(2) + probe(3)
    np.testing.assert_allclose(fused, expected / np.linalg.norm(expected), atol=1e-6)


def test_tracks_the_node_ended_are_forgotten_in_their_session_only() -> None:
    evidence = TrackEvidence()
    evidence.add(("w1", "cam-1", "s", "a"), None, probe(1), ())
    evidence.add(("w1", "cam-1", "other", "a"), None, probe(2), ())
    evidence.add(("w1", "cam-2", "s", "a"), None, probe(3), ())
    (ended, *_) = evidence._tracks.values()
    assert evidence.forget("cam-1", "s", ["a", "never-seen"]) == 1
    assert set(evidence._tracks) == {("w1", "cam-1", "other", "a"), ("w1", "cam-2", "s", "a")}
    assert not ended.total.any()
