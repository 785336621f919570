"""One search index per sealed watchlist, built on first use and proven against the sealed hash."""

from __future__ import annotations

import logging
import threading

from lfr.domain.errors import Conflict
from lfr.domain.ports import UnitOfWorkFactory, VectorIndex, VectorIndexFactory
from lfr.domain.watchlist import content_hash, mean_templates
from lfr.domain.window import DeploymentWindow
from lfr.services.watchlists import enrolled_subjects

logger = logging.getLogger(__name__)


class IndexCache:
    def __init__(self, uow: UnitOfWorkFactory, factory: VectorIndexFactory) -> None:
        self._uow = uow
        self._factory = factory
        self._indexes: dict[tuple[str, str], VectorIndex] = {}
        self._lock = threading.Lock()

    def for_window(self, window: DeploymentWindow) -> VectorIndex:
        key = (window.watchlist_id, window.watchlist_hash)
        index = self._indexes.get(key)
        if index is not None:
            return index
        with self._lock:
            index = self._indexes.get(key)
            if index is None:
                index = self._build(window)
                self._indexes[key] = index
            return index

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
        logger.info(
            "built index for watchlist %s: %d templates of %d subjects",
            watchlist.id,
            len(subject_of_row),
            len(subject_ids),
        )
        return self._factory(subject_ids, fused)

    def retain_only(self, windows: list[DeploymentWindow]) -> None:
        """Drops indexes no live window needs, so a destroyed watchlist leaves no copy in memory."""
        keep = {(w.watchlist_id, w.watchlist_hash) for w in windows}
        with self._lock:
            for key in [k for k in self._indexes if k not in keep]:
                del self._indexes[key]
