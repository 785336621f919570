"""What Prometheus is told about arming: the armed gauge drops to 0 when a store failure disarms the
matcher, windows that are over leave the `window` label, and the number of windows whose authorised
schedule is open now stays known through a store failure (so "disarmed while a window should be armed"
can alert)."""

from __future__ import annotations

from datetime import timedelta

from prometheus_client import CollectorRegistry

from lfr.adapters.metrics import PrometheusIngestMetrics
from lfr.services.arming import ArmingMonitor
from tests.unit.test_services import SUP, T0, BrokenStore, World


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


def series(registry: CollectorRegistry, name: str) -> list[dict[str, str]]:
    return [s.labels for m in registry.collect() for s in m.samples if s.name == name]


def monitored(world: World) -> tuple[ArmingMonitor, CollectorRegistry]:
    registry = CollectorRegistry()
    return ArmingMonitor(world.store, world.clock, PrometheusIngestMetrics(registry)), registry


def test_a_store_failure_sets_armed_to_zero_and_keeps_the_schedule_known() -> None:
    world = World()
    window = world.window(world.sealed_watchlist())
    world.deployments.authorise(window.id, SUP)
    monitor, registry = monitored(world)
    monitor.refresh()
    assert sample(registry, "lfr_window_armed", window=window.id) == 1
    assert sample(registry, "lfr_windows_armed") == 1
    assert sample(registry, "lfr_windows_open_by_schedule") == 1
    read_at = sample(registry, "lfr_windows_read_timestamp_seconds")
    assert read_at == T0.timestamp()

    monitor._uow = BrokenStore()
    world.clock.advance(timedelta(seconds=30))
    monitor.refresh()
    assert sample(registry, "lfr_window_armed", window=window.id) == 0
    assert sample(registry, "lfr_windows_armed") == 0
    assert sample(registry, "lfr_windows_open_by_schedule") == 1  # from the last good read
    assert sample(registry, "lfr_windows_read_timestamp_seconds") == read_at


def test_the_schedule_known_from_the_last_read_closes_on_time_during_a_failure() -> None:
    world = World()
    window = world.window(world.sealed_watchlist(), hours=1)
    world.deployments.authorise(window.id, SUP)
    monitor, registry = monitored(world)
    monitor.refresh()
    monitor._uow = BrokenStore()
    world.clock.advance(timedelta(hours=2))
    monitor.refresh()
    assert sample(registry, "lfr_windows_open_by_schedule") == 0


def test_finished_windows_leave_the_window_label() -> None:
    world = World()
    watchlist = world.sealed_watchlist()
    ids = []
    for hour in range(5):
        window = world.window(watchlist, start=T0 + timedelta(hours=hour), hours=1)
        world.deployments.authorise(window.id, SUP)
        ids.append(window.id)
    monitor, registry = monitored(world)
    for hour in range(5):
        world.clock.set(T0 + timedelta(hours=hour, minutes=30))
        monitor.refresh()
        assert sample(registry, "lfr_window_armed", window=ids[hour]) == 1
    world.clock.set(T0 + timedelta(hours=6))
    monitor.refresh()
    assert series(registry, "lfr_window_armed") == []
    assert sample(registry, "lfr_windows_armed") == 0


def test_a_clock_skew_disarm_sets_armed_to_zero_without_counting_a_store_failure() -> None:
    from lfr.services.timekeeping import StoreClock

    world = World()
    window = world.window(world.sealed_watchlist())
    world.deployments.authorise(window.id, SUP)
    store_time = [T0]
    timekeeper = StoreClock(world.clock, lambda: store_time[0], max_skew=timedelta(seconds=1))
    registry = CollectorRegistry()
    monitor = ArmingMonitor(
        world.store, world.clock, PrometheusIngestMetrics(registry), timekeeper=timekeeper
    )
    monitor.refresh()
    assert sample(registry, "lfr_windows_armed") == 1
    store_time[0] = T0 + timedelta(seconds=30)  # this replica's clock is now 30 s behind the store's
    monitor.refresh()
    assert sample(registry, "lfr_window_armed", window=window.id) == 0
    assert sample(registry, "lfr_windows_armed") == 0
    assert sample(registry, "lfr_windows_open_by_schedule") == 1
    assert sample(registry, "lfr_windows_read_failures_total") == 0


def test_a_store_failure_counts_a_read_failure() -> None:
    world = World()
    monitor, registry = monitored(world)
    monitor.refresh()
    monitor._uow = BrokenStore()
    monitor.refresh()
    monitor.refresh()
    assert sample(registry, "lfr_windows_read_failures_total") == 2
