"""The live alert feed (server-sent events) over a real uvicorn: live delivery, catch-up, scoping."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest

from lfr.domain.clock import ManualClock
from lfr.domain.principal import Role
from tests.tablet_support import PASSWORD, LiveServer, build_world, csrf_from

START = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)


@pytest.fixture
def world():
    w = build_world(ManualClock(START), officers=frozenset({"olivia"}))
    w.add_user("olivia", Role.OFFICER)
    w.add_user("oscar", Role.OFFICER)
    w.settings = w.settings.model_copy(update={"poll_seconds": 0.2})
    clients = []
    with LiveServer(w.app()) as base_url:

        def client_for(name: str) -> httpx.Client:
            client = httpx.Client(base_url=base_url, timeout=httpx.Timeout(5.0, read=3.0))
            clients.append(client)
            token = csrf_from(client.get("/login").text)
            client.post("/login", data={"username": name, "password": PASSWORD, "csrf_token": token})
            client.headers["X-CSRF-Token"] = client.get("/api/session").json()["csrf_token"]
            return client

        w.client_for = client_for
        yield w
        for client in clients:
            client.close()


def events(response: httpx.Response) -> Iterator[dict[str, str]]:
    event: dict[str, str] = {}
    for line in response.iter_lines():
        if not line:
            if event:
                yield event
            event = {}
        elif not line.startswith(":"):
            key, _, value = line.partition(":")
            event[key] = value.removeprefix(" ")


def next_of(stream: Iterator[dict[str, str]], kind: str) -> dict[str, str]:
    return next(e for e in stream if e.get("event") == kind)


def test_new_alert_arrives_live_and_missed_ones_are_caught_up_by_sequence(world):
    olivia = world.client_for("olivia")
    with olivia.stream("GET", "/api/alerts/stream") as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["cache-control"] == "no-store"
        stream = events(response)
        next_of(stream, "hello")
        first = world.observe(0).alert_id
        received = next_of(stream, "alert")
        assert json.loads(received["data"])["id"] == first
        last_id = received["id"]
    missed = [world.observe(0).alert_id, world.observe(1).alert_id]
    assert world.observe(None).alert_id is None  # a stranger: nothing to send, ever
    with olivia.stream("GET", "/api/alerts/stream", headers={"Last-Event-ID": last_id}) as response:
        stream = events(response)
        next_of(stream, "hello")
        caught_up = [json.loads(next_of(stream, "alert")["data"]) for _ in missed]
    assert [a["id"] for a in caught_up] == missed
    assert [a["sequence"] for a in caught_up] == sorted(a["sequence"] for a in caught_up)
    assert all(int(last_id) < a["sequence"] for a in caught_up)


def test_decisions_reach_other_tablets_as_updates(world):
    alert_id = world.observe(0).alert_id
    watcher, decider = world.client_for("olivia"), world.client_for("olivia")
    with watcher.stream("GET", "/api/alerts/stream") as response:
        stream = events(response)
        assert json.loads(next_of(stream, "alert")["data"])["state"] == "raised"
        body = {"outcome": "false_alert", "expected_version": 1}
        assert decider.post(f"/api/alerts/{alert_id}/adjudication", json=body).status_code == 200
        update = json.loads(next_of(stream, "update")["data"])
    assert (update["id"], update["outcome"], update["adjudicated_by"]) == (alert_id, "false_alert", "olivia")


def test_unassigned_officer_receives_nothing(world):
    oscar = world.client_for("oscar")
    with oscar.stream("GET", "/api/alerts/stream") as response:
        stream = events(response)
        next_of(stream, "hello")
        world.observe(0)
        with pytest.raises(httpx.ReadTimeout):
            next(stream)  # several store polls pass; no alert and no update reaches this officer


def test_feed_needs_a_signed_in_session(world):
    with httpx.Client(base_url=str(world.client_for("olivia").base_url)) as anonymous:
        assert anonymous.get("/api/alerts/stream").status_code == 401
