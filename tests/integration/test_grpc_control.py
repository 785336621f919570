"""The control plane over real gRPC: windows, watchlists, alerts, audit, health; and their error codes."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from lfr.adapters.grpc.convert import audit_record_from_proto
from lfr.domain.alert import Adjudication
from lfr.domain.audit import verify_chain
from lfr.v1 import control_pb2 as pb
from lfr.v1 import ingest_pb2 as ipb
from tests.integration.conftest import MODEL, World, observation, rpc_error, stamp


async def test_invalid_windows_are_invalid_argument(world: World):
    await world.build_watchlist()
    now = datetime.now(UTC)
    for bad in [
        world.window_request(
            starts_at=stamp(now + timedelta(hours=2)), ends_at=stamp(now + timedelta(hours=1))
        ),
        world.window_request(threshold=1.5),
        world.window_request(threshold=-0.1),
        world.window_request(purpose=""),
    ]:
        error = await rpc_error(world.deployments.CreateWindow(bad, metadata=world.md("sam")))
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert error.details()
    error = await rpc_error(
        world.deployments.CreateWindow(world.window_request(threshold=1.5), metadata=world.md("sam"))
    )
    assert "threshold 1.5 is outside [0, 1]" in (error.details() or "")


async def test_unsealed_or_destroyed_watchlist_is_failed_precondition(world: World):
    draft = await world.watchlists.CreateWatchlist(
        pb.CreateWatchlistRequest(name="draft", model_id=MODEL, dimension=512), metadata=world.md("sam")
    )
    error = await rpc_error(
        world.deployments.CreateWindow(world.window_request(watchlist_id=draft.id), metadata=world.md("sam"))
    )
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    sealed_id = await world.build_watchlist()
    window = await world.deployments.CreateWindow(world.window_request(), metadata=world.md("sam"))
    destroyed = await world.watchlists.DestroyWatchlist(
        pb.DestroyWatchlistRequest(watchlist_id=sealed_id, reason="no longer needed"),
        metadata=world.md("sam"),
    )
    assert destroyed.state == pb.WATCHLIST_STATE_DESTROYED
    for call in [
        world.deployments.CreateWindow(world.window_request(), metadata=world.md("sam")),
        world.deployments.AuthoriseWindow(pb.WindowRef(window_id=window.id), metadata=world.md("sue")),
    ]:
        assert (await rpc_error(call)).code() == grpc.StatusCode.FAILED_PRECONDITION
    missing = await rpc_error(
        world.deployments.GetWindow(pb.WindowRef(window_id="win_nope"), metadata=world.md("sam"))
    )
    assert missing.code() == grpc.StatusCode.NOT_FOUND


async def test_destroying_the_watchlist_of_an_armed_window_stops_matching_at_once(world: World):
    await world.armed_window()
    [before] = await world.stream("cam-1", [[observation(1, world.people[0])]])
    assert before.results[0].outcome == ipb.OUTCOME_ALERT
    await world.watchlists.DestroyWatchlist(
        pb.DestroyWatchlistRequest(watchlist_id=world.watchlist_id, reason="test"), metadata=world.md("sam")
    )
    [after] = await world.stream("cam-1", [[observation(2, world.people[0])]])
    assert after.results[0].outcome != ipb.OUTCOME_ALERT


async def test_officer_cannot_authorise_and_only_sees_assigned_windows(world: World):
    await world.build_watchlist()
    window = await world.deployments.CreateWindow(world.window_request(), metadata=world.md("sam"))
    error = await rpc_error(
        world.deployments.AuthoriseWindow(pb.WindowRef(window_id=window.id), metadata=world.md("olly"))
    )
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "supervisor" in (error.details() or "")
    seen = await world.deployments.ListWindows(pb.ListWindowsRequest(), metadata=world.md("olly"))
    assert [w.id for w in seen.windows] == [window.id]
    unseen = await world.deployments.ListWindows(pb.ListWindowsRequest(), metadata=world.md("otto"))
    assert list(unseen.windows) == []
    authorised = await world.deployments.AuthoriseWindow(
        pb.WindowRef(window_id=window.id), metadata=world.md("sue")
    )
    assert authorised.state == pb.WINDOW_STATE_AUTHORISED
    assert authorised.armed
    assert authorised.authorised_by == "sue"


async def test_adjudicating_twice_is_failed_precondition_and_stale_version_is_aborted(world: World):
    await world.armed_window()
    [answer] = await world.stream(
        "cam-1", [[observation(1, world.people[2]), observation(2, world.people[4])]]
    )
    first, second = (r.alert_id for r in answer.results)
    decided = await world.alerts.Adjudicate(
        pb.AdjudicateRequest(alert_id=first, outcome=pb.ADJUDICATION_FALSE_ALERT, notes="not him"),
        metadata=world.md("olly"),
    )
    assert decided.state == pb.ALERT_STATE_ADJUDICATED
    assert decided.adjudicated_by == "olly"
    again = await rpc_error(
        world.alerts.Adjudicate(
            pb.AdjudicateRequest(alert_id=first, outcome=pb.ADJUDICATION_CONFIRMED), metadata=world.md("olly")
        )
    )
    assert again.code() == grpc.StatusCode.FAILED_PRECONDITION
    stale = await rpc_error(
        world.alerts.Adjudicate(
            pb.AdjudicateRequest(alert_id=second, outcome=pb.ADJUDICATION_CONFIRMED, expected_version=7),
            metadata=world.md("olly"),
        )
    )
    assert stale.code() == grpc.StatusCode.ABORTED
    no_outcome = await rpc_error(
        world.alerts.Adjudicate(pb.AdjudicateRequest(alert_id=second), metadata=world.md("olly"))
    )
    assert no_outcome.code() == grpc.StatusCode.INVALID_ARGUMENT
    hidden = await rpc_error(world.alerts.GetAlert(pb.AlertRef(alert_id=second), metadata=world.md("otto")))
    assert hidden.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_subscription_catches_up_then_goes_live_without_gaps_or_duplicates(world: World):
    window = await world.armed_window()
    [early] = await world.stream("cam-1", [[observation(i, world.people[i]) for i in range(3)]])
    early_ids = [r.alert_id for r in early.results]
    received: list[pb.Alert] = []
    subscription = world.alerts.Subscribe(pb.SubscribeRequest(window_id=window.id), metadata=world.md("olly"))

    async def read(n: int) -> None:
        async for alert in subscription:
            received.append(alert)
            if len(received) == n:
                return

    reader = asyncio.create_task(read(3 + 9))
    # Alerts raised while the subscriber is still catching up, and after: none lost, none repeated.
    live_ids: list[str] = []
    for round_ in range(3):
        [answer] = await world.stream(
            "cam-2",
            [
                [
                    observation(10 * round_ + j, world.people[3 + 3 * round_ + j], camera="cam-2")
                    for j in range(3)
                ]
            ],
        )
        live_ids += [r.alert_id for r in answer.results]
    await asyncio.wait_for(reader, 10)
    subscription.cancel()
    assert [a.id for a in received] == early_ids + live_ids
    sequences = [a.sequence for a in received]
    assert sequences == sorted(set(sequences))
    assert all(a.crop_jpeg == b"" for a in received)  # crops only through the audited GetAlert

    resumed = world.alerts.Subscribe(
        pb.SubscribeRequest(window_id=window.id, after_sequence=received[5].sequence),
        metadata=world.md("olly"),
    )
    tail = []
    async for alert in resumed:
        tail.append(alert.id)
        if len(tail) == 6:
            break
    resumed.cancel()
    assert tail == [a.id for a in received[6:]]


async def test_subscription_receives_decisions_made_elsewhere_and_resumes_by_feed_revision(world: World):
    window = await world.armed_window()
    subscription = world.alerts.Subscribe(pb.SubscribeRequest(window_id=window.id), metadata=world.md("olly"))
    [answer] = await world.stream("cam-1", [[observation(1, world.people[0])]])
    alert_id = answer.results[0].alert_id
    raised = await asyncio.wait_for(subscription.read(), 5)
    assert (raised.id, raised.version, raised.state) == (alert_id, 1, pb.ALERT_STATE_RAISED)
    # Decided by someone else (the tablet's officer, here the same service through another call).
    await asyncio.to_thread(
        world.container.alerts.adjudicate,
        alert_id,
        Adjudication.NOT_ENGAGED,
        world.container.principals.get("sam"),
    )
    decided = await asyncio.wait_for(subscription.read(), 5)
    assert (decided.id, decided.version, decided.outcome) == (alert_id, 2, pb.ADJUDICATION_NOT_ENGAGED)
    assert decided.feed_revision > raised.feed_revision > 0
    subscription.cancel()
    [later] = await world.stream("cam-1", [[observation(2, world.people[1])]])
    resumed = world.alerts.Subscribe(
        pb.SubscribeRequest(window_id=window.id, after_revision=decided.feed_revision),
        metadata=world.md("olly"),
    )
    missed = await asyncio.wait_for(resumed.read(), 5)
    assert missed.id == later.results[0].alert_id  # only what changed since, nothing before
    resumed.cancel()


async def test_subscription_to_an_unassigned_window_is_refused(world: World):
    window = await world.armed_window()
    subscription = world.alerts.Subscribe(pb.SubscribeRequest(window_id=window.id), metadata=world.md("otto"))
    error = await rpc_error(subscription.read())
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_consulting_an_alert_is_audited_and_the_exported_chain_verifies(world: World):
    await world.armed_window()
    [answer] = await world.stream("cam-1", [[observation(1, world.people[0])]])
    await world.alerts.GetAlert(pb.AlertRef(alert_id=answer.results[0].alert_id), metadata=world.md("olly"))
    exported = [r async for r in world.audit.Export(pb.ExportRequest(), metadata=world.md("aud"))]
    actions = [r.action for r in exported]
    for expected in [
        "watchlist.sealed",
        "window.created",
        "window.authorised",
        "window.armed",
        "alert.raised",
        "alert.consulted",
    ]:
        assert expected in actions
    consulted = exported[actions.index("alert.consulted")]
    assert consulted.actor == "olly"
    assert json.loads(consulted.details_json)["channel"] == "grpc"
    assert verify_chain([audit_record_from_proto(r) for r in exported]).ok
    verdict = await world.audit.Verify(pb.Empty(), metadata=world.md("aud"))
    assert verdict.ok
    assert verdict.records_checked == len(exported)
    denied = await rpc_error(world.audit.Verify(pb.Empty(), metadata=world.md("olly")))
    assert denied.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_health_reports_serving_and_not_serving_on_shutdown(world: World):
    health = health_pb2_grpc.HealthStub(world.channel)
    for service in ["", "lfr.v1.CameraIngest", "lfr.v1.Alerts"]:
        reply = await health.Check(health_pb2.HealthCheckRequest(service=service))
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
    watch = health.Watch(health_pb2.HealthCheckRequest(service=""))
    assert (await watch.read()).status == health_pb2.HealthCheckResponse.SERVING
    stopping = asyncio.create_task(world.running.server.stop(1.0))
    assert (await watch.read()).status == health_pb2.HealthCheckResponse.NOT_SERVING
    await stopping
