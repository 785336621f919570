"""Alert latency to the officers' tablets: from an observation entering the matcher to its alert card
being in the browser's page (and to the event reaching each extra SSE client).

Setup: in-process matcher (IngestService, real FAISS, in-memory store) and the tablet app under real
uvicorn on 127.0.0.1; one headless Chromium page (Debian's chromium) plus N-1 plain SSE clients
(httpx, one thread each), all signed in. The browser's render time is taken by a MutationObserver
when the card is inserted; both clocks are this machine's wall clock.

    .venv/bin/python -m bench.tablet [--alerts 300] [--interval-ms 50] [--tablets 1 20] [--group-interval-s 0]

Every alert is of the same listed person: with `--group-interval-s` above 0 they all join one card (the
worst case for the card's upkeep); 0, the default, gives each its own card, as before grouping.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from dataclasses import dataclass

import httpx
import numpy as np

from lfr.domain.clock import SystemClock
from lfr.domain.principal import Role
from tests.browser import CHROMIUM, CHROMIUM_ARGS
from tests.tablet_support import PASSWORD, LiveServer, build_world, csrf_from

RECORD_RENDERS = """
window.__rendered = {};
new MutationObserver((mutations) => {
  const now = Date.now();
  const seen = (n) => {
    if (n.dataset && n.dataset.alertId && !(n.dataset.alertId in window.__rendered)) {
      window.__rendered[n.dataset.alertId] = now;
    }
  };
  // An alert arrives as a new card, or as a member added to its group's card.
  for (const m of mutations) for (const n of m.addedNodes) {
    seen(n);
    if (n.querySelectorAll) n.querySelectorAll("[data-alert-id]").forEach(seen);
  }
}).observe(document.getElementById("open-alerts"), { childList: true, subtree: true });
"""


@dataclass
class Result:
    tablets: int
    alerts: int
    browser_ms: np.ndarray
    sse_ms: np.ndarray


def signed_in_client(base_url: str) -> httpx.Client:
    client = httpx.Client(base_url=base_url, timeout=httpx.Timeout(10.0, read=30.0))
    token = csrf_from(client.get("/login").text)
    client.post("/login", data={"username": "olivia", "password": PASSWORD, "csrf_token": token})
    return client


def sse_listener(
    base_url: str, arrivals: dict[str, float], ready: threading.Event, stop: threading.Event
) -> None:
    client = signed_in_client(base_url)
    try:
        with client.stream("GET", "/api/alerts/stream") as response:
            kind = ""
            for line in response.iter_lines():
                if line.startswith("event: "):
                    kind = line[7:]
                    if kind == "hello":
                        ready.set()
                elif line.startswith("data: ") and kind == "alert":
                    arrivals.setdefault(json.loads(line[6:])["id"], time.time())
                if stop.is_set():
                    return
    except httpx.HTTPError:
        return  # the server closed the feeds at the end of the run
    finally:
        client.close()


def run(tablets: int, alerts: int, interval: float, group_interval_s: float = 0.0) -> Result:
    from playwright.sync_api import sync_playwright

    world = build_world(
        SystemClock(), officers=frozenset({"olivia"}), group_interval_seconds=group_interval_s
    )
    world.add_user("olivia", Role.OFFICER)
    app = world.app()
    entered: dict[str, float] = {}
    with LiveServer(app) as base_url, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_context(viewport={"width": 1280, "height": 800}, base_url=base_url).new_page()
        page.goto("/login")
        page.get_by_label("Name").fill("olivia")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url("**/alerts")
        page.locator('#feed-status[data-state="live"]').wait_for()
        page.evaluate(RECORD_RENDERS)

        stop = threading.Event()
        arrivals: list[dict[str, float]] = []
        threads = []
        for _ in range(tablets - 1):
            got: dict[str, float] = {}
            ready = threading.Event()
            thread = threading.Thread(target=sse_listener, args=(base_url, got, ready, stop), daemon=True)
            thread.start()
            ready.wait(10)
            arrivals.append(got)
            threads.append(thread)

        for _ in range(alerts):
            started = time.time()
            alert_id = world.observe(0).alert_id
            assert alert_id is not None
            entered[alert_id] = started
            time.sleep(interval)
        deadline = time.time() + 30
        while time.time() < deadline:
            rendered = page.evaluate("window.__rendered")
            if len(rendered) >= alerts and all(len(a) >= alerts for a in arrivals):
                break
            time.sleep(0.2)
        stop.set()
        browser.close()
    missing = alerts - len(rendered)
    if missing:
        raise RuntimeError(f"{missing} alerts never rendered in the browser")
    browser_ms = np.array([rendered[a] - entered[a] * 1000 for a in entered])
    sse_ms = np.array([(got[a] - entered[a]) * 1000 for got in arrivals for a in entered if a in got])
    return Result(tablets, alerts, browser_ms, sse_ms)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--alerts", type=int, default=300)
    parser.add_argument("--interval-ms", type=float, default=50.0)
    parser.add_argument("--tablets", type=int, nargs="+", default=[1, 20])
    parser.add_argument("--group-interval-s", type=float, default=0.0)
    args = parser.parse_args()
    print("tablets  alerts  browser p50 ms  browser p99 ms  browser max ms  sse p50 ms  sse p99 ms")
    for tablets in args.tablets:
        r = run(tablets, args.alerts, args.interval_ms / 1000, args.group_interval_s)
        sse = (
            f"{np.percentile(r.sse_ms, 50):10.1f}  {np.percentile(r.sse_ms, 99):10.1f}"
            if r.sse_ms.size
            else f"{'-':>10}  {'-':>10}"
        )
        print(
            f"{r.tablets:7d}  {r.alerts:6d}  {np.percentile(r.browser_ms, 50):14.1f}  "
            f"{np.percentile(r.browser_ms, 99):14.1f}  {r.browser_ms.max():14.1f}  {sse}"
        )


if __name__ == "__main__":
    main()
