"""The tablet in a real headless Chromium: an alert raised by the matcher appears live, the officer
decides it, the audit log records it, and an officer from elsewhere never sees it."""

from __future__ import annotations

from pathlib import Path

import pytest

from lfr.adapters.tablet.app import close_feeds
from lfr.domain.clock import SystemClock
from lfr.domain.principal import Role
from tests.tablet_support import PASSWORD, LiveServer, build_world

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
PORTRAIT = {"width": 800, "height": 1280}
LANDSCAPE = {"width": 1280, "height": 800}


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (scripts/setup installs it)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def served():
    world = build_world(SystemClock(), officers=frozenset({"olivia"}))
    world.add_user("olivia", Role.OFFICER)
    world.add_user("oscar", Role.OFFICER)
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
    page.wait_for_url("**/alerts")
    page.locator('#feed-status[data-state="live"]').wait_for(timeout=5000)
    return page


def test_officer_sees_alert_live_decides_it_and_it_is_audited(browser, served):
    world, _app, base_url = served
    problems: list[str] = []
    olivia = signed_in_page(browser, base_url, "olivia", PORTRAIT, problems)
    oscar = signed_in_page(browser, base_url, "oscar", LANDSCAPE, problems)
    assert olivia.locator("article.card").count() == 0

    alert_id = world.observe(0).alert_id  # through the matcher: real FAISS search, durable alert
    card = olivia.locator(f'article[data-alert-id="{alert_id}"]')
    card.wait_for(timeout=5000)  # no reload: the feed delivered it
    assert "New alert" in olivia.locator("#announcer").inner_text()
    assert card.locator(".category").inner_text() == "Wanted on warrant"
    assert card.locator(".location").inner_text() == "High Street north"
    assert card.locator(".threshold").inner_text() == "threshold 0.800"
    assert "raised" in card.locator(".ago").inner_text()
    for image in (".probe", ".reference"):
        card.locator(image).evaluate("img => img.decode()")
        assert card.locator(image).evaluate("img => img.naturalWidth") > 0

    ARTIFACTS.mkdir(exist_ok=True)
    card.screenshot(path=ARTIFACTS / "tablet-alert-portrait.png")
    olivia.screenshot(path=ARTIFACTS / "tablet-feed-portrait.png")
    olivia.set_viewport_size(LANDSCAPE)
    card.screenshot(path=ARTIFACTS / "tablet-alert-landscape.png")
    olivia.screenshot(path=ARTIFACTS / "tablet-feed-landscape.png")

    card.get_by_label("Notes (optional)").fill("stopped and identified")
    card.get_by_role("button", name="Confirmed – engaged").click()
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
