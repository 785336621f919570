"""Alert state machine: a person decides, once; a confirmed match may need a second, different person."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lfr.domain.alert import Adjudication, Alert, AlertState
from lfr.domain.errors import AlreadyAdjudicated, Conflict, InvalidInput, PermissionDenied
from lfr.domain.matching import Candidate

T0 = datetime(2026, 11, 21, 9, 0, tzinfo=UTC)


def raised() -> Alert:
    return Alert(
        "alr_1",
        "win_1",
        "cam-1",
        "t1",
        "sub_1",
        0.71,
        0.6,
        (Candidate("sub_1", 0.71),),
        T0,
        T0 + timedelta(milliseconds=20),
        b"jpeg",
        "m",
    )


@pytest.mark.parametrize("outcome", list(Adjudication))
def test_single_adjudication_decides(outcome):
    decided = raised().adjudicate(outcome, "pc1", T0, "seen at bus stop")
    assert (decided.state, decided.outcome, decided.adjudicated_by, decided.version) == (
        AlertState.ADJUDICATED,
        outcome,
        "pc1",
        2,
    )


def test_adjudicating_twice_is_refused_and_names_the_first_decision():
    decided = raised().adjudicate(Adjudication.FALSE_ALERT, "pc1", T0)
    with pytest.raises(AlreadyAdjudicated, match="pc1"):
        decided.adjudicate(Adjudication.CONFIRMED, "pc2", T0)


def test_two_person_rule_holds_confirmation_until_a_second_officer_agrees():
    pending = raised().adjudicate(Adjudication.CONFIRMED, "pc1", T0, two_person=True)
    assert pending.state is AlertState.AWAITING_VERIFICATION
    with pytest.raises(PermissionDenied):
        pending.verify("pc1", T0, agree=True)
    with pytest.raises(AlreadyAdjudicated):
        pending.adjudicate(Adjudication.FALSE_ALERT, "pc2", T0)
    verified = pending.verify("pc2", T0, agree=True)
    assert (verified.state, verified.outcome, verified.verified_by) == (
        AlertState.ADJUDICATED,
        Adjudication.CONFIRMED,
        "pc2",
    )


def test_two_person_rule_does_not_delay_a_false_alert():
    assert raised().adjudicate(Adjudication.FALSE_ALERT, "pc1", T0, two_person=True).state is (
        AlertState.ADJUDICATED
    )


def test_disagreement_returns_the_alert_for_a_fresh_decision():
    pending = raised().adjudicate(Adjudication.CONFIRMED, "pc1", T0, two_person=True)
    back = pending.verify("pc2", T0, agree=False)
    assert (back.state, back.outcome, back.adjudicated_by) == (AlertState.RAISED, None, None)
    assert back.adjudicate(Adjudication.NOT_ENGAGED, "pc3", T0).state is AlertState.ADJUDICATED


def test_verify_without_pending_confirmation_is_a_conflict():
    with pytest.raises(Conflict):
        raised().verify("pc2", T0, agree=True)


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["adjudicate", "verify"]),
            st.sampled_from(list(Adjudication)),
            st.sampled_from(["pc1", "pc2"]),
            st.booleans(),
        ),
        max_size=8,
    ),
    st.booleans(),
)
def test_any_sequence_keeps_the_invariants(steps, two_person):
    alert = raised()
    for action, outcome, who, agree in steps:
        before = alert
        try:
            alert = (
                alert.adjudicate(outcome, who, T0, two_person=two_person)
                if action == "adjudicate"
                else alert.verify(who, T0, agree)
            )
        except (Conflict, PermissionDenied):
            assert alert is before
            continue
        assert alert.version == before.version + 1
        if alert.state is AlertState.ADJUDICATED and alert.outcome is Adjudication.CONFIRMED and two_person:
            assert alert.verified_by not in (None, alert.adjudicated_by)
        if alert.state is AlertState.RAISED:
            assert alert.outcome is None


def test_an_amendment_keeps_the_original_decider_and_needs_a_reason():
    decided = raised().adjudicate(Adjudication.CONFIRMED, "pc1", T0, "stopped him")
    amended = decided.amend(Adjudication.FALSE_ALERT, "sgt1", T0 + timedelta(hours=1), " CCTV review ")
    assert (amended.state, amended.outcome, amended.adjudicated_by, amended.notes) == (
        AlertState.ADJUDICATED,
        Adjudication.FALSE_ALERT,
        "pc1",
        "stopped him",
    )
    assert (amended.amended_by, amended.amendment_reason, amended.version) == ("sgt1", "CCTV review", 3)
    with pytest.raises(InvalidInput):
        decided.amend(Adjudication.FALSE_ALERT, "sgt1", T0, "  ")
    with pytest.raises(Conflict):
        raised().amend(Adjudication.FALSE_ALERT, "sgt1", T0, "not decided yet")
