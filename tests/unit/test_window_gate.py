"""The arming gate: armed only inside an authorised, unclosed window listing the camera; anything else is
disarmed."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lfr.domain.errors import Conflict, InvalidWindow
from lfr.domain.window import ArmingGate, DeploymentWindow, WindowSpec, WindowState

T0 = datetime(2026, 11, 21, 9, 0, tzinfo=UTC)


def spec(**changes: object) -> WindowSpec:
    base = WindowSpec(
        "locate wanted",
        "PACE",
        "Market Sq",
        frozenset({"cam-1", "cam-2"}),
        "wl_1",
        0.6,
        T0,
        T0 + timedelta(hours=3),
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def window(**changes: object) -> DeploymentWindow:
    base = DeploymentWindow(
        "win_1",
        "p",
        "lb",
        "loc",
        frozenset({"cam-1", "cam-2"}),
        "wl_1",
        "h" * 64,
        "m",
        0.6,
        T0,
        T0 + timedelta(hours=3),
        "sup",
        T0 - timedelta(hours=1),
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"ends_at": T0}, "end must be after start"),
        ({"ends_at": T0 - timedelta(minutes=1)}, "end must be after start"),
        ({"threshold": 1.2}, "outside [0, 1]"),
        ({"threshold": -0.1}, "outside [0, 1]"),
        ({"threshold": float("nan")}, "outside [0, 1]"),
        ({"camera_ids": frozenset()}, "camera id"),
        ({"purpose": "  "}, "purpose is required"),
        ({"legal_basis": ""}, "legal basis is required"),
        ({"starts_at": datetime(2026, 11, 21, 9, 0)}, "timezone-aware"),
        ({"ends_at": T0 + timedelta(hours=25)}, "at most"),
    ],
)
def test_invalid_window_specs_are_refused_with_the_reason(changes, message):
    with pytest.raises(InvalidWindow, match=message.replace("[", r"\[").replace("]", r"\]")):
        spec(**changes).validate()


def test_a_valid_spec_passes():
    spec().validate()


def test_pending_window_arms_nothing():
    gate = ArmingGate([window()])
    assert gate.armed_window("cam-1", T0 + timedelta(minutes=5)) is None


def test_authorised_window_arms_only_its_cameras_only_during_its_time():
    armed = window().authorise("boss", T0 - timedelta(minutes=5))
    gate = ArmingGate([armed])
    assert gate.armed_window("cam-1", T0) == armed
    assert gate.armed_window("cam-2", T0 + timedelta(hours=2, minutes=59)) == armed
    assert gate.armed_window("cam-3", T0 + timedelta(minutes=1)) is None
    assert gate.armed_window("cam-1", T0 - timedelta(microseconds=1)) is None
    assert gate.armed_window("cam-1", T0 + timedelta(hours=3)) is None


def test_closed_window_arms_nothing():
    closed = window().authorise("boss", T0).close("boss", T0 + timedelta(minutes=1), "done")
    assert ArmingGate([closed]).armed_window("cam-1", T0 + timedelta(minutes=2)) is None


def test_two_armed_windows_for_one_camera_fail_closed():
    a = window().authorise("boss", T0)
    b = window(id="win_2").authorise("boss", T0)
    assert ArmingGate([a, b]).armed_window("cam-1", T0 + timedelta(minutes=1)) is None


def test_disarmed_gate_arms_nothing():
    assert ArmingGate.disarmed().armed_window("cam-1", T0) is None


def test_lifecycle_transitions_are_enforced():
    authorised = window().authorise("boss", T0)
    with pytest.raises(Conflict):
        authorised.authorise("boss", T0)
    closed = authorised.close("boss", T0, "x")
    with pytest.raises(Conflict):
        closed.close("boss", T0, "x")
    with pytest.raises(Conflict):
        closed.authorise("boss", T0)
    with pytest.raises(Conflict, match="ended"):
        window().authorise("boss", T0 + timedelta(hours=3))
    assert (authorised.version, closed.version) == (2, 3)
    assert closed.state is WindowState.CLOSED


@given(
    offset_s=st.integers(min_value=-4 * 3600, max_value=4 * 3600),
    state=st.sampled_from(list(WindowState)),
    camera=st.sampled_from(["cam-1", "cam-2", "cam-9"]),
)
def test_gate_arms_exactly_when_all_conditions_hold(offset_s, state, camera):
    w = window(state=state)
    now = T0 + timedelta(seconds=offset_s)
    expected = state is WindowState.AUTHORISED and camera in w.camera_ids and w.starts_at <= now < w.ends_at
    assert (ArmingGate([w]).armed_window(camera, now) is not None) == expected


def test_overlap_needs_shared_camera_and_time():
    a = window()
    assert a.overlaps(window(id="b", camera_ids=frozenset({"cam-2", "cam-7"})))
    assert not a.overlaps(window(id="c", camera_ids=frozenset({"cam-7"})))
    assert not a.overlaps(window(id="d", starts_at=T0 + timedelta(hours=3), ends_at=T0 + timedelta(hours=4)))
