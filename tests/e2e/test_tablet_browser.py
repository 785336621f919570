"""The tablet in a real headless Chromium: an alert raised by the matcher appears live, the officer
decides it, the audit log records it, and an officer from elsewhere never sees it.

The first flow runs the whole `lfr serve` composition (gRPC ingest + tablet in one loop); the others use
the in-process matcher for screenshots and the reconnect check."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import grpc
import numpy as np
import pytest

from lfr.adapters.passwords import Argon2Hasher
from lfr.adapters.tablet.app import close_feeds
from lfr.bootstrap import build_container, running_matcher, serving_tablet
from lfr.domain.clock import SystemClock
from lfr.domain.principal import Role
from lfr.services.deployment_overview import StreamState
from lfr.services.passwords import PasswordService
from tests.browser import CHROMIUM, CHROMIUM_ARGS, require_chromium
from tests.integration.conftest import DIM, World, make_accounts, matcher_config, observation, unit
from tests.tablet_support import PASSWORD, LiveServer, build_world

pytestmark = pytest.mark.browser

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
PORTRAIT = {"width": 800, "height": 1280}
LANDSCAPE = {"width": 1280, "height": 800}


@pytest.fixture(scope="module")
def browser():
    require_chromium()
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def served():
    clock = SystemClock()
    # What the matcher would report: cam-1 streaming now, cam-2 gone for a minute and a half.
    links = {
        "cam-1": StreamState(True, clock.now()),
        "cam-2": StreamState(False, clock.now() - timedelta(seconds=90)),
    }
    world = build_world(clock, officers=frozenset({"olivia"}), open_streams=lambda: links)
    world.add_user("olivia", Role.OFFICER)
    world.add_user("oscar", Role.OFFICER)
    world.add_user("sam", Role.SUPERVISOR)
    app = world.app()
    with LiveServer(app) as base_url:
        yield world, app, base_url


def signed_in_page(browser, base_url: str, name: str, viewport: dict[str, int], problems: list[str]):
    context = browser.new_context(viewport=viewport, base_url=base_url, has_touch=True)
    page = context.new_page()
    page.on("console", lambda m: problems.append(f"{name}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(f"{name}: {e}"))
    page.goto("/login")
    page.get_by_label("Name").fill(name)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/alerts" if name != "sam" else "**/deployments")
    page.locator('[data-state="live"]').first.wait_for(timeout=5000)
    return page


@pytest.fixture
async def matcher():
    """`lfr serve` as composed by bootstrap: gRPC matcher and tablet app in one event loop."""
    config = matcher_config(**{"tablet.listen": "127.0.0.1:0"})
    container = build_container(config)
    tokens = make_accounts(container)
    passwords = PasswordService(container.store, container.clock, Argon2Hasher.fast_for_tests())
    for name in ("olly", "otto"):
        passwords.set_password(name, PASSWORD, "test-setup")
    rng = np.random.default_rng(5)
    people = [unit(rng.normal(size=DIM)) for _ in range(2)]
    async with (
        running_matcher(container, extensions=[serving_tablet]) as running,
        grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel,
    ):
        world = World(container, running.port, tokens, people, rng, channel, running)
        yield world, f"http://127.0.0.1:{container.tablet_port}"
    container.close()


async def signed_in_tab(browser, base_url: str, name: str, viewport: dict[str, int], problems: list[str]):
    context = await browser.new_context(viewport=viewport, base_url=base_url, has_touch=True)
    page = await context.new_page()
    page.on("console", lambda m: problems.append(f"{name}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(f"{name}: {e}"))
    await page.goto("/login")
    await page.get_by_label("Name").fill(name)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url("**/alerts")
    await page.locator('#feed-status[data-state="live"]').wait_for(timeout=5000)
    return page


async def test_camera_match_over_grpc_reaches_the_officer_who_decides_it(matcher):
    """Camera node -> gRPC ingest -> FAISS -> durable alert -> SSE -> Chromium -> decision -> audit."""
    require_chromium()
    from playwright.async_api import async_playwright

    world, base_url = matcher
    await world.build_watchlist()
    window = await world.armed_window()  # assigned to olly only; otto is an officer elsewhere
    problems: list[str] = []
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        olly = await signed_in_tab(browser, base_url, "olly", PORTRAIT, problems)
        otto = await signed_in_tab(browser, base_url, "otto", LANDSCAPE, problems)

        [answer] = await world.stream("cam-1", [[observation(1, world.people[1])]])
        alert_id = answer.results[0].alert_id
        assert alert_id
        card = olly.locator(f'article[data-alert-id="{alert_id}"]')
        await card.wait_for(timeout=5000)  # pushed by the live feed: no reload
        assert await card.locator(".location").inner_text() == "High St"
        assert await card.locator(".camera").inner_text() == "cam-1"
        group = olly.locator(f'article.card[data-group-id="{alert_id}"]')  # its own group: the first
        assert "Person 1" in await group.locator(".subject").inner_text()
        assert "New alert" in await olly.locator("#announcer").inner_text()
        await group.locator(".probe").evaluate("img => img.decode()")

        await card.get_by_label("Notes (optional)").fill("not the person")
        await card.get_by_role("button", name="False alert").click()
        decided = olly.locator(f'#decided-alerts article[data-alert-id="{alert_id}"]')
        await decided.wait_for(timeout=5000)
        assert await decided.locator(".state-badge").inner_text() == "False alert"

        assert await otto.locator("article.card").count() == 0
        assert (await otto.request.get(f"/api/alerts/{alert_id}")).status == 404
        await browser.close()

    with world.container.store() as uow:
        trail = [(r.action, r.actor) for r in uow.audit.records() if r.subject_id == alert_id]
    assert trail[0] == ("alert.raised", "system")
    assert ("alert.consulted", "olly") in trail
    assert trail[-1] == ("alert.adjudicated", "olly")
    assert not [actor for _, actor in trail if actor == "otto"]
    assert window.id
    assert problems == []


def test_officer_sees_alert_live_decides_it_and_it_is_audited(browser, served):
    world, _app, base_url = served
    problems: list[str] = []
    olivia = signed_in_page(browser, base_url, "olivia", PORTRAIT, problems)
    oscar = signed_in_page(browser, base_url, "oscar", LANDSCAPE, problems)
    assert olivia.locator("article.card").count() == 0

    alert_id = world.observe(0).alert_id  # through the matcher: real FAISS search, durable alert
    card = olivia.locator(f'article[data-alert-id="{alert_id}"]')
    card.wait_for(timeout=5000)  # no reload: the feed delivered it
    group = olivia.locator(f'article.card[data-group-id="{alert_id}"]')
    assert "New alert" in olivia.locator("#announcer").inner_text()
    assert group.locator(".category").inner_text() == "Wanted on warrant"
    assert card.locator(".location").inner_text() == "High Street north"
    assert card.locator(".threshold").inner_text() == "threshold 0.800"
    assert "raised" in group.locator(".ago").inner_text()
    for image in (".probe", ".reference"):
        group.locator(image).evaluate("img => img.decode()")
        assert group.locator(image).evaluate("img => img.naturalWidth") > 0

    ARTIFACTS.mkdir(exist_ok=True)
    group.screenshot(path=ARTIFACTS / "tablet-alert-portrait.png")
    olivia.screenshot(path=ARTIFACTS / "tablet-feed-portrait.png")
    olivia.set_viewport_size(LANDSCAPE)
    group.screenshot(path=ARTIFACTS / "tablet-alert-landscape.png")
    olivia.screenshot(path=ARTIFACTS / "tablet-feed-landscape.png")

    card.get_by_label("Notes (optional)").fill("stopped and identified")
    card.get_by_role("button", name="Confirmed – engaged").click()
    assert olivia.locator(f'#decided-alerts article[data-alert-id="{alert_id}"]').count() == 0
    card.get_by_role("button", name="Yes, confirm the match").click()  # confirming asks once more
    decided = olivia.locator(f'#decided-alerts article[data-alert-id="{alert_id}"]')
    decided.wait_for(timeout=5000)
    assert decided.locator(".state-badge").inner_text() == "Confirmed – engaged"
    assert "by olivia" in decided.locator(".decision").inner_text()
    olivia.screenshot(path=ARTIFACTS / "tablet-decided-landscape.png")

    with world.store() as uow:
        records = [r for r in uow.audit.records() if r.subject_id == alert_id]
    trail = [(r.action, r.actor) for r in records]
    assert ("alert.raised", "system") in trail
    assert ("alert.consulted", "olivia") in trail  # the crop she looked at
    adjudicated = [r for r in records if r.action == "alert.adjudicated"]
    assert [(r.actor, r.details["outcome"], r.details["notes"]) for r in adjudicated] == [
        ("olivia", "confirmed", "stopped and identified")
    ]

    # Oscar is not assigned to this window: nothing on his tablet, and a direct fetch finds nothing.
    assert oscar.locator("article.card").count() == 0
    assert oscar.request.get(f"/api/alerts/{alert_id}/crop.jpg").status == 404
    assert not [r for r in records if r.actor == "oscar"]

    world.observe(None)  # a passer-by: deleted at once, counted only
    world.ingest.flush_counters()
    supervisor = signed_in_page(browser, base_url, "sam", LANDSCAPE, problems)
    overview = supervisor.locator(f'article[data-window-id="{world.window.id}"]')
    overview.wait_for(timeout=5000)
    assert overview.locator(".state-badge").inner_text() == "Armed"
    faces = overview.locator(".faces-counters").inner_text()
    assert "SEEN\n2" in faces.upper()
    assert "DELETED AT ONCE\n1" in faces.upper()
    chips = overview.locator(".cameras li")
    assert chips.nth(0).get_attribute("data-state") == "connected"
    assert chips.nth(1).get_attribute("data-state") == "disconnected"
    assert "disconnected (last seen 1 min " in chips.nth(1).inner_text()  # 90 s before the page loaded
    supervisor.screenshot(path=ARTIFACTS / "tablet-deployments-landscape.png")
    assert problems == []  # no script errors and no Content-Security-Policy violations


def test_feed_reconnects_by_itself_and_catches_up(browser, served):
    world, app, base_url = served
    problems: list[str] = []
    page = signed_in_page(browser, base_url, "olivia", LANDSCAPE, problems)
    world.observe(0)
    page.locator("article.card").first.wait_for(timeout=5000)
    page.context.set_offline(True)  # the tablet loses its network (tunnel, dead spot) ...
    close_feeds(app)  # ... and with it the open stream
    page.locator('#feed-status[data-state="offline"]').wait_for(timeout=10000)
    missed = world.observe(1).alert_id
    page.context.set_offline(False)
    page.locator(f'article[data-alert-id="{missed}"]').wait_for(timeout=10000)
    assert page.locator("article.card").count() == 2
    assert page.locator('#feed-status[data-state="live"]').count() == 1


@pytest.fixture
def pictured():
    """Person 0 enrolled with three photos; the default grouping interval (300 s)."""
    world = build_world(SystemClock(), officers=frozenset({"olivia"}), reference_images=3)
    world.add_user("olivia", Role.OFFICER)
    app = world.app()
    with LiveServer(app) as base_url:
        yield world, base_url


def test_repeat_sightings_of_one_person_share_one_card_that_the_live_feed_updates(browser, pictured):
    world, base_url = pictured
    problems: list[str] = []
    # Two passages of the same listed person (two tracks, two alerts) before the tablet opens ...
    first = world.observe(0, track="t-first").alert_id
    second = world.observe(0, track="t-second").alert_id
    assert first
    assert second not in (None, first)
    olivia = signed_in_page(browser, base_url, "olivia", PORTRAIT, problems)
    card = olivia.locator(f'article.card[data-group-id="{first}"]')
    card.locator(f'article.member[data-alert-id="{second}"]').wait_for(timeout=5000)
    # ... are one card: the count, the span seen, the best probe beside all three reference images.
    assert olivia.locator("article.card").count() == 1
    assert card.get_attribute("data-count") == "2"
    assert card.locator(".group-count").inner_text() == "2 sightings"
    assert " – " in card.locator(".seen-span").inner_text()
    assert card.locator(".probe").get_attribute("data-alert-id") == first  # equal scores: the first
    references = card.locator("img.reference")
    assert references.count() == 3
    assert [references.nth(n).get_attribute("src") for n in range(3)] == [
        f"/api/alerts/{first}/reference/{n}" for n in range(3)
    ]
    assert card.locator(".reference-caption").all_inner_texts() == [
        "Watchlist reference: custody image",
        "Watchlist reference: photo 1",
        "Watchlist reference: photo 2",
    ]
    for image in [card.locator(".probe"), *(references.nth(n) for n in range(3))]:
        image.evaluate("img => img.decode()")
        assert image.evaluate("img => img.naturalWidth") > 0
    ARTIFACTS.mkdir(exist_ok=True)
    card.screenshot(path=ARTIFACTS / "tablet-group-portrait.png")

    # Each alert in the card is still decided on its own.
    member = card.locator(f'article.member[data-alert-id="{first}"]')
    member.get_by_role("button", name="False alert").click()
    member.locator('.state-badge[data-state="false_alert"]').wait_for(timeout=5000)
    assert card.locator(f'article.member[data-alert-id="{second}"] .state-badge').inner_text() == "Open"
    assert olivia.locator(f'#open-alerts article.card[data-group-id="{first}"]').count() == 1
    assert olivia.locator("#open-count").inner_text() == "1"

    # A third passage arrives over the live feed and joins the card instead of adding one.
    third = world.observe(0, track="t-third").alert_id
    card.locator(f'article.member[data-alert-id="{third}"]').wait_for(timeout=5000)
    assert card.get_attribute("data-count") == "3"
    assert card.locator(".group-count").inner_text() == "3 sightings"
    assert "sighting 3 of this person" in olivia.locator("#announcer").inner_text()
    assert olivia.locator("#open-count").inner_text() == "2"
    other = world.observe(1).alert_id  # another listed person: a card of their own
    olivia.locator(f'article.card[data-group-id="{other}"]').wait_for(timeout=5000)
    assert olivia.locator("article.card").count() == 2
    card.screenshot(path=ARTIFACTS / "tablet-group-updated-portrait.png")

    with world.store() as uow:
        decided = [r.subject_id for r in uow.audit.records() if r.action == "alert.adjudicated"]
    assert decided == [first]
    assert problems == []
