"""TLS and mutual TLS on the matcher's gRPC port, with certificates made at test time: who gets through,
who is refused, and what a bad certificate configuration says at startup."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import logging
import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import grpc
import numpy as np
import pytest
from prometheus_client import CollectorRegistry
from typer.testing import CliRunner

from lfr.adapters.camera.client import MatcherClient, Outgoing, StreamPolicy
from lfr.adapters.camera.config import MatcherSettings
from lfr.adapters.camera.metrics import CameraMetrics
from lfr.adapters.grpc.channels import ChannelSecurity, open_aio_channel
from lfr.bootstrap import build_container, running_matcher
from lfr.cli.main import app
from lfr.config import LfrConfig
from lfr.domain.errors import InvalidInput
from lfr.domain.observation import FaceQuality
from lfr.v1 import control_pb2 as pb
from lfr.v1 import ingest_pb2
from tests.camera.conftest import REPO, model_settings
from tests.integration.conftest import (
    DIM,
    MODEL,
    SUBJECTS,
    World,
    make_accounts,
    matcher_config,
    observation,
    rpc_error,
    unit,
)
from tests.pki import Pki, make_pki
from tests.support import tiny_jpeg


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def lfw_image() -> tuple[Path, Path]:
    """(LFW root, one photo of one person) for enrolment."""
    root = Path(os.environ.get("LFR_TEST_DATASETS") or REPO.parent / "shared" / "datasets") / "lfw"
    if not (root / "manifest.csv").is_file():
        pytest.skip(f"LFW not found at {root}: set LFR_TEST_DATASETS to the folder holding lfw/")
    settings = model_settings()
    if not (Path(settings.root or "") / "models" / settings.resolved_pack()).is_dir():
        pytest.skip("model pack not found: set LFR_MODEL_ROOT and LFR_MODEL_PACK")
    with (root / "manifest.csv").open(newline="") as handle:
        first = next(csv.DictReader(handle))
    return root, root / first["path"]


def tls_config(pki: Pki, *, mutual: bool = False, **overrides: object) -> LfrConfig:
    values: dict[str, object] = {"grpc.tls_cert_file": pki.server.cert, "grpc.tls_key_file": pki.server.key}
    if mutual:
        values["grpc.client_ca_file"] = pki.ca
    values.update(overrides)
    return matcher_config(**values)


@contextlib.asynccontextmanager
async def serving(config: LfrConfig, security: ChannelSecurity) -> AsyncIterator[World]:
    """A real matcher with accounts, and a World whose channel connects with `security`."""
    container = build_container(config)
    tokens = make_accounts(container)
    rng = np.random.default_rng(3)
    people = [unit(rng.normal(size=DIM)) for _ in range(SUBJECTS)]
    try:
        async with (
            running_matcher(container) as running,
            open_aio_channel(f"localhost:{running.port}", security) as channel,
        ):
            yield World(container, running.port, tokens, people, rng, channel, running)
    finally:
        container.close()


async def refused(world: World, security: ChannelSecurity) -> grpc.aio.AioRpcError:
    async with open_aio_channel(f"localhost:{world.port}", security) as channel:
        other = World(
            world.container, world.port, world.tokens, world.people, world.rng, channel, world.running
        )
        return await rpc_error(
            other.deployments.ListWindows(pb.ListWindowsRequest(), metadata=world.md("sam"), timeout=5)
        )


async def test_tls_matcher_serves_control_calls_and_ingest_streams_to_a_client_trusting_its_ca(pki):
    async with serving(tls_config(pki), ChannelSecurity(ca_file=pki.ca)) as world:
        window = await world.armed_window()
        listed = await world.deployments.ListWindows(pb.ListWindowsRequest(), metadata=world.md("sam"))
        assert [w.id for w in listed.windows] == [window.id]
        [answer] = await world.stream(
            "cam-1", [[observation(1, world.people[2]), observation(2, world.stranger())]]
        )
        assert [r.outcome for r in answer.results] == [ingest_pb2.OUTCOME_ALERT, ingest_pb2.OUTCOME_NO_MATCH]


async def test_tls_matcher_refuses_plaintext_clients_and_clients_trusting_another_ca(pki):
    async with serving(tls_config(pki), ChannelSecurity(ca_file=pki.ca)) as world:
        plaintext = await refused(world, ChannelSecurity())
        wrong_ca = await refused(world, ChannelSecurity(ca_file=pki.other_ca))
        assert plaintext.code() is grpc.StatusCode.UNAVAILABLE
        assert wrong_ca.code() is grpc.StatusCode.UNAVAILABLE
        # ... while the right CA still gets through on the same server.
        await world.deployments.ListWindows(pb.ListWindowsRequest(), metadata=world.md("sam"))


async def test_mutual_tls_needs_a_client_certificate_from_the_configured_ca_and_still_a_token(pki):
    with_cert = ChannelSecurity(pki.ca, pki.client.cert, pki.client.key)
    async with serving(tls_config(pki, mutual=True), with_cert) as world:
        without_cert = await refused(world, ChannelSecurity(ca_file=pki.ca))
        foreign_cert = await refused(
            world, ChannelSecurity(pki.ca, pki.stranger_client.cert, pki.stranger_client.key)
        )
        assert without_cert.code() is grpc.StatusCode.UNAVAILABLE
        assert foreign_cert.code() is grpc.StatusCode.UNAVAILABLE

        await world.deployments.ListWindows(pb.ListWindowsRequest(), metadata=world.md("sam"))
        no_token = await rpc_error(world.deployments.ListWindows(pb.ListWindowsRequest()))
        assert no_token.code() is grpc.StatusCode.UNAUTHENTICATED


@pytest.mark.parametrize("mutual", [False, True], ids=["tls", "mutual-tls"])
async def test_camera_client_streams_over_tls_with_its_node_config(pki, mutual):
    settings = MatcherSettings(
        root_certificates=pki.ca,
        client_cert_file=pki.client.cert if mutual else None,
        client_key_file=pki.client.key if mutual else None,
    )
    async with serving(
        tls_config(pki, mutual=mutual), ChannelSecurity(pki.ca, pki.client.cert, pki.client.key)
    ) as world:
        await world.armed_window()
        registry = CollectorRegistry()
        client = MatcherClient(
            f"localhost:{world.port}",
            world.tokens["cam-1"],
            "cam-1",
            MODEL,
            DIM,
            CameraMetrics(registry, "cam-1"),
            StreamPolicy(backoff_initial_s=0.05, backoff_max_s=0.2),
            settings.security(),
        )
        for vector in (world.people[0], world.stranger()):
            client.submit(
                Outgoing("t", datetime.now(UTC), vector.copy(), bytearray(tiny_jpeg()), FaceQuality())
            )
        runner = asyncio.create_task(client.run())
        try:
            assert await client.drain(5.0), "the matcher did not answer over TLS"
        finally:
            client.stop()
            await asyncio.wait_for(runner, 5)
        counts = {
            outcome: registry.get_sample_value(
                "lfr_camera_results_total", {"camera": "cam-1", "outcome": outcome}
            )
            for outcome in ("alert", "no_match")
        }
        assert counts == {"alert": 1.0, "no_match": 1.0}
        assert client.attempts == 1


async def test_control_commands_take_a_ca_file_and_fail_clearly_without_one(pki):
    async with serving(tls_config(pki), ChannelSecurity(ca_file=pki.ca)) as world:
        args = ["window", "list", "--server", f"localhost:{world.port}", "--token", world.tokens["sam"]]
        runner = CliRunner()
        trusted = await asyncio.to_thread(runner.invoke, app, [*args, "--ca-file", str(pki.ca)])
        untrusted = await asyncio.to_thread(runner.invoke, app, args)
        missing = await asyncio.to_thread(
            runner.invoke, app, [*args, "--ca-file", str(pki.ca.parent / "nope.pem")]
        )
    assert trusted.exit_code == 0, trusted.output
    assert untrusted.exit_code == 1
    assert "UNAVAILABLE" in untrusted.output
    assert missing.exit_code == 1
    assert "nope.pem" in missing.output


async def test_mismatched_certificate_and_key_stop_startup_with_both_paths(pki):
    config = tls_config(pki, **{"grpc.tls_key_file": pki.client.key})
    container = build_container(config)
    try:
        with pytest.raises(InvalidInput, match="not a usable pair") as caught:
            async with running_matcher(container):
                pass
    finally:
        container.close()
    assert str(pki.server.cert) in str(caught.value)
    assert str(pki.client.key) in str(caught.value)


@pytest.mark.parametrize("setting", ["grpc.tls_cert_file", "grpc.tls_key_file", "grpc.client_ca_file"])
async def test_unreadable_certificate_file_stops_startup_naming_it(pki, tmp_path, setting):
    missing = tmp_path / "missing.pem"
    config = tls_config(pki, mutual=True, **{setting: missing})
    container = build_container(config)
    try:
        with pytest.raises(InvalidInput, match=f"cannot read {setting} {missing}"):
            async with running_matcher(container):
                pass
    finally:
        container.close()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"grpc.tls_cert_file": "/etc/lfr/grpc.crt"}, "tls_key_file is missing"),
        ({"grpc.tls_key_file": "/etc/lfr/grpc.key"}, "tls_cert_file is missing"),
        ({"grpc.client_ca_file": "/etc/lfr/ca.pem"}, "client_ca_file .* needs tls_cert_file"),
    ],
)
def test_incomplete_tls_settings_are_a_config_error(overrides, message):
    with pytest.raises(InvalidInput, match=message):
        matcher_config(**overrides)


async def test_plaintext_on_a_public_address_is_warned_about_and_loopback_is_not(caplog):
    caplog.set_level(logging.WARNING, logger="lfr.adapters.grpc.server")
    for listen in ("127.0.0.1:0", "0.0.0.0:0"):
        container = build_container(matcher_config())
        try:
            async with running_matcher(container, listen=listen):
                pass
        finally:
            container.close()
        if listen.startswith("127."):
            assert not caplog.records, "loopback plaintext must stay quiet"
    [warning] = caplog.records
    assert "0.0.0.0:0 WITHOUT TLS" in warning.getMessage()


@pytest.mark.models
async def test_enrol_uploads_a_watchlist_over_tls(pki, tmp_path, lfw_image):
    root, image = lfw_image
    csv_file = tmp_path / "subjects.csv"
    csv_file.write_text(
        "subject_id,name,category,reason,image_source,image_path\n"
        f"S1,Test Person,wanted,warrant,custody,{image.relative_to(root)}\n"
    )
    settings = model_settings()
    async with serving(tls_config(pki), ChannelSecurity(ca_file=pki.ca)) as world:
        result = await asyncio.to_thread(
            CliRunner().invoke,
            app,
            [
                *("enrol", "--images", str(root), "--csv", str(csv_file), "--watchlist-name", "over tls"),
                *("--matcher", f"localhost:{world.port}", "--ca-file", str(pki.ca)),
                *("--model-root", str(settings.root), "--model-pack", settings.resolved_pack()),
            ],
            env={"LFR_TOKEN": world.tokens["sam"]},
        )
        assert result.exit_code == 0, result.output
        listed = await world.watchlists.ListWatchlists(pb.Empty(), metadata=world.md("sam"))
    assert [(w.name, w.subject_count) for w in listed.watchlists] == [("over tls", 1)]


def test_enrol_and_camera_refuse_unusable_tls_files_before_loading_models(tmp_path, monkeypatch):
    runner = CliRunner()
    csv_file = tmp_path / "subjects.csv"
    csv_file.write_text("subject_id,name,category,reason,image_source,image_path\nS1,A,c,r,s,a.jpg\n")
    enrol = runner.invoke(
        app,
        ["enrol", "--images", str(tmp_path), "--csv", str(csv_file), "--watchlist-name", "x"],
        env={"LFR_TOKEN": "t0k3n", "LFR_CA_FILE": str(tmp_path / "nope.pem")},
    )
    assert enrol.exit_code == 2
    assert f"cannot read CA file {tmp_path / 'nope.pem'}" in enrol.output

    monkeypatch.setenv("LFR_CAMERA_TOKEN", "t0k3n")
    half = tmp_path / "half.yaml"
    half.write_text(f"camera_id: c1\nsource: {{uri: {tmp_path}}}\nmatcher: {{client_cert_file: /x.crt}}\n")
    camera = runner.invoke(app, ["camera", "--config", str(half)])
    assert camera.exit_code == 2
    assert "client_key_file is missing" in camera.output

    bad_ca = tmp_path / "ca.yaml"
    bad_ca.write_text(
        f"camera_id: c1\nsource: {{uri: {tmp_path}}}\nmatcher: {{root_certificates: {csv_file}}}\n"
    )
    camera = runner.invoke(app, ["camera", "--config", str(bad_ca)])
    assert camera.exit_code == 2
    assert f"CA file {csv_file} is not a PEM file" in camera.output
