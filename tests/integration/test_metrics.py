"""The Prometheus endpoint of a running matcher counts outcomes with bounded labels only."""

from __future__ import annotations

import asyncio
import urllib.request

import numpy as np
import pytest

from lfr.config import LfrConfig
from tests.integration.conftest import DIM, World, matcher_config, observation


@pytest.fixture
def config() -> LfrConfig:
    return matcher_config(**{"metrics.enabled": True, "metrics.listen": "127.0.0.1:0"})


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
        return str(reply.read().decode())


async def test_metrics_count_outcomes_and_rejections(world: World):
    window = await world.armed_window()
    batch = [
        observation(1, world.stranger()),
        observation(2, world.stranger()),
        observation(3, world.people[0]),
    ]
    batch.append(observation(4, np.zeros(DIM, dtype=np.float32)))
    await world.stream("cam-1", [batch])
    assert world.running.metrics_port is not None
    text = await asyncio.to_thread(scrape, world.running.metrics_port)
    assert 'lfr_faces_received_total{camera="cam-1",outcome="no_match"} 2.0' in text
    assert 'lfr_faces_received_total{camera="cam-1",outcome="alert"} 1.0' in text
    assert 'lfr_rejected_total{reason="bad_embedding"} 1.0' in text
    assert "lfr_alerts_raised_total 1.0" in text
    assert f'lfr_window_armed{{window="{window.id}"}} 1.0' in text
    assert "lfr_match_latency_seconds_count" in text
    assert world.subject_ids[0] not in text  # who matched is the audit log's business, not a label's


async def test_an_alert_records_the_time_from_capture_to_a_durable_alert(world: World):
    await world.armed_window()
    await world.stream("cam-1", [[observation(1, world.people[0]), observation(2, world.stranger())]])
    assert world.running.metrics_port is not None
    text = await asyncio.to_thread(scrape, world.running.metrics_port)
    assert "lfr_observation_to_alert_seconds_count 1.0" in text  # the alert, not the passer-by
    assert 'lfr_observation_to_alert_seconds_bucket{le="5.0"} 1.0' in text  # captured just now
