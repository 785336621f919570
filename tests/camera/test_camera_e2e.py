"""End to end: enrol a person from LFW photos through gRPC, arm a window, stream a clip of that person and
of strangers through a real camera node to a real matcher: alerts only for the listed person, and the
strangers leave nothing but counters."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import cv2
import grpc
import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from lfr.adapters.camera.config import CameraNodeConfig
from lfr.adapters.embedder import InsightFaceEmbedder
from lfr.adapters.enrolment import EnrolmentRow, embed_subjects
from lfr.adapters.watchlist_upload import upload_report
from lfr.bootstrap import build_camera_node, build_container, running_matcher
from lfr.v1 import control_pb2 as pb
from lfr.v1 import control_pb2_grpc
from tests.camera.conftest import Lfw
from tests.integration.conftest import auth, make_accounts, matcher_config, stamp

pytestmark = pytest.mark.models


def write_clip(path: Path, appearances: list[Path], frames_each: int = 8) -> None:
    """Each photo walks a few pixels per frame across a grey 640x480 scene; MJPG keeps it lossy-real."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (640, 480))
    for n, photo in enumerate(appearances):
        face = cv2.imread(str(photo))
        for k in range(frames_each):
            scene = np.full((480, 640, 3), 110, np.uint8)
            x, y = 60 + 40 * (n % 3) + 4 * k, 100 + 2 * k
            scene[y : y + 250, x : x + 250] = face
            writer.write(scene)
    writer.release()


async def test_clip_alerts_only_for_the_watchlisted_person(
    embedder: InsightFaceEmbedder, lfw: Lfw, tmp_path: Path
) -> None:
    wanted, *strangers = lfw.identities_with(4)[5:8]
    photos = lfw.by_identity[wanted]
    container = build_container(matcher_config())
    tokens = make_accounts(container)
    async with running_matcher(container) as running:
        address = f"127.0.0.1:{running.port}"
        rows = [
            EnrolmentRow("W-1", "Wanted Person", "wanted", "warrant", "custody", p.name, 2)
            for p in photos[:2]
        ]
        report = embed_subjects(embedder, rows, photos[0].parent)
        with grpc.insecure_channel(address) as channel:
            uploaded = await asyncio.to_thread(
                upload_report, channel, tokens["sam"], report, watchlist_name="e2e", seal=True
            )
        subject_id = uploaded.added["W-1"]
        async with grpc.aio.insecure_channel(address) as channel:
            deployments = control_pb2_grpc.DeploymentsStub(channel)
            now = datetime.now(UTC)
            window = await deployments.CreateWindow(
                pb.CreateWindowRequest(
                    purpose="e2e",
                    legal_basis="test",
                    location="lab",
                    camera_ids=["cam-1"],
                    watchlist_id=uploaded.watchlist_id,
                    threshold=0.4,
                    starts_at=stamp(now - timedelta(minutes=1)),
                    ends_at=stamp(now + timedelta(hours=1)),
                    assigned_users=["olly"],
                ),
                metadata=auth(tokens["sam"]),
            )
            await deployments.AuthoriseWindow(pb.WindowRef(window_id=window.id), metadata=auth(tokens["sue"]))

        clip = tmp_path / "clip.avi"
        appearances = [
            photos[2],
            lfw.by_identity[strangers[0]][0],
            photos[3],
            lfw.by_identity[strangers[1]][0],
        ]
        write_clip(clip, appearances)
        (tmp_path / "token").write_text(tokens["cam-1"])
        before = sorted(tmp_path.rglob("*"))
        config = CameraNodeConfig.model_validate(
            {
                "camera_id": "cam-1",
                "matcher": {"address": address, "token_file": str(tmp_path / "token")},
                "source": {"uri": str(clip), "realtime": False},
                "tracker": {"min_interval_ms": 150},
                "metrics": {"enabled": False},
            }
        )
        registry = CollectorRegistry()
        node = build_camera_node(config, registry, embedder=embedder, serve=False)
        summary = await asyncio.wait_for(node.run(), 60)

        def value(name: str, **labels: str) -> float:
            return registry.get_sample_value(name, {"camera": "cam-1", **labels}) or 0.0

        assert summary.frames == 32
        assert summary.dropped_frames == 0
        assert summary.unanswered == 0
        assert value("lfr_camera_faces_detected_total") >= 32
        # The tracker spared the recogniser most faces: a few per appearance, not one per frame.
        assert 4 <= value("lfr_camera_faces_embedded_total") < value("lfr_camera_faces_detected_total") / 2
        assert value("lfr_camera_results_total", outcome="alert") >= 2
        assert value("lfr_camera_results_total", outcome="no_match") >= 2
        assert value("lfr_camera_results_total", outcome="rejected") == 0
        assert value("lfr_camera_results_total", outcome="not_armed") == 0

        alerts = container.alerts.list_alerts(container.principals.get("sam"))
        assert alerts
        assert {a.subject_id for a in alerts} == {subject_id}
        with container.store() as uow:
            assert len(uow.alerts.find()) == len(alerts) == value("lfr_camera_results_total", outcome="alert")
        container.flush_counters()
        with container.store() as uow:
            totals = uow.counters.totals(window.id)
        assert totals[(window.id, "cam-1", "no_match")] == value(
            "lfr_camera_results_total", outcome="no_match"
        )
        assert sorted(tmp_path.rglob("*")) == before  # the node wrote nothing to disk
    container.close()
