"""Disabling, removing, re-roling accounts and expiring tokens with `lfr account ...` on the store a
running matcher uses (real SQLite and PostgreSQL, real gRPC on 127.0.0.1): each change is audited, and
the open streams of that account (camera ingest, Alerts.Subscribe) end within a second. Bearer-token
guessing is throttled."""

from __future__ import annotations

import asyncio
import secrets
import time
from pathlib import Path

import grpc
import pytest
from typer.testing import CliRunner

from lfr.cli.main import app
from lfr.config import LfrConfig
from lfr.v1 import control_pb2 as pb
from lfr.v1 import ingest_pb2
from tests.integration.conftest import World, auth, first_answer, matcher_config, observation, rpc_error


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def config(request: pytest.FixtureRequest) -> LfrConfig:
    fixture = "sqlite_url" if request.param == "sqlite" else "postgres_store_url"
    return matcher_config(request.getfixturevalue(fixture))


@pytest.fixture
def config_file(world: World, tmp_path: Path) -> Path:
    path = tmp_path / "lfr.yaml"
    path.write_text(f"store:\n  url: {world.container.config.store.url}\n")
    return path


async def lfr_account(config_file: Path, *args: str) -> str:
    result = await asyncio.to_thread(
        CliRunner().invoke, app, ["account", *args, "--config", str(config_file)]
    )
    assert result.exit_code == 0, result.output
    return result.output


async def seconds_until_it_ends(call: grpc.aio.Call, started: float) -> tuple[float, grpc.aio.AioRpcError]:
    try:
        async with asyncio.timeout(5):
            while True:
                message = await call.read()  # type: ignore[attr-defined]
                if message is grpc.aio.EOF:
                    raise AssertionError("the stream ended without an error")
    except grpc.aio.AioRpcError as error:
        return time.monotonic() - started, error
    raise AssertionError("unreachable")


def principal_changes(world: World, name: str) -> list[str]:
    with world.container.store() as uow:
        return [
            str(r.details["change"])
            for r in uow.audit.records()
            if r.action == "principal.changed" and r.subject_id == name and r.actor == "cli"
        ]


@pytest.mark.parametrize(
    "command", [("disable",), ("remove",), ("expire-token",)], ids=["disable", "remove", "expire-token"]
)
async def test_a_camera_stream_ends_within_a_second_of_its_account_changing(world, config_file, command):
    await world.armed_window()
    call = world.ingest.Stream(metadata=world.md("cam-1"))
    answer = await first_answer(call, [observation(1, world.stranger())])
    assert answer.results[0].outcome == ingest_pb2.OUTCOME_NO_MATCH

    await lfr_account(config_file, *command, "cam-1")
    elapsed, error = await seconds_until_it_ends(call, time.monotonic())

    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    assert elapsed < 1.0
    expected = {"disable": "disabled", "remove": "removed", "expire-token": "token_expired"}[command[0]]
    assert principal_changes(world, "cam-1") == [expected]
    again = world.ingest.Stream(metadata=world.md("cam-1"))
    refused = await rpc_error(first_answer(again, [observation(2, world.stranger())]))
    assert refused.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_an_alert_subscription_ends_within_a_second_of_disable_or_a_role_change(world, config_file):
    await world.armed_window()
    for change in (("disable", "olly"), ("roles", "otto", "--role", "auditor")):
        name = change[1]
        call = world.alerts.Subscribe(pb.SubscribeRequest(), metadata=world.md(name))
        await asyncio.sleep(0.3)  # subscribed and waiting for alerts
        await lfr_account(config_file, *change)
        elapsed, error = await seconds_until_it_ends(call, time.monotonic())
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED
        assert elapsed < 1.0
    assert principal_changes(world, "olly") == ["disabled"]
    assert principal_changes(world, "otto") == ["roles_changed"]


async def test_a_disabled_account_is_refused_at_once_despite_the_token_cache(world, config_file):
    request = pb.ListWindowsRequest()
    await world.deployments.ListWindows(request, metadata=world.md("aud"))  # now cached for 5 s
    await lfr_account(config_file, "disable", "aud")
    await asyncio.sleep(1.0)
    error = await rpc_error(world.deployments.ListWindows(request, metadata=world.md("aud")))
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    await lfr_account(config_file, "enable", "aud")
    await asyncio.sleep(1.0)
    await world.deployments.ListWindows(request, metadata=world.md("aud"))


async def test_a_token_issued_for_a_limited_time_stops_working_then_and_its_stream_ends(world, config_file):
    await world.armed_window()
    output = await lfr_account(config_file, "token", "cam-1", "--valid-days", str(2.5 / 86400))
    token = output.strip()
    started = time.monotonic()
    call = world.ingest.Stream(metadata=auth(token))
    answer = await first_answer(call, [observation(1, world.stranger())])
    assert answer.results[0].outcome == ingest_pb2.OUTCOME_NO_MATCH

    elapsed, error = await seconds_until_it_ends(call, started)

    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    assert 1.0 < elapsed < 3.5  # at its expiry (2.5 s after issue, less the CLI's own time), within a second
    again = world.ingest.Stream(metadata=auth(token))
    refused = await rpc_error(first_answer(again, [observation(2, world.stranger())]))
    assert refused.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "expired" in (refused.details() or "")


async def test_bearer_token_guessing_from_one_address_is_throttled(world):
    codes = []
    for _ in range(30):
        error = await rpc_error(
            world.deployments.ListWindows(pb.ListWindowsRequest(), metadata=auth(secrets.token_urlsafe(32)))
        )
        codes.append(error.code())
    assert codes[:10] == [grpc.StatusCode.UNAUTHENTICATED] * 10
    assert set(codes[10:]) == {grpc.StatusCode.RESOURCE_EXHAUSTED}
    # Even a good token waits while its address is refused: otherwise guesses could still be told apart.
    refused = await rpc_error(
        world.deployments.ListWindows(pb.ListWindowsRequest(), metadata=world.md("sam"))
    )
    assert refused.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "try again later" in (refused.details() or "")


def forwarded(token: str, client: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"), ("x-forwarded-for", client))


async def test_forwarded_for_metadata_is_ignored_unless_from_a_configured_balancer(world):
    codes = []
    for i in range(12):  # a fresh claimed address per guess does not escape the throttle
        request = pb.ListWindowsRequest()
        error = await rpc_error(
            world.deployments.ListWindows(
                request, metadata=forwarded(secrets.token_urlsafe(32), f"10.9.{i}.1")
            )
        )
        codes.append(error.code())
    assert codes[-1] == grpc.StatusCode.RESOURCE_EXHAUSTED


class TestBehindALoadBalancer:
    @pytest.fixture
    def config(self, sqlite_url: str) -> LfrConfig:
        return matcher_config(sqlite_url, **{"grpc.forwarded_allow_ips": "127.0.0.0/8"})

    async def test_the_throttle_counts_the_client_the_balancer_names(self, world):
        for _ in range(12):
            await rpc_error(
                world.deployments.ListWindows(
                    pb.ListWindowsRequest(), metadata=forwarded(secrets.token_urlsafe(32), "10.0.0.66")
                )
            )
        refused = await rpc_error(
            world.deployments.ListWindows(
                pb.ListWindowsRequest(), metadata=forwarded(world.tokens["sam"], "10.0.0.66")
            )
        )
        assert refused.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        # Another camera or officer behind the same balancer is not locked out by the guesser.
        await world.deployments.ListWindows(
            pb.ListWindowsRequest(), metadata=forwarded(world.tokens["sam"], "10.0.0.7")
        )
