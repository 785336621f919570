"""What a matcher shows to callers who have not signed in, on real ports (127.0.0.1:0): gRPC reflection is
off unless `grpc.reflection`, /metrics can demand a bearer token (`metrics.token_file`), and the tablet's
OpenAPI document is for signed-in users unless `tablet.openapi` says otherwise."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import httpx
import pytest
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from lfr.bootstrap import Running, build_container, running_matcher, serving_tablet
from tests.integration.conftest import matcher_config

TOKEN = "metrics-scrape-token-0123456789"


async def listed_services(port: int) -> list[str]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        call = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
        async for answer in call:
            return [s.name for s in answer.list_services_response.service]
    return []


@pytest.fixture
async def matcher(sqlite_url: str, tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Running]:
    token_file = tmp_path / "metrics-token"
    token_file.write_text(TOKEN + "\n")
    overrides: dict[str, object] = {
        "metrics.enabled": True,
        "metrics.listen": "127.0.0.1:0",
        "tablet.listen": "127.0.0.1:0",
    }
    for key, value in getattr(request, "param", {}).items():
        overrides[key] = str(token_file) if value == "TOKEN_FILE" else value
    container = build_container(matcher_config(sqlite_url, **overrides))
    try:
        async with running_matcher(container, extensions=[serving_tablet]) as running:
            yield running
    finally:
        container.close()


async def test_by_default_reflection_is_off_and_openapi_needs_a_session(matcher: Running):
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await listed_services(matcher.port)
    assert refused.value.code() == grpc.StatusCode.UNIMPLEMENTED
    tablet = f"http://127.0.0.1:{matcher.container.tablet_port}"
    async with httpx.AsyncClient(base_url=tablet) as client:
        assert (await client.get("/api/openapi.json")).status_code == 401
        assert (await client.get("/docs")).status_code == 404


@pytest.mark.parametrize(
    "matcher",
    [{"grpc.reflection": True, "tablet.openapi": "public", "metrics.token_file": "TOKEN_FILE"}],
    indirect=True,
)
async def test_each_can_be_opened_and_metrics_demand_the_token(matcher: Running):
    assert "lfr.v1.CameraIngest" in await listed_services(matcher.port)
    tablet = f"http://127.0.0.1:{matcher.container.tablet_port}"
    async with httpx.AsyncClient() as client:
        assert (await client.get(f"{tablet}/api/openapi.json")).json()["info"]["title"]
        metrics = f"http://127.0.0.1:{matcher.metrics_port}/metrics"
        assert (await client.get(metrics)).status_code == 401
        assert (await client.get(metrics, headers={"Authorization": "Bearer wrong"})).status_code == 401
        scraped = await client.get(metrics, headers={"Authorization": f"Bearer {TOKEN}"})
        assert scraped.status_code == 200
        assert "lfr_faces_received" in scraped.text


@pytest.mark.parametrize("matcher", [{"tablet.openapi": "off"}], indirect=True)
async def test_openapi_can_be_switched_off(matcher: Running):
    tablet = f"http://127.0.0.1:{matcher.container.tablet_port}"
    async with httpx.AsyncClient(base_url=tablet) as client:
        assert (await client.get("/api/openapi.json")).status_code == 404
