"""bench.street_clip's own parts without models: who crosses when and where, and how alerts are counted."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from bench.street_clip import (
    RUNNING_S,
    WALKING_S,
    StoredAlert,
    StreetPlan,
    attribute,
    cards_of,
    pick_cast,
    plan_street,
)


def test_cast_enrols_listed_people_from_another_image_than_the_one_they_walk_in(tmp_path: Path) -> None:
    (tmp_path / "manifest.csv").write_text(
        "path,identity\n"
        + "".join(f"images/p{n}/{k}.jpg,p{n}\n" for n in range(12) for k in range(1 + n % 3))
    )
    cast = pick_cast(tmp_path, passers=10, listed=3, seed=4, usable=lambda _: True)
    assert len(cast.people) == 10
    assert len(cast.listed) == len(cast.enrolment) == 3
    enrolled = {row.reference: tmp_path / row.image_path for row in cast.enrolment}
    for person in cast.listed:
        (walk,) = person.walk_images
        assert walk != enrolled[person.key]
        assert walk.parent == enrolled[person.key].parent  # the same identity
    identities = [p.walk_images[0].parent.name for p in cast.people]
    assert len(set(identities)) == 10


@pytest.fixture
def plan(tmp_path: Path) -> StreetPlan:
    (tmp_path / "manifest.csv").write_text(
        "path,identity\n" + "".join(f"images/p{n}/{k}.jpg,p{n}\n" for n in range(80) for k in range(2))
    )
    return plan_street(pick_cast(tmp_path, 60, 8, seed=2, usable=lambda _: True), fps=10.0, seed=2)


def test_passers_overlap_in_time_but_never_share_a_row(plan: StreetPlan) -> None:
    assert len(plan.crossings) == 60
    for a, b in itertools.combinations(plan.crossings, 2):
        if a.row == b.row:
            assert a.end_s <= b.start_s or b.end_s <= a.start_s
    on_screen = [sum(c.on_screen(t / 10) for c in plan.crossings) for t in range(int(plan.duration_s * 10))]
    assert max(on_screen) >= 3
    assert any(c.running for c in plan.crossings)
    for c in plan.crossings:
        low, high = RUNNING_S if c.running else WALKING_S
        assert low <= c.duration_s <= high


def alert(reference: str, at: float, track: str = "t1") -> StoredAlert:
    return StoredAlert(reference, track, at, at, at, 1)


def test_alerts_count_per_passage_cards_group_a_subject_within_300_s_and_off_screen_ones_are_false(
    plan: StreetPlan,
) -> None:
    listed = [c for c in plan.crossings if c.walk.person.listed]
    first, second = listed[0], listed[1]
    middle = (first.start_s + first.end_s) / 2
    alerts = [
        alert(first.walk.person.key, middle, "t1"),
        alert(first.walk.person.key, middle + 0.2, "t2"),  # a second track of the same passage
        alert(second.walk.person.key, first.start_s - 30),  # nobody of that name on screen
    ]
    passages, false_alerts = attribute(plan, alerts)
    by_reference = {p.reference: p for p in passages}
    assert len(by_reference[first.walk.person.key].alerts) == 2
    assert by_reference[first.walk.person.key].cards == 1
    assert not by_reference[second.walk.person.key].alerts
    assert false_alerts == [alerts[2]]


def test_a_subjects_alerts_more_than_300_s_apart_are_two_cards() -> None:
    cards = cards_of([alert("A", 0), alert("B", 10), alert("A", 299), alert("A", 301)])
    assert cards[0] == cards[2] != cards[3]
    assert cards[1] not in (cards[0], cards[3])
