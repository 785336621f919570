"""Password guessing at the tablet cannot lock a real officer out, and the client address the throttle
counts cannot be forged: per (address, name) back-off, and X-Forwarded-For believed only from the proxies
in `tablet.forwarded_allow_ips` (none by default). Real uvicorn on 127.0.0.1 throughout."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from lfr.adapters.passwords import Argon2Hasher
from lfr.bootstrap import build_container, running_matcher, serving_tablet
from lfr.domain.clock import ManualClock
from lfr.domain.principal import PrincipalKind, Role
from lfr.services.passwords import PasswordService
from tests.integration.conftest import matcher_config
from tests.integration.test_tablet_api import audit, client_for, serve, sign_in
from tests.tablet_support import PASSWORD, build_world, csrf_from

START = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)
ATTACKER, OFFICER = {"X-Forwarded-For": "10.0.0.66"}, {"X-Forwarded-For": "10.0.0.7"}


@pytest.fixture
def world():
    # tests/tablet_support serves under uvicorn's defaults, which believe X-Forwarded-For from
    # 127.0.0.1: here that stands for the deployment's reverse proxy.
    w = build_world(ManualClock(START))
    w.add_user("olivia", Role.OFFICER)
    yield from serve(w)


def test_a_guesser_elsewhere_cannot_lock_the_officer_out_and_waits_longer_each_time(world):
    attacker, officer = client_for(world), client_for(world)
    for _ in range(5):
        assert sign_in(attacker, "olivia", "guess", **ATTACKER).status_code == 401
    for _ in range(20):  # refused before the password check: not even the right one gets through
        refused = sign_in(attacker, "olivia", PASSWORD, **ATTACKER)
        assert refused.status_code == 429
    assert refused.headers["retry-after"] == "30"

    assert sign_in(officer, "olivia", **OFFICER).status_code == 303  # the officer is not locked out

    world.clock.advance(timedelta(seconds=30))
    assert sign_in(attacker, "olivia", "guess", **ATTACKER).status_code == 401
    assert sign_in(attacker, "olivia", "guess", **ATTACKER).headers["retry-after"] == "60"  # doubled
    warnings = audit(world, "policy.warning")
    assert [(r.details["by"], r.details["address"]) for r in warnings] == [("address_and_name", "10.0.0.66")]


@pytest.mark.parametrize(
    ("change", "args"), [("disable", ()), ("remove", ()), ("set_roles", ([Role.AUDITOR],))]
)
def test_disabling_removing_or_re_roling_an_officer_ends_their_tablet_session(world, change, args):
    officer = client_for(world, "olivia")
    assert officer.get("/api/alerts").status_code == 200
    getattr(world.services.principals, change)("olivia", *args, actor="admin")
    assert officer.get("/api/alerts").status_code == 401


@pytest.fixture
async def tablet_url(sqlite_url: str, request: pytest.FixtureRequest) -> AsyncIterator[str]:
    overrides = {"tablet.listen": "127.0.0.1:0", **getattr(request, "param", {})}
    container = build_container(matcher_config(sqlite_url, **overrides))
    container.principals.create("olivia", PrincipalKind.USER, [Role.OFFICER], "test")
    PasswordService(container.store, container.clock, Argon2Hasher()).set_password("olivia", PASSWORD, "test")
    try:
        async with running_matcher(container, extensions=[serving_tablet]):
            yield f"http://127.0.0.1:{container.tablet_port}"
    finally:
        container.close()


async def guess(client: httpx.AsyncClient, name: str, password: str, headers: dict[str, str]) -> int:
    token = csrf_from((await client.get("/login")).text)
    response = await client.post(
        "/login", data={"username": name, "password": password, "csrf_token": token}, headers=headers
    )
    return response.status_code


async def test_lfr_serve_ignores_forged_forwarded_for_by_default(tablet_url):
    async with httpx.AsyncClient(base_url=tablet_url, timeout=60) as client:
        codes = [
            await guess(client, f"guess-{i}", "wrong", {"X-Forwarded-For": f"10.9.{i}.1"}) for i in range(21)
        ]
    assert codes[:20] == [401] * 20
    assert codes[20] == 429  # all from 127.0.0.1, whatever the header claimed


@pytest.mark.parametrize("tablet_url", [{"tablet.forwarded_allow_ips": "127.0.0.1"}], indirect=True)
async def test_lfr_serve_believes_forwarded_for_from_a_configured_proxy(tablet_url):
    async with httpx.AsyncClient(base_url=tablet_url, timeout=60) as client:
        for i in range(20):
            assert await guess(client, f"guess-{i}", "wrong", ATTACKER) == 401
        assert await guess(client, "olivia", PASSWORD, ATTACKER) == 429
        assert await guess(client, "olivia", PASSWORD, OFFICER) == 303
