"""One search index per sealed watchlist, proven against the sealed hash, built off the hot path.

`prepare` (the gate refresh, in a background thread) builds the indexes of the live windows; a finished
index is published with one dict assignment, so searches see the old set or the new one, never a
half-built index. A search for a window whose index another thread is still building does not wait for
it (that would stall every camera's batch): it gets IndexNotReady. Only an index nobody is building is
built on first use, as before.
"""

from __future__ import annotations

import logging
import threading

from lfr.domain.errors import Conflict, LfrError
from lfr.domain.ports import UnitOfWorkFactory, VectorIndex, VectorIndexFactory
from lfr.domain.watchlist import content_hash, mean_templates
from lfr.domain.window import DeploymentWindow
from lfr.services.watchlists import enrolled_subjects

logger = logging.getLogger(__name__)

Key = tuple[str, str]


class IndexNotReady(LfrError):
    """The window's index is being built in the background; try again shortly."""


class IndexCache:
    def __init__(
        self, uow: UnitOfWorkFactory, factory: VectorIndexFactory, wait_for_build_s: float = 1.0
    ) -> None:
        self._uow = uow
        self._factory = factory
        self._indexes: dict[Key, VectorIndex] = {}
        self._building: set[Key] = set()
        self._cancelled: set[Key] = set()
        self._lock = threading.Lock()  # guards _building and writes of _indexes; never held while building
        self._build_ended = threading.Condition(self._lock)
        # A window just armed has its index built in the background: a face arriving a moment later waits
        # for a small build rather than being refused, but a long one (a big watchlist) holds no batch up.
        self._wait_for_build_s = wait_for_build_s

    def for_window(self, window: DeploymentWindow) -> VectorIndex:
        key = (window.watchlist_id, window.watchlist_hash)
        index = self._indexes.get(key)
        if index is not None:
            return index
        built = self._build_once(window) or self._wait_for_build(key)
        if built is None:
            raise IndexNotReady(f"the index of watchlist {window.watchlist_id} is still being built")
        return built

    def _wait_for_build(self, key: Key) -> VectorIndex | None:
        with self._build_ended:
            self._build_ended.wait_for(lambda: key not in self._building, self._wait_for_build_s)
            return self._indexes.get(key)

    def is_ready(self, window: DeploymentWindow) -> bool:
        return (window.watchlist_id, window.watchlist_hash) in self._indexes

    def prepare(self, window: DeploymentWindow) -> VectorIndex | None:
        """Builds the window's index unless it exists or another thread is building it."""
        return self._build_once(window)

    def _build_once(self, window: DeploymentWindow) -> VectorIndex | None:
        key = (window.watchlist_id, window.watchlist_hash)
        with self._lock:
            index = self._indexes.get(key)
            if index is not None or key in self._building:
                return index
            self._building.add(key)
        try:
            index = self._build(window)
            with self._lock:
                if key in self._cancelled:
                    return None
                self._indexes[key] = index
            return index
        finally:
            with self._lock:
                self._building.discard(key)
                self._cancelled.discard(key)
                self._build_ended.notify_all()

    def _build(self, window: DeploymentWindow) -> VectorIndex:
        with self._uow() as uow:
            watchlist = uow.watchlists.get(window.watchlist_id)
            watchlist.require_sealed()
            subjects = uow.watchlists.subjects(watchlist.id)
            subject_of_row, vectors = uow.watchlists.embeddings(watchlist.id)
            templates = uow.watchlists.templates(watchlist.id)
        # Matching against anything but exactly what was authorised would be unlawful: recheck the seal.
        actual = content_hash(
            watchlist.model_id,
            watchlist.dimension,
            enrolled_subjects(subjects, subject_of_row, vectors, templates),
        )
        if actual != window.watchlist_hash:
            raise Conflict(
                f"watchlist {watchlist.id} content does not match the hash window {window.id} "
                "was authorised with"
            )
        subject_ids, fused = mean_templates(subject_of_row, vectors)
        templates_read = len(subject_of_row)
        # The store's rows go before the index copies the means in: held beside both they were one more
        # copy of the raw vectors at the build's peak (2 GB at 1M).
        del subjects, subject_of_row, vectors, templates
        index = self._factory(subject_ids, fused)
        logger.info(
            "built index for watchlist %s: %d templates of %d subjects",
            watchlist.id,
            templates_read,
            len(subject_ids),
        )
        return index

    def retain_only(self, windows: list[DeploymentWindow]) -> None:
        """Drops indexes no live window needs, so a destroyed watchlist leaves no copy in memory."""
        keep = {(w.watchlist_id, w.watchlist_hash) for w in windows}
        with self._lock:
            for key in [k for k in self._indexes if k not in keep]:
                del self._indexes[key]
            # A build still running for a dropped watchlist must not publish it afterwards.
            self._cancelled |= {k for k in self._building if k not in keep}
