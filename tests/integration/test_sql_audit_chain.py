"""The audit chain on real databases: concurrent writers cannot fork or gap it, tampering is caught."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import pytest

from lfr.adapters.storage.sql import SqlStore
from lfr.domain.audit import verify_chain
from lfr.domain.principal import Principal, PrincipalKind, Role
from lfr.services.audit import AuditService
from tests.integration.builders import alert, event

AUDITOR = Principal("aud", PrincipalKind.USER, frozenset({Role.AUDITOR}))
THREADS = 8
APPENDS_EACH = 15


@pytest.fixture
def store(store_url: str) -> Iterator[SqlStore]:
    opened = SqlStore.open(store_url)
    yield opened
    opened.close()


def run_concurrently(workers: list[Callable[[], None]]) -> None:
    start = threading.Barrier(len(workers))
    errors: list[BaseException] = []

    def run(work: Callable[[], None]) -> None:
        start.wait()
        try:
            work()
        except BaseException as exc:  # re-raised below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(w,)) for w in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors


def appender(store: SqlStore, worker: int) -> Callable[[], None]:
    def work() -> None:
        for i in range(APPENDS_EACH):
            with store() as uow:
                uow.audit.append(event(worker * 1000 + i))
                uow.commit()

    return work


def assert_unbroken_chain(store: SqlStore, expected: int) -> None:
    with store() as uow:
        records = list(uow.audit.records())
        head = uow.audit.head()
    assert [r.seq for r in records] == list(range(1, expected + 1))
    assert head is not None
    assert head.seq == expected
    verification = verify_chain(records, head)
    assert verification.ok, verification
    assert verification.records_checked == expected


def test_concurrent_appenders_neither_fork_nor_gap_the_chain(store: SqlStore) -> None:
    run_concurrently([appender(store, w) for w in range(THREADS)])
    assert_unbroken_chain(store, THREADS * APPENDS_EACH)


@pytest.mark.postgres
def test_two_replicas_share_one_unbroken_chain(postgres_store_url: str) -> None:
    replicas = [SqlStore.open(postgres_store_url), SqlStore.open(postgres_store_url)]
    try:
        run_concurrently([appender(replicas[w % 2], w) for w in range(THREADS)])
        assert_unbroken_chain(replicas[0], THREADS * APPENDS_EACH)
    finally:
        for replica in replicas:
            replica.close()


def test_concurrent_alerts_become_visible_in_sequence_order(store: SqlStore) -> None:
    """A subscriber that saw sequence n must never later find a new alert numbered below n."""
    seen_max = 0
    late: list[int] = []
    stop = threading.Event()

    def raise_alerts(worker: int) -> Callable[[], None]:
        def work() -> None:
            for i in range(10):
                with store() as uow:
                    stored = uow.alerts.add(alert(f"a-{worker}-{i}"))
                    uow.audit.append(event(stored.sequence))
                    uow.commit()

        return work

    def watch() -> None:
        nonlocal seen_max
        seen: set[int] = set()
        while not stop.is_set():
            with store() as uow:
                current = {a.sequence for a in uow.alerts.find(limit=1000)}
            late.extend(s for s in current - seen if s < seen_max)
            seen |= current
            seen_max = max(seen, default=0)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        run_concurrently([raise_alerts(w) for w in range(4)])
    finally:
        stop.set()
        watcher.join()
    with store() as uow:
        sequences = [a.sequence for a in uow.alerts.find(limit=1000)]
    assert len(sequences) == 40
    assert len(set(sequences)) == 40
    assert late == []


def test_concurrent_counter_flushes_lose_nothing(store: SqlStore) -> None:
    def flush() -> None:
        for _ in range(10):
            with store() as uow:
                uow.counters.increment({("w-1", "cam-1", "no_match"): 2, ("w-1", "cam-2", "no_match"): 1})
                uow.commit()

    run_concurrently([flush for _ in range(6)])
    with store() as uow:
        assert uow.counters.totals("w-1") == {
            ("w-1", "cam-1", "no_match"): 120,
            ("w-1", "cam-2", "no_match"): 60,
        }


# --- tamper evidence ---------------------------------------------------------------------------------

RECORDS = 6


@pytest.fixture
def chain(store: SqlStore) -> SqlStore:
    with store() as uow:
        for n in range(1, RECORDS + 1):
            uow.audit.append(event(n))
        uow.commit()
    assert AuditService(store).verify(AUDITOR).ok
    return store


def tamper(store: SqlStore, *statements: str) -> None:
    with store.engine.begin() as connection:
        for statement in statements:
            connection.exec_driver_sql(statement)


def test_an_edited_record_is_named(chain: SqlStore) -> None:
    tamper(chain, """UPDATE audit_records SET details_json = '{"n":99}' WHERE seq = 3""")
    result = AuditService(chain).verify(AUDITOR)
    assert not result.ok
    assert result.first_bad_seq == 3
    assert "does not match its hash" in result.reason


def test_a_deleted_record_is_named(chain: SqlStore) -> None:
    tamper(chain, "DELETE FROM audit_records WHERE seq = 4")
    result = AuditService(chain).verify(AUDITOR)
    assert not result.ok
    assert result.first_bad_seq == 4
    assert "missing" in result.reason


def test_two_swapped_records_are_caught_at_the_first_of_them(chain: SqlStore) -> None:
    # Swap everything but the sequence numbers, as someone reordering history would.
    columns = ["at_iso", "actor", "action", "subject_kind", "subject_id", "details_json", "prev_hash", "hash"]
    pairs = ", ".join(
        f"{c} = (SELECT {c} FROM audit_records o WHERE o.seq = 7 - audit_records.seq)" for c in columns
    )
    tamper(chain, f"UPDATE audit_records SET {pairs} WHERE seq IN (2, 5)")
    with chain() as uow:
        assert [r.subject_id for r in uow.audit.records()][1] == "win-5"  # the swap really happened
    result = AuditService(chain).verify(AUDITOR)
    assert not result.ok
    assert result.first_bad_seq == 2


def test_records_removed_from_the_end_are_caught_by_the_head(chain: SqlStore) -> None:
    tamper(chain, "DELETE FROM audit_records WHERE seq >= 5")
    result = AuditService(chain).verify(AUDITOR)
    assert not result.ok
    assert result.first_bad_seq == 5
    assert result.records_checked == 4
    assert "removed from the end" in result.reason
