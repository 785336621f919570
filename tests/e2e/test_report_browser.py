"""The oversight report in a real headless Chromium: headline first, nothing fetched from elsewhere, tables
within the page width, every plot decoded. A full-page screenshot goes to test-artifacts/ for review."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lfr.cli.main import app
from tests.browser import CHROMIUM, CHROMIUM_ARGS, require_chromium

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("report")
    config = folder / "synthetic.yaml"
    shutil.copy(ROOT / "evaluation" / "configs" / "synthetic.yaml", config)
    result = CliRunner().invoke(app, ["eval", "run", str(config), "--output-dir", str(folder / "out")])
    assert result.exit_code == 0, result.output
    return folder / "out" / "report.html"


def test_the_report_reads_headline_first_fits_the_page_and_fetches_nothing(report):
    require_chromium()
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            fetched: list[str] = []
            page.on("request", lambda request: fetched.append(request.url))
            page.goto(report.as_uri())
            page.wait_for_load_state("load")
            assert [u for u in fetched if not u.startswith(("file:", "data:"))] == []
            headings = page.locator("h2").all_inner_texts()
            assert headings[:3] == ["Headline", "Read this before the figures", "Method"]
            assert "Recommended threshold" in page.locator(".verdict").inner_text()
            assert page.locator(".verdict + table tr").count() == 3  # one headline row per watchlist size
            # nothing wider than the page: no horizontal scrolling for a reader on a laptop
            assert page.evaluate("document.documentElement.scrollWidth") <= 1280
            broken = page.evaluate(
                "[...document.images].filter(i => !i.complete || i.naturalWidth === 0).length"
            )
            assert broken == 0
            assert page.locator("img").count() >= 4  # DET, scaling, per-group FPIR and FNIR
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "evaluation-report-synthetic.png"), full_page=True)
        finally:
            browser.close()


def test_the_oversight_summary_prints_on_one_a4_page_and_the_audit_is_in_the_report(report):
    require_chromium()
    sync_api = pytest.importorskip("playwright.sync_api")
    summary = report.parent / "summary.html"
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 900, "height": 1200})
            page.goto(summary.as_uri())
            page.wait_for_load_state("load")
            assert "Verdict" in page.locator("h2").all_inner_texts()
            pdf = page.pdf(format="A4", print_background=True)
            pages = pdf.count(b"/Type /Page") - pdf.count(b"/Type /Pages")
            assert pages == 1, f"the summary runs to {pages} A4 pages"
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "evaluation-summary-synthetic.png"), full_page=True)
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(report.as_uri())
            headings = page.locator("h2").all_inner_texts()
            assert "Ground-truth audit" in headings
            assert any(h.startswith("Watchlist-size scaling") for h in headings)
            assert headings.index("Ground-truth audit") < headings.index("Watchlist of 100 identities")
            assert page.evaluate("document.documentElement.scrollWidth") <= 1280
        finally:
            browser.close()
