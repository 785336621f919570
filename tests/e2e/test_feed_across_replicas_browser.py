"""Two `lfr serve` replicas over one PostgreSQL database, in a real headless Chromium: a camera's match
raised on replica A and a decision made over gRPC on A appear on a tablet attached to replica B; a
supervisor closing the window from B's tablet disarms both replicas within a second."""

from __future__ import annotations

import time
from contextlib import AsyncExitStack
from datetime import UTC, datetime

import grpc
import numpy as np
import pytest

from lfr.adapters.passwords import Argon2Hasher
from lfr.bootstrap import Container, build_container, running_matcher, serving_tablet
from lfr.services.passwords import PasswordService
from lfr.v1 import control_pb2 as pb
from lfr.v1 import ingest_pb2 as ipb
from tests.browser import CHROMIUM, CHROMIUM_ARGS, require_chromium
from tests.e2e.test_tablet_browser import LANDSCAPE, PORTRAIT, signed_in_tab
from tests.integration.conftest import DIM, World, make_accounts, matcher_config, observation, unit
from tests.tablet_support import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.postgres]


def armed(container: Container) -> bool:
    return container.monitor.gate().armed_window("cam-1", datetime.now(UTC)) is not None


async def test_decision_over_grpc_on_a_reaches_a_tablet_on_b_and_closing_from_b_disarms_both(
    postgres_store_url,
):
    require_chromium()
    from playwright.async_api import async_playwright

    config = matcher_config(postgres_store_url, **{"tablet.listen": "127.0.0.1:0"})
    problems: list[str] = []
    async with AsyncExitStack() as stack:
        a, b = build_container(config), build_container(config)
        stack.callback(b.close)
        stack.callback(a.close)
        tokens = make_accounts(a)
        passwords = PasswordService(a.store, a.clock, Argon2Hasher.fast_for_tests())
        for name in ("olly", "sam"):
            passwords.set_password(name, PASSWORD, "test-setup")
        running_a = await stack.enter_async_context(running_matcher(a, extensions=[serving_tablet]))
        await stack.enter_async_context(running_matcher(b, extensions=[serving_tablet]))
        channel = await stack.enter_async_context(grpc.aio.insecure_channel(f"127.0.0.1:{running_a.port}"))
        rng = np.random.default_rng(7)
        world = World(
            a, running_a.port, tokens, [unit(rng.normal(size=DIM)) for _ in range(2)], rng, channel, running_a
        )
        window = await world.armed_window()  # through replica A's gRPC API
        started = time.monotonic()
        while not armed(b):  # B hears of the authorisation by NOTIFY, not at its next timed refresh
            assert time.monotonic() - started < 2.0
            await _pause()

        playwright = await stack.enter_async_context(async_playwright())
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        stack.push_async_callback(browser.close)
        tablet_b = f"http://127.0.0.1:{b.tablet_port}"
        olly = await signed_in_tab(browser, tablet_b, "olly", PORTRAIT, problems)

        [answer] = await world.stream("cam-1", [[observation(1, world.people[0])]])  # raised on A
        alert_id = answer.results[0].alert_id
        assert answer.results[0].outcome == ipb.OUTCOME_ALERT
        card = olly.locator(f'#open-alerts article[data-alert-id="{alert_id}"]')
        await card.wait_for(timeout=5000)
        assert (
            "compare the faces" in await card.locator(".score-words").inner_text()
            or await card.locator(".score-words").inner_text()
        )

        decided = await world.alerts.Adjudicate(  # over gRPC, on replica A
            pb.AdjudicateRequest(
                alert_id=alert_id, outcome=pb.ADJUDICATION_FALSE_ALERT, notes="not him", expected_version=1
            ),
            metadata=world.md("olly"),
        )
        assert decided.version == 2
        moved = olly.locator(f'#decided-alerts article[data-alert-id="{alert_id}"]')
        await moved.wait_for(timeout=5000)  # no reload: B's feed heard A's commit
        assert await moved.locator(".state-badge").inner_text() == "False alert"
        assert "not him" in await moved.locator(".decision").inner_text()

        context = await browser.new_context(viewport=LANDSCAPE, base_url=tablet_b)
        sam = await context.new_page()
        sam.on("pageerror", lambda e: problems.append(f"sam: {e}"))
        await sam.goto("/login")
        await sam.get_by_label("Name").fill("sam")
        await sam.get_by_label("Password").fill(PASSWORD)
        await sam.get_by_role("button", name="Sign in").click()
        await sam.wait_for_url("**/deployments")
        panel = sam.locator(f'article[data-window-id="{window.id}"]')
        await panel.wait_for(timeout=5000)
        await sam.locator('#chain-status[data-ok="true"]').wait_for(timeout=5000)
        await panel.get_by_label("Reason for closing now").fill("suspect located; operation over")
        await panel.get_by_role("button", name="Close window now").click()
        started = time.monotonic()
        # From the click: the tablet's request, the commit on B, B's own refresh and A's NOTIFY.
        while armed(a) or armed(b):
            assert time.monotonic() - started < 1.0, (armed(a), armed(b))
            await _pause()
        await panel.locator(".message", has_text="Closed").wait_for(timeout=5000)
        [after] = await world.stream("cam-1", [[observation(2, world.people[0])]])
        assert after.results[0].outcome == ipb.OUTCOME_NOT_ARMED
        with a.store() as uow:
            [closed] = [r for r in uow.audit.records() if r.action == "window.closed"]
    assert (closed.actor, closed.details["reason"]) == ("sam", "suspect located; operation over")
    assert problems == []


async def _pause() -> None:
    import asyncio

    await asyncio.sleep(0.02)
