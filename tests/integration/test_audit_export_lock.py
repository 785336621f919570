"""A slow reader of the audit export must never hold SQLite's write lock: alerts go on being raised."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from lfr.adapters.grpc.control import MAX_PAGE
from lfr.config import LfrConfig
from lfr.v1 import control_pb2 as pb
from lfr.v1 import ingest_pb2 as ipb
from tests.integration.builders import event
from tests.integration.conftest import World, matcher_config, observation


@pytest.fixture
def config(sqlite_url: str) -> LfrConfig:
    return matcher_config(sqlite_url)


async def test_an_alert_is_raised_while_an_export_stream_is_open_and_unread(world: World):
    await world.armed_window()
    # More than a page, and more bytes than gRPC and the sockets buffer (~16 MB), so the server side of
    # the export really is waiting for its reader.
    with world.container.store() as uow:
        for n in range(MAX_PAGE + 10):
            uow.audit.append(replace(event(n), details={"n": n, "notes": "x" * 16_000}))
        uow.commit()
    export = world.audit.Export(pb.ExportRequest(from_seq=1), metadata=world.md("aud"))
    first = await export.read()
    assert first.seq == 1  # open, and then left unread

    answer = await asyncio.wait_for(
        world.stream("cam-1", [[observation(1, world.people[0])]]),
        timeout=5,  # well under SQLite's 10 s busy timeout, which a held lock would run into
    )
    assert answer[0].results[0].outcome == ipb.OUTCOME_ALERT
    export.cancel()
