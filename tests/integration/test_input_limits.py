"""Oversized text and out-of-range integers get a clear refusal naming the field, never INTERNAL / 500 and
never a record: real gRPC on 127.0.0.1 over SQLite, and the tablet under a real uvicorn."""

from __future__ import annotations

from datetime import UTC, datetime

import grpc
import numpy as np
import pytest

from lfr.config import LfrConfig
from lfr.domain.clock import ManualClock
from lfr.domain.principal import Role
from lfr.v1 import control_pb2 as pb
from tests.integration.conftest import DIM, MODEL, World, matcher_config, observation, rpc_error
from tests.integration.test_tablet_api import client_for, serve

HUGE = "x" * 3_000_000  # what was once accepted into one audit record
U64_MAX = 2**64 - 1
U32_MAX = 2**32 - 1


@pytest.fixture
def config(sqlite_url: str) -> LfrConfig:
    return matcher_config(sqlite_url, **{"grpc.max_message_bytes": 8 * 1024 * 1024})


def audit_size(world: World) -> int:
    with world.container.store() as uow:
        return sum(len(r.details_json) for r in uow.audit.records())


async def refused(call, field: str) -> None:
    error = await rpc_error(call)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error.details()
    assert field in (error.details() or "")
    assert len(error.details() or "") < 1000  # the message names the field; it does not echo the text


@pytest.mark.parametrize("field", ["purpose", "legal_basis", "location"])
async def test_oversized_window_text_is_invalid_argument_and_leaves_no_record(world: World, field):
    await world.build_watchlist()
    before = audit_size(world)
    await refused(
        world.deployments.CreateWindow(world.window_request(**{field: HUGE}), metadata=world.md("sam")), field
    )
    await refused(
        world.deployments.CreateWindow(
            world.window_request(camera_ids=["c" * 5000]), metadata=world.md("sam")
        ),
        "camera",
    )
    await refused(
        world.deployments.CreateWindow(
            world.window_request(assigned_users=["u" * 5000]), metadata=world.md("sam")
        ),
        "assigned",
    )
    assert audit_size(world) == before


async def test_oversized_reasons_names_and_notes_are_invalid_argument(world: World):
    window = await world.armed_window()
    md = world.md("sam")
    await refused(
        world.deployments.CloseWindow(pb.CloseWindowRequest(window_id=window.id, reason=HUGE), metadata=md),
        "reason",
    )
    await refused(
        world.watchlists.CreateWatchlist(
            pb.CreateWatchlistRequest(name=HUGE, model_id=MODEL, dimension=DIM), metadata=md
        ),
        "name",
    )
    draft = await world.watchlists.CreateWatchlist(
        pb.CreateWatchlistRequest(name="draft", model_id=MODEL, dimension=DIM), metadata=md
    )
    for field in ("reference", "display_name", "category", "reason", "image_source"):
        values = {"reference": "r", "display_name": "d", "category": "c", "reason": "w", "image_source": "s"}
        values[field] = HUGE
        request = pb.AddSubjectRequest(
            watchlist_id=draft.id,
            model_id=MODEL,
            dimension=DIM,
            embeddings_f32le=[world.people[0].astype("<f4").tobytes()],
            **values,
        )
        await refused(world.watchlists.AddSubject(request, metadata=md), field)
    await refused(
        world.watchlists.DestroyWatchlist(
            pb.DestroyWatchlistRequest(watchlist_id=draft.id, reason=HUGE), metadata=md
        ),
        "reason",
    )
    [answer] = await world.stream("cam-1", [[observation(1, world.people[0])]])
    alert_id = answer.results[0].alert_id
    await refused(
        world.alerts.Adjudicate(
            pb.AdjudicateRequest(alert_id=alert_id, outcome=pb.ADJUDICATION_FALSE_ALERT, notes=HUGE),
            metadata=world.md("olly"),
        ),
        "notes",
    )
    await refused(world.alerts.GetAlert(pb.AlertRef(alert_id=HUGE), metadata=world.md("olly")), "alert_id")


async def test_integers_beyond_what_the_store_holds_are_invalid_argument(world: World):
    window = await world.armed_window()
    [answer] = await world.stream("cam-1", [[observation(1, world.people[0])]])
    await refused(
        world.alerts.ListAlerts(pb.ListAlertsRequest(after_sequence=U64_MAX), metadata=world.md("olly")),
        "after_sequence",
    )
    await refused(
        world.audit.Export(pb.ExportRequest(from_seq=U64_MAX), metadata=world.md("aud")).read(), "from_seq"
    )
    subscription = world.alerts.Subscribe(
        pb.SubscribeRequest(window_id=window.id, after_sequence=U64_MAX), metadata=world.md("olly")
    )
    await refused(subscription.read(), "after_sequence")
    await refused(
        world.alerts.Adjudicate(
            pb.AdjudicateRequest(
                alert_id=answer.results[0].alert_id,
                outcome=pb.ADJUDICATION_FALSE_ALERT,
                expected_version=U32_MAX,
            ),
            metadata=world.md("olly"),
        ),
        "expected_version",
    )


async def test_undecodable_control_requests_are_invalid_argument_not_unknown(world: World):
    garbage = b"\xff\xff\xff\xff\x0f"  # a varint that never ends
    create = world.channel.unary_unary("/lfr.v1.Deployments/CreateWindow")
    await refused(create(garbage, metadata=world.md("sam")), "could not be decoded")
    subscribe = world.channel.unary_stream("/lfr.v1.Alerts/Subscribe")
    await refused(subscribe(garbage, metadata=world.md("olly")).read(), "could not be decoded")
    unauthenticated = await rpc_error(create(garbage))
    assert unauthenticated.code() == grpc.StatusCode.UNAUTHENTICATED  # who asks is checked first


@pytest.fixture
def tablet():
    from tests.tablet_support import build_world

    w = build_world(ManualClock(datetime(2026, 11, 21, 10, 0, tzinfo=UTC)))
    w.add_user("olivia", Role.OFFICER)
    w.add_user("aud", Role.AUDITOR)
    yield from serve(w)


def test_the_tablet_answers_out_of_range_integers_with_422(tablet):
    officer, auditor = client_for(tablet, "olivia"), client_for(tablet, "aud")
    alert_id = tablet.observe(0).alert_id
    huge = 2**70
    for response in (
        officer.get("/api/alerts", params={"after": huge}),
        auditor.get("/api/audit", params={"from_seq": huge}),
        officer.post(
            f"/api/alerts/{alert_id}/adjudication",
            json={"outcome": "false_alert", "expected_version": huge},
        ),
        officer.post(f"/api/alerts/{alert_id}/verification", json={"agree": True, "expected_version": huge}),
    ):
        assert response.status_code == 422, (response.request.url, response.text)
    assert np.all(officer.get("/api/session").status_code == 200)
