"""The demo's deletion check: every byte under the work folder (SQLite file, its WAL, the log, the clip)
is searched for the face crops and embeddings the camera sent for people who did not match.

Only short fingerprints are held for the search, never the crops or embeddings themselves: 16 bytes from
the middle of a crop's compressed picture data (JPEG headers are alike in every crop, the picture data
is not), and the first 8 bytes of an embedding as sent and as the matcher normalised it. Fingerprints of
what must be found (alert crops, enrolled embeddings) are searched too: a search that finds those and
none of the others shows the others are gone, not that the search is blind.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lfr.domain.embedding import normalised

CROP_NEEDLE_BYTES = 16
_START_OF_SCAN = b"\xff\xda"


def crop_needle(jpeg: bytes) -> bytes:
    """16 bytes from the middle of the entropy-coded data after the JPEG's start-of-scan header."""
    start = jpeg.find(_START_OF_SCAN)
    if start < 0 or start + 4 > len(jpeg):
        return bytes(jpeg[len(jpeg) // 2 : len(jpeg) // 2 + CROP_NEEDLE_BYTES])
    header = int.from_bytes(jpeg[start + 2 : start + 4], "big")
    data_start, data_end = start + 2 + header, max(start + 2 + header, len(jpeg) - 2)
    middle = (data_start + data_end - CROP_NEEDLE_BYTES) // 2
    return bytes(jpeg[max(data_start, middle) : max(data_start, middle) + CROP_NEEDLE_BYTES])


def embedding_needles(embedding_f32le: bytes, dimension: int) -> tuple[int, int]:
    """The first 8 bytes of the embedding as sent and as the matcher normalised it, as integers."""
    vector = np.frombuffer(embedding_f32le, dtype="<f4")
    as_sent = np.ascontiguousarray(vector, dtype="<f4").tobytes()[:8]
    as_matched = normalised(vector.copy(), dimension).astype("<f4").tobytes()[:8]
    return int.from_bytes(as_sent, "little"), int.from_bytes(as_matched, "little")


def eight_byte_windows(data: bytes) -> np.ndarray:
    """Every 8-byte window of `data` at every offset, as integers, for a vectorised set lookup."""
    windows = [
        np.frombuffer(data, dtype="<u8", count=(len(data) - k) // 8, offset=k)
        for k in range(min(8, len(data)))
        if len(data) - k >= 8
    ]
    return np.concatenate(windows) if windows else np.zeros(0, dtype="<u8")


@dataclass(slots=True)
class Fingerprints:
    crops: list[bytes] = field(default_factory=list)
    embeddings: list[tuple[int, int]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Findings:
    crops: int  # how many of the crops were found somewhere
    embeddings: int
    where: tuple[str, ...]  # files holding any of them


@dataclass(frozen=True, slots=True)
class ScanReport:
    files: tuple[tuple[str, int], ...]  # relative path, size in bytes
    forgotten: Findings  # of faces that did not match: must be all zeros
    kept: Findings  # of alert crops (as stored: sealed) and enrolled embeddings: must be found
    in_clear: Findings = Findings(0, 0, ())  # of alert crops as sent: kept only sealed, so none

    @property
    def total_bytes(self) -> int:
        return sum(size for _, size in self.files)


def _search(contents: dict[str, bytes], needles: Fingerprints) -> Findings:
    crops_found = [False] * len(needles.crops)
    embeddings_found = [False] * len(needles.embeddings)
    wanted = np.array(sorted({n for pair in needles.embeddings for n in pair}), dtype="<u8")
    where: set[str] = set()
    for name, data in contents.items():
        for i, needle in enumerate(needles.crops):
            if needle and needle in data:
                crops_found[i] = True
                where.add(name)
        if len(wanted):
            windows = eight_byte_windows(data)
            hits = set(windows[np.isin(windows, wanted)].tolist())
            for i, pair in enumerate(needles.embeddings):
                if hits.intersection(pair):
                    embeddings_found[i] = True
                    where.add(name)
    return Findings(sum(crops_found), sum(embeddings_found), tuple(sorted(where)))


def scan_folder(
    folder: Path, forgotten: Fingerprints, kept: Fingerprints, sealed: Fingerprints | None = None
) -> ScanReport:
    """`sealed`: what is kept only encrypted, so must not be found as it was sent.

    Scans in a child process. Closing a file descriptor drops every POSIX lock the closing process
    holds on that file, so reading the live SQLite database and its -shm from the process serving it
    would silently release that process's SQLite locks; the next `lfr` command on the database would
    then take itself for the last connection and delete the WAL under the live process."""
    context = multiprocessing.get_context("spawn")  # forking a process running gRPC threads is unsafe
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        return pool.submit(_scan_here, folder, forgotten, kept, sealed).result()


def _scan_here(
    folder: Path, forgotten: Fingerprints, kept: Fingerprints, sealed: Fingerprints | None = None
) -> ScanReport:
    contents = {str(p.relative_to(folder)): p.read_bytes() for p in _files(folder)}
    return ScanReport(
        tuple((name, len(data)) for name, data in contents.items()),
        _search(contents, forgotten),
        _search(contents, kept),
        _search(contents, sealed or Fingerprints()),
    )


def stored_needle(stored: bytes) -> bytes:
    """16 bytes from the middle of an image as the store holds it (ciphertext)."""
    middle = len(stored) // 2
    return bytes(stored[middle : middle + CROP_NEEDLE_BYTES])


def _files(folder: Path) -> Iterable[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file())
