"""The deletion proof: thousands of passers-by through a real matcher with an SQLite store and DEBUG
logging, then every byte the process wrote is searched for their crops and embeddings. None is found.
The one matching face's crop is kept, but only as ciphertext: the scan finds the stored ciphertext
(which proves the search can find what it looks for) and never the crop itself."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest

from lfr.bootstrap import QUIET_LOGGERS, build_container, configure_logging, running_matcher
from lfr.config import LfrConfig
from lfr.domain.embedding import normalised
from lfr.v1 import ingest_pb2 as ipb
from tests.integration.conftest import DIM, SUBJECTS, World, make_accounts, matcher_config, observation, unit
from tests.support import tiny_jpeg

PASSERS_BY = 3000
BATCH = 100
CROP_MARKER = b"LFR-PASSER-BY-CROP-"
MATCH_MARKER = b"LFR-MATCHING-FACE-CROP"


def every_byte_written(folder: Path) -> Iterator[tuple[Path, bytes]]:
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            yield path, path.read_bytes()


def eight_byte_windows(data: bytes) -> np.ndarray:
    """Every 8-byte window of `data` at every offset, as integers, for a vectorised set lookup."""
    windows = [
        np.frombuffer(data, dtype="<u8", count=(len(data) - k) // 8, offset=k)
        for k in range(min(8, len(data)))
    ]
    return np.concatenate(windows) if windows else np.zeros(0, dtype="<u8")


def needles(vector: np.ndarray) -> list[int]:
    """The first 8 bytes of an embedding as the camera sent it and as the matcher normalised it."""
    sent = np.ascontiguousarray(vector, dtype="<f4").tobytes()[:8]
    matched = normalised(vector, DIM).astype("<f4").tobytes()[:8]
    return [int.from_bytes(sent, "little"), int.from_bytes(matched, "little")]


@pytest.fixture
def config(tmp_path: Path) -> LfrConfig:
    return matcher_config(f"sqlite:///{tmp_path / 'store' / 'lfr.db'}")


async def test_non_matches_leave_no_trace_in_database_wal_or_logs(tmp_path: Path, config: LfrConfig):
    log_file = tmp_path / "matcher.log"
    root = logging.getLogger()
    saved = (root.level, list(root.handlers), {n: logging.getLogger(n).level for n in QUIET_LOGGERS})
    configure_logging("DEBUG", str(log_file))  # what `lfr serve --log-level DEBUG` does
    try:
        container = build_container(config)
        tokens = make_accounts(container)
        rng = np.random.default_rng(5)
        people = [unit(rng.normal(size=DIM)) for _ in range(SUBJECTS)]
        strangers = unit_rows(rng.normal(size=(PASSERS_BY, DIM)))
        async with (
            running_matcher(container) as running,
            grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel,
        ):
            world = World(container, running.port, tokens, people, rng, channel, running)
            await world.armed_window()
            batches = [
                [
                    observation(i, strangers[i], crop=tiny_jpeg(CROP_MARKER + b"%06d" % i))
                    for i in range(start, start + BATCH)
                ]
                for start in range(0, PASSERS_BY, BATCH)
            ]
            batches[len(batches) // 2].append(observation(10**6, people[0], crop=tiny_jpeg(MATCH_MARKER)))
            answers = await world.stream("cam-1", batches)
            outcomes = [r.outcome for a in answers for r in a.results]
            assert outcomes.count(ipb.OUTCOME_NO_MATCH) == PASSERS_BY
            assert outcomes.count(ipb.OUTCOME_ALERT) == 1
        container.close()
    finally:
        for handler in root.handlers:
            handler.close()
        root.handlers[:] = saved[1]
        root.setLevel(saved[0])
        for name, level in saved[2].items():
            logging.getLogger(name).setLevel(level)

    files = dict(every_byte_written(tmp_path))
    names = {p.name for p in files}
    assert {"lfr.db", "matcher.log"} <= names
    assert any(name.endswith("-wal") for name in names) or (tmp_path / "store" / "lfr.db").stat().st_size > 0
    assert log_file.stat().st_size > 0
    stored = stored_crops(tmp_path / "store" / "lfr.db")
    assert len(stored) == 1
    assert stored[0].startswith(b"LFRE1")  # sealed (lfr/adapters/envelope.py)
    ciphertext = stored[0][len(stored[0]) // 2 :][:32]
    assert any(ciphertext in data for data in files.values()), "the scan must find the stored crop"
    assert not any(MATCH_MARKER in data for data in files.values()), "the alert crop is stored in clear"
    with container.store() as uow:  # ... and opens with the key, for an authorised reader
        [listed] = uow.alerts.find()
        kept = uow.alerts.get(listed.id)
    assert MATCH_MARKER in kept.crop_jpeg
    leaked = [str(p) for p, data in files.items() if CROP_MARKER in data]
    assert leaked == [], f"passer-by crops found in {leaked}"
    wanted = np.array([n for v in strangers for n in needles(v)], dtype="<u8")
    for path, data in files.items():
        hits = np.isin(eight_byte_windows(data), wanted)
        assert not hits.any(), f"passer-by embedding bytes found in {path}"
    # The embedding search works: the watchlist's own (enrolled) embeddings are in the database.
    enrolled = np.array(needles(people[1])[1:], dtype="<u8")
    assert any(np.isin(eight_byte_windows(data), enrolled).any() for data in files.values())


def stored_crops(database: Path) -> list[bytes]:
    """The alert crops exactly as the database file holds them."""
    connection = sqlite3.connect(database)
    try:
        return [bytes(row[0]) for row in connection.execute("SELECT crop_jpeg FROM alerts")]
    finally:
        connection.close()


def unit_rows(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


TRACKS = 400
FACES_PER_TRACK = 4


async def test_many_non_matching_tracks_leave_no_trace_and_their_fused_evidence_is_wiped(
    tmp_path: Path, config: LfrConfig
):
    """Issue 10: the matcher fuses each track's faces in memory. Strangers walking past in tracks of four
    faces (each track one person, a little different each face): nothing of any face, nor of any
    track's fused probe, reaches a file, and the evidence is zeroed when the matcher closes."""
    log_file = tmp_path / "matcher.log"
    root = logging.getLogger()
    saved = (root.level, list(root.handlers), {n: logging.getLogger(n).level for n in QUIET_LOGGERS})
    configure_logging("DEBUG", str(log_file))
    try:
        container = build_container(config)
        tokens = make_accounts(container)
        rng = np.random.default_rng(9)
        people = [unit(rng.normal(size=DIM)) for _ in range(SUBJECTS)]
        walkers = unit_rows(rng.normal(size=(TRACKS, DIM)))
        faces = unit_rows(
            np.repeat(walkers, FACES_PER_TRACK, axis=0)
            + 0.1 * rng.normal(size=(TRACKS * FACES_PER_TRACK, DIM))
        )
        fused = unit_rows(faces.reshape(TRACKS, FACES_PER_TRACK, DIM).sum(axis=1))
        async with (
            running_matcher(container) as running,
            grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel,
        ):
            world = World(container, running.port, tokens, people, rng, channel, running)
            await world.armed_window()
            batches = []
            for face in range(FACES_PER_TRACK):  # faces of all tracks interleave, as on a busy street
                batch = []
                for track in range(TRACKS):
                    seq = face * TRACKS + track
                    message = observation(
                        seq,
                        faces[track * FACES_PER_TRACK + face],
                        crop=tiny_jpeg(CROP_MARKER + b"%06d" % seq),
                    )
                    message.track_id = f"walker-{track}"
                    batch.append(message)
                batches.append(batch)
            answers = await world.stream("cam-1", batches)
            outcomes = [r.outcome for a in answers for r in a.results]
            assert outcomes.count(ipb.OUTCOME_NO_MATCH) == TRACKS * FACES_PER_TRACK
            evidence = container.ingest.track_evidence
            assert len(evidence) == TRACKS
            sums = [t.total for t in evidence._tracks.values()]
        container.close()
        assert len(evidence) == 0
        assert not any(s.any() for s in sums)
    finally:
        for handler in root.handlers:
            handler.close()
        root.handlers[:] = saved[1]
        root.setLevel(saved[0])
        for name, level in saved[2].items():
            logging.getLogger(name).setLevel(level)

    files = dict(every_byte_written(tmp_path))
    assert {"lfr.db", "matcher.log"} <= {p.name for p in files}
    leaked = [str(p) for p, data in files.items() if CROP_MARKER in data]
    assert leaked == [], f"passer-by crops found in {leaked}"
    wanted = np.array(
        [n for v in faces for n in needles(v)] + [n for v in fused for n in needles(v)], dtype="<u8"
    )
    for path, data in files.items():
        hits = np.isin(eight_byte_windows(data), wanted)
        assert not hits.any(), f"passer-by embedding or fused track bytes found in {path}"
