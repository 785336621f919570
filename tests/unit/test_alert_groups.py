"""Repeat sightings grouped for the tablet: the rule by itself, then through the view service over the
in-memory store (what the page and the live feed both read)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from lfr.adapters.storage.memory import MemoryStore
from lfr.domain.alert import Alert
from lfr.domain.errors import NotFound
from lfr.domain.matching import Candidate
from lfr.domain.principal import Principal, PrincipalKind, Role
from lfr.domain.watchlist import Subject, TemplateImage, Watchlist
from lfr.domain.window import DeploymentWindow
from lfr.services.alert_groups import group_alerts, group_of
from lfr.services.alert_views import AlertViewService

T0 = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
FIVE_MIN = timedelta(minutes=5)
OFFICER = Principal("pc1", PrincipalKind.USER, frozenset({Role.OFFICER}))
STRANGER = Principal("pc9", PrincipalKind.USER, frozenset({Role.OFFICER}))

_sequence = iter(range(1, 10_000))


def sighting(
    alert_id: str,
    start_s: float,
    end_s: float | None = None,
    subject_id: str = "s-1",
    window_id: str = "win-1",
    score: float = 0.9,
    track_id: str | None = None,
) -> Alert:
    """An alert of one passage seen from `start_s` to `end_s` seconds after T0, raised in call order."""
    first = T0 + timedelta(seconds=start_s)
    last = T0 + timedelta(seconds=start_s if end_s is None else end_s)
    return Alert(
        id=alert_id,
        window_id=window_id,
        camera_id="cam-1",
        track_id=track_id or f"t-{alert_id}",
        subject_id=subject_id,
        score=score,
        threshold=0.8,
        candidates=(Candidate(subject_id, score),),
        captured_at=first,
        raised_at=first,
        crop_jpeg=b"",
        model_id="model-a",
        sequence=next(_sequence),
        first_seen_at=first,
        last_seen_at=last,
    )


def ids(groups: list) -> list[list[str]]:
    return [[a.id for a in g.alerts] for g in groups]


# --- the rule ------------------------------------------------------------------------------------------


def test_two_tracks_of_one_subject_within_the_interval_are_one_group() -> None:
    first = sighting("a", 0, 20, score=0.85)
    second = sighting("b", 200, 230, score=0.93)  # 180 s after the first passage ended
    [group] = group_alerts([first, second], FIVE_MIN)
    assert group.id == "a"
    assert [a.id for a in group.alerts] == ["a", "b"]
    assert group.first_seen_at == T0
    assert group.last_seen_at == T0 + timedelta(seconds=230)
    assert group.best.id == "b"


def test_a_sighting_beyond_the_interval_starts_a_new_group() -> None:
    first = sighting("a", 0, 20)
    second = sighting("b", 20 + 301)
    assert ids(group_alerts([first, second], FIVE_MIN)) == [["a"], ["b"]]


def test_the_gap_is_measured_from_the_end_of_the_group_so_far() -> None:
    # Each passage follows the previous one within the interval: one group, although the first and the
    # last are ten minutes apart.
    chain = [sighting(f"a{n}", n * 200) for n in range(4)]
    assert ids(group_alerts(chain, FIVE_MIN)) == [["a0", "a1", "a2", "a3"]]


def test_different_subjects_or_windows_are_never_grouped() -> None:
    alerts = [
        sighting("a", 0),
        sighting("b", 10, subject_id="s-2"),
        sighting("c", 20, window_id="win-2"),
        sighting("d", 30),
    ]
    assert ids(group_alerts(alerts, FIVE_MIN)) == [["a", "d"], ["b"], ["c"]]


def test_an_interval_of_zero_groups_nothing() -> None:
    alerts = [sighting("a", 0, 10), sighting("b", 5, 15)]  # even overlapping passages
    assert ids(group_alerts(alerts, timedelta(0))) == [["a"], ["b"]]


def test_a_late_alert_of_an_earlier_passage_joins_by_its_own_times() -> None:
    # A camera whose alert arrived late: raised after "b", seen before it, still within the interval.
    first = sighting("a", 0)
    second = sighting("b", 100)
    late = sighting("c", 50)
    assert ids(group_alerts([first, second, late], FIVE_MIN)) == [["a", "b", "c"]]


def test_the_best_of_equal_scores_is_the_earliest() -> None:
    [group] = group_alerts([sighting("a", 0, score=0.9), sighting("b", 10, score=0.9)], FIVE_MIN)
    assert group.best.id == "a"


def test_a_new_alert_never_moves_an_earlier_one_to_another_group() -> None:
    earlier = [sighting("a", 0), sighting("b", 400), sighting("c", 500)]
    before = {a.id: g.id for g in group_alerts(earlier, FIVE_MIN) for a in g.alerts}
    newest = sighting("d", 550)
    after = {a.id: g.id for g in group_alerts([*earlier, newest], FIVE_MIN) for a in g.alerts}
    assert before == {"a": "a", "b": "b", "c": "b"}
    assert after == {**before, "d": "b"}
    assert group_of(newest, earlier, FIVE_MIN).id == "b"
    assert group_of(earlier[0], earlier, FIVE_MIN).id == "a"  # later alerts are not looked at


# --- through the view service -------------------------------------------------------------------------


def deployment(interval: timedelta, images: int = 3) -> tuple[MemoryStore, AlertViewService]:
    store = MemoryStore()
    jpegs = [bytes([0xFF, 0xD8, n]) for n in range(images)]
    with store() as uow:
        uow.watchlists.add(Watchlist("wl-1", "list", "model-a", 2, "sup", T0))
        # As enrolment stores it: the reference image is the first template's.
        uow.watchlists.add_subject(
            Subject("s-1", "wl-1", "REF-1", "Jo Bloggs", "wanted", "warrant", "custody", jpegs[0]),
            np.eye(2, dtype=np.float32)[[0] * images],
            [TemplateImage(f"photo {n}", jpeg) for n, jpeg in enumerate(jpegs)],
        )
        uow.watchlists.add_subject(
            Subject("s-2", "wl-1", "REF-2", "Al Smith", "missing", "welfare", "custody"),
            np.eye(2, dtype=np.float32)[1:],
        )
        for window_id, assigned in (("win-1", {"pc1"}), ("win-2", {"pc9"})):
            uow.windows.add(
                DeploymentWindow(
                    window_id,
                    "find wanted people",
                    "PACE s.1",
                    "High St",
                    frozenset({"cam-1"}),
                    "wl-1",
                    "ab" * 32,
                    "model-a",
                    0.8,
                    T0 - timedelta(hours=1),
                    T0 + timedelta(hours=1),
                    "sup",
                    T0 - timedelta(hours=1),
                    assigned_users=frozenset(assigned),
                )
            )
        uow.commit()
    return store, AlertViewService(store, interval)


def raise_all(store: MemoryStore, *alerts: Alert) -> list[Alert]:
    with store() as uow:
        added = [uow.alerts.add(a) for a in alerts]
        uow.commit()
    return added


def test_cards_and_the_live_feed_name_the_same_group() -> None:
    store, views = deployment(FIVE_MIN)
    first, other, second = raise_all(
        store, sighting("a", 0, 30), sighting("x", 10, subject_id="s-2"), sighting("b", 120)
    )
    assert {c.alert.id: c.group_id for c in views.cards(OFFICER)} == {"a": "a", "x": "x", "b": "a"}
    # The live feed describes each alert as it arrives: the same groups.
    assert [views.describe(a).group_id for a in (first, other, second)] == ["a", "x", "a"]
    # A page that starts after the first alert still puts the second on the first one's card.
    assert [c.group_id for c in views.cards(OFFICER, after_sequence=other.sequence)] == ["a"]
    [third] = raise_all(store, sighting("c", 120 + 301))
    assert views.describe(third).group_id == "c"


def test_an_interval_of_zero_gives_every_card_its_own_group() -> None:
    store, views = deployment(timedelta(0))
    _, second = raise_all(store, sighting("a", 0), sighting("b", 1))
    assert [c.group_id for c in views.cards(OFFICER)] == ["a", "b"]
    assert views.describe(second).group_id == "b"


def test_a_card_lists_every_reference_image_of_its_subject_once() -> None:
    store, views = deployment(FIVE_MIN, images=3)
    listed, unlisted_images = raise_all(store, sighting("a", 0), sighting("x", 0, subject_id="s-2"))
    card = views.card(listed.id, OFFICER)
    # The reference image is the first template's: shown once, under the subject's image source.
    assert card.reference_provenances == ("custody", "photo 1", "photo 2")
    assert [views.reference_image("a", OFFICER, n)[2] for n in range(3)] == [0, 1, 2]
    with pytest.raises(NotFound):
        views.reference_image("a", OFFICER, 3)
    assert views.card(unlisted_images.id, OFFICER).reference_provenances == ()
    with pytest.raises(NotFound):
        views.reference_image("x", OFFICER, 0)


def test_reference_images_of_an_alert_the_reader_may_not_see_do_not_exist() -> None:
    store, views = deployment(FIVE_MIN)
    [elsewhere] = raise_all(store, sighting("w2", 0, window_id="win-2"))
    with pytest.raises(NotFound, match="no alert w2"):
        views.reference_image(elsewhere.id, OFFICER, 0)
    assert views.reference_image(elsewhere.id, STRANGER, 0) == bytes([0xFF, 0xD8, 0])
