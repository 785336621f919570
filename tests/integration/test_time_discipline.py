"""Arming follows the store's clock, not each replica's own: two matcher replicas over one real PostgreSQL
database, one of them with a clock ten minutes slow (an injected Clock), as a replica whose NTP failed."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from sqlalchemy.engine import make_url

from lfr.bootstrap import Container, build_container
from lfr.domain.clock import Clock, SystemClock
from lfr.domain.observation import Observation, Outcome
from lfr.domain.principal import Principal, PrincipalKind, Role
from lfr.domain.window import WindowSpec
from lfr.services.watchlists import SubjectSpec
from tests.integration.conftest import matcher_config, unit
from tests.support import tiny_jpeg
from tests.tcp_proxy import proxy_to

DIM = 16
MODEL = "model-t"
ADMIN = Principal("sam", PrincipalKind.USER, frozenset({Role.SUPERVISOR, Role.ADMIN}))
SECOND = Principal("sue", PrincipalKind.USER, frozenset({Role.SUPERVISOR}))


class OffsetClock:
    """A replica's own clock, wrong by a fixed amount."""

    def __init__(self, base: Clock, offset: timedelta) -> None:
        self._base, self._offset = base, offset

    def now(self) -> datetime:
        return self._base.now() + self._offset


def observation(vector: np.ndarray) -> Observation:
    return Observation(
        "cam-1", datetime.now(UTC), "t1", MODEL, vector.astype(np.float32).copy(), bytearray(tiny_jpeg())
    )


@pytest.fixture
def replicas(postgres_store_url: str) -> Iterator[tuple[Container, Container]]:
    good = build_container(matcher_config(postgres_store_url))
    slow = build_container(
        matcher_config(postgres_store_url), clock=OffsetClock(SystemClock(), -timedelta(minutes=10))
    )
    try:
        yield good, slow
    finally:
        good.close()
        slow.close()


def window_ending_soon(container: Container, person: np.ndarray, seconds: float) -> str:
    watchlists = container.watchlists
    wl = watchlists.create("list", MODEL, DIM, ADMIN)
    watchlists.add_subject(
        wl.id, SubjectSpec("ref-1", "P1", "wanted", "warrant", "custody"), person[None, :], MODEL, ADMIN
    )
    watchlists.seal(wl.id, ADMIN)
    now = datetime.now(UTC)
    spec = WindowSpec(
        "find wanted people",
        "PACE s.1",
        "High St",
        frozenset({"cam-1"}),
        wl.id,
        0.8,
        now - timedelta(minutes=20),  # begun by either clock
        now + timedelta(seconds=seconds),
    )
    window = container.deployments.create(spec, ADMIN)
    container.deployments.authorise(window.id, SECOND)
    return window.id


def arming_records(container: Container, window_id: str) -> list[str]:
    with container.store() as uow:
        records = list(uow.audit.records())
    return [
        r.action
        for r in records
        if r.subject_id == window_id and r.action in ("window.armed", "window.disarmed")
    ]


def test_a_slow_replica_neither_matches_after_the_window_nor_flips_its_arming_records(replicas):
    good, slow = replicas
    person = unit(np.random.default_rng(3).normal(size=DIM))
    window_id = window_ending_soon(good, person, seconds=2.0)
    for replica in (good, slow, good, slow):
        replica.refresh_gate()
    time.sleep(2.3)  # past the window's end by the store's (and the good replica's) clock
    for _ in range(4):  # replicas that disagreed would re-record armed / disarmed on every refresh
        good.refresh_gate()
        slow.refresh_gate()

    [result] = slow.ingest.process([observation(person)])

    assert result.outcome is Outcome.NOT_ARMED
    assert arming_records(good, window_id) == ["window.armed", "window.disarmed"]


class AdjustableClock:
    def __init__(self) -> None:
        self.offset = timedelta(0)

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset


def replica_records(container: Container) -> list[tuple[str, dict[str, object]]]:
    with container.store() as uow:
        return [(r.action, r.details) for r in uow.audit.records() if r.subject_kind == "replica"]


def test_a_replica_whose_clock_disagrees_with_the_store_disarms_once_audited_until_it_agrees(
    postgres_store_url,
):
    own_clock = AdjustableClock()
    config = matcher_config(postgres_store_url, **{"matching.replica_name": "replica-b"})
    container = build_container(config, clock=own_clock)
    try:
        person = unit(np.random.default_rng(5).normal(size=DIM))
        window_ending_soon(container, person, seconds=3600)
        own_clock.offset = -timedelta(seconds=1.5)  # off, but within the 2 s allowed
        container.refresh_gate()
        [inside] = container.ingest.process([observation(person)])
        assert inside.outcome is Outcome.ALERT
        with container.store() as uow:
            raised_at = uow.alerts.get(inside.alert_id or "").raised_at
        assert abs(raised_at - datetime.now(UTC)) < timedelta(seconds=0.5)  # the store's time, not its own

        own_clock.offset = timedelta(seconds=30)
        for _ in range(3):
            container.refresh_gate()
        assert container.ingest.process([observation(person)])[0].outcome is Outcome.NOT_ARMED

        own_clock.offset = timedelta(0)
        container.refresh_gate()
        assert container.ingest.process([observation(person)])[0].outcome is Outcome.ALERT
        records = replica_records(container)
    finally:
        container.close()

    assert [action for action, _ in records] == ["matcher.disarmed", "matcher.rearmed"]
    disarmed = records[0][1]
    assert disarmed["reason"] == "clock_skew"
    assert 29_000 < int(disarmed["replica_clock_ahead_ms"]) < 31_000  # type: ignore[call-overload]


def test_a_disarm_while_the_store_was_unreachable_is_audited_once_it_is_back(postgres_store_url):
    url = make_url(postgres_store_url)
    with proxy_to(url.host or "127.0.0.1", url.port or 5432) as proxy:
        proxied = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
        container = build_container(matcher_config(proxied, **{"matching.replica_name": "replica-c"}))
        try:
            person = unit(np.random.default_rng(6).normal(size=DIM))
            window_ending_soon(container, person, seconds=3600)
            container.refresh_gate()
            assert container.monitor.gate().windows()

            proxy.cut()
            container.refresh_gate()
            assert container.monitor.gate().windows() == []
            assert container.ingest.process([observation(person)])[0].outcome is Outcome.NOT_ARMED
            proxy.restore()
            container.refresh_gate()
            container.refresh_gate()
            assert container.ingest.process([observation(person)])[0].outcome is Outcome.ALERT
            records = replica_records(container)
        finally:
            container.close()

    assert [(action, details["reason"]) for action, details in records] == [
        ("matcher.disarmed", "store_unreachable")
    ]
