"""Separation of duties over real gRPC: the supervisor who created a window cannot authorise it (on by
default, `policy.separation_of_duties`); another supervisor can, and the audit trail names both."""

from __future__ import annotations

import grpc
import pytest

from lfr.config import LfrConfig
from lfr.v1 import control_pb2 as pb
from tests.integration.conftest import World, matcher_config, rpc_error


async def test_the_creator_of_a_window_cannot_authorise_it_but_another_supervisor_can(world: World):
    await world.build_watchlist()
    window = await world.deployments.CreateWindow(world.window_request(), metadata=world.md("sam"))

    refused = await rpc_error(
        world.deployments.AuthoriseWindow(pb.WindowRef(window_id=window.id), metadata=world.md("sam"))
    )
    assert refused.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "another supervisor must authorise it" in (refused.details() or "")

    authorised = await world.deployments.AuthoriseWindow(
        pb.WindowRef(window_id=window.id), metadata=world.md("sue")
    )
    assert (authorised.created_by, authorised.authorised_by) == ("sam", "sue")
    with world.container.store() as uow:
        actors = {r.action: r.actor for r in uow.audit.records() if r.subject_id == window.id}
    assert (actors["window.created"], actors["window.authorised"]) == ("sam", "sue")


class TestWhenTurnedOff:
    @pytest.fixture
    def config(self) -> LfrConfig:
        return matcher_config(**{"policy.separation_of_duties": False})

    async def test_one_supervisor_may_create_and_authorise(self, world: World):
        await world.build_watchlist()
        window = await world.deployments.CreateWindow(world.window_request(), metadata=world.md("sam"))
        authorised = await world.deployments.AuthoriseWindow(
            pb.WindowRef(window_id=window.id), metadata=world.md("sam")
        )
        assert authorised.authorised_by == "sam"
