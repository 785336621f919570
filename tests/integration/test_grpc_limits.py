"""gRPC's own message size limit, configured by grpc.max_message_bytes."""

from __future__ import annotations

import grpc
import pytest

from lfr.v1 import ingest_pb2 as ipb
from tests.integration.conftest import World, first_answer, matcher_config, observation, rpc_error


@pytest.fixture
def config():
    return matcher_config(**{"grpc.max_message_bytes": 64 * 1024})


async def test_oversized_message_is_refused_by_grpc_with_resource_exhausted(world: World):
    huge = observation(1, world.people[0], crop=b"\xff" * (80 * 1024))
    call = world.ingest.Stream(metadata=world.md("cam-1"))
    error = await rpc_error(first_answer(call, [huge]))
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    # The server stays up for well-sized messages.
    await world.armed_window()
    [answer] = await world.stream("cam-1", [[observation(2, world.people[0])]])
    assert answer.results[0].outcome == ipb.OUTCOME_ALERT


def test_throttled_maps_to_resource_exhausted():
    from lfr.adapters.grpc.interceptors import status_for
    from lfr.domain.errors import Throttled

    assert status_for(Throttled("slow down", retry_after_seconds=3)) == grpc.StatusCode.RESOURCE_EXHAUSTED
