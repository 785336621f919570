"""Screenshot an evaluation report in headless Chromium, to look at it as a reader would.

python -m bench.report_screenshot var/eval-reports/dev/report.html test-artifacts/report.png [--pdf out.pdf]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from tests.browser import CHROMIUM, CHROMIUM_ARGS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("html", type=Path)
    parser.add_argument("png", type=Path)
    parser.add_argument("--pdf", type=Path, default=None, help="also print it to PDF (A4)")
    parser.add_argument("--width", type=int, default=1280)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": args.width, "height": 900})
            page.goto(args.html.resolve().as_uri())
            page.wait_for_load_state("load")
            args.png.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(args.png), full_page=True)
            if args.pdf is not None:
                page.pdf(path=str(args.pdf), format="A4", print_background=True)
                print(f"{args.pdf}: printed")
            print(f"{args.png}: {page.evaluate('document.documentElement.scrollHeight')} px tall")
        finally:
            browser.close()


if __name__ == "__main__":
    main()
