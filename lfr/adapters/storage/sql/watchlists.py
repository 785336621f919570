from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np
from sqlalchemy import Row, delete, func, insert, select, update

from lfr.adapters.storage.sql.schema import subject_embeddings as e
from lfr.adapters.storage.sql.schema import subjects as s
from lfr.adapters.storage.sql.schema import watchlists as t
from lfr.adapters.storage.sql.sealing import opened, sealed
from lfr.adapters.storage.sql.tx import Tx
from lfr.domain.errors import InvalidInput, NotFound, StoreUnavailable
from lfr.domain.ports import ImageSealer
from lfr.domain.watchlist import Subject, TemplateImage, Watchlist, WatchlistState

_F32LE = np.dtype("<f4")


class SqlWatchlists:
    def __init__(self, tx: Tx, sealer: ImageSealer | None = None) -> None:
        self._tx = tx
        self._sealer = sealer

    def add(self, watchlist: Watchlist) -> None:
        self._tx.run(
            insert(t).values(_watchlist_row(watchlist)), f"adding watchlist {watchlist.id}", may_conflict=True
        )

    def get(self, watchlist_id: str) -> Watchlist:
        row = self._tx.first(select(t).where(t.c.id == watchlist_id), f"reading watchlist {watchlist_id}")
        if row is None:
            raise NotFound(f"no watchlist {watchlist_id}")
        return _watchlist(row)

    def update(self, watchlist: Watchlist) -> None:
        changed = self._tx.run(
            update(t).where(t.c.id == watchlist.id).values(_watchlist_row(watchlist)),
            f"updating watchlist {watchlist.id}",
        )
        if changed != 1:
            raise NotFound(f"no watchlist {watchlist.id}")

    def all(self) -> list[Watchlist]:
        rows = self._tx.rows(select(t).order_by(t.c.created_at, t.c.id), "listing watchlists")
        return [_watchlist(r) for r in rows]

    def add_subject(
        self, subject: Subject, embeddings: np.ndarray, templates: Sequence[TemplateImage] = ()
    ) -> None:
        self.get(subject.watchlist_id)
        vectors = np.asarray(embeddings, dtype=_F32LE)
        if vectors.ndim != 2:
            raise InvalidInput(f"embeddings must be (n, d), got shape {vectors.shape}")
        if templates and len(templates) != len(vectors):
            raise InvalidInput(f"{len(templates)} template images for {len(vectors)} embeddings")
        doing = f"adding subject {subject.id}"
        row = _subject_row(subject)
        if subject.reference_image_jpeg:
            row["reference_image_jpeg"] = sealed(
                self._sealer, subject.reference_image_jpeg, f"subject:{subject.id}"
            )
        self._tx.run(insert(s).values(row), doing, may_conflict=True)
        if len(vectors):
            rows = [
                {
                    "subject_id": subject.id,
                    "position": i,
                    "vector_f32le": row.tobytes(),
                    "provenance": templates[i].provenance if templates else None,
                    "source_image_jpeg": _sealed_template(self._sealer, subject.id, i, templates),
                }
                for i, row in enumerate(vectors)
            ]
            self._tx.run(insert(e).values(rows), doing)

    def templates(self, watchlist_id: str) -> dict[str, list[TemplateImage]]:
        rows = self._tx.rows(
            select(e.c.subject_id, e.c.position, e.c.provenance, e.c.source_image_jpeg)
            .join(s, s.c.id == e.c.subject_id)
            .where(s.c.watchlist_id == watchlist_id, e.c.provenance.is_not(None))
            .order_by(e.c.subject_id, e.c.position),
            f"reading template images of {watchlist_id}",
        )
        out: dict[str, list[TemplateImage]] = {}
        for r in rows:
            image = r.source_image_jpeg
            if image is not None:
                image = opened(self._sealer, bytes(image), _template_context(r.subject_id, r.position))
            out.setdefault(r.subject_id, []).append(TemplateImage(r.provenance, image))
        return out

    def subject_templates(self, watchlist_id: str, subject_id: str) -> list[TemplateImage]:
        self.get_subject(watchlist_id, subject_id)
        rows = self._tx.rows(
            select(e.c.position, e.c.provenance, e.c.source_image_jpeg)
            .where(e.c.subject_id == subject_id, e.c.provenance.is_not(None))
            .order_by(e.c.position),
            f"reading template images of subject {subject_id}",
        )
        return [
            TemplateImage(
                r.provenance,
                opened(self._sealer, bytes(r.source_image_jpeg), _template_context(subject_id, r.position))
                if r.source_image_jpeg is not None
                else None,
            )
            for r in rows
        ]

    def remove_subject(self, watchlist_id: str, subject_id: str) -> None:
        self.get_subject(watchlist_id, subject_id)
        doing = f"removing subject {subject_id}"
        self._tx.run(delete(e).where(e.c.subject_id == subject_id), doing)
        self._tx.run(delete(s).where(s.c.id == subject_id), doing)

    def get_subject(self, watchlist_id: str, subject_id: str) -> Subject:
        row = self._tx.first(
            select(s).where(s.c.id == subject_id, s.c.watchlist_id == watchlist_id),
            f"reading subject {subject_id}",
        )
        if row is None:
            raise NotFound(f"no subject {subject_id} in watchlist {watchlist_id}")
        return self._subject(row)

    def subjects(self, watchlist_id: str) -> list[Subject]:
        # Plain driver tuples in Subject's field order: reading a 100k watchlist at start was mostly Row
        # objects. Every column is text or bytes, which the drivers return as they are.
        statement = (
            select(
                s.c.id,
                s.c.watchlist_id,
                s.c.reference,
                s.c.display_name,
                s.c.category,
                s.c.reason,
                s.c.image_source,
                s.c.reference_image_jpeg,
            )
            .where(s.c.watchlist_id == watchlist_id)
            .order_by(s.c.id)
        )
        return [
            Subject(
                row[0],
                row[1],
                row[2],
                row[3],
                row[4],
                row[5],
                row[6],
                None if not row[7] else opened(self._sealer, bytes(row[7]), f"subject:{row[0]}"),
            )
            for batch in self._tx.plain_batches(statement, f"listing subjects of {watchlist_id}")
            for row in batch
        ]

    def embeddings(self, watchlist_id: str) -> tuple[list[str], np.ndarray]:
        watchlist = self.get(watchlist_id)
        of_watchlist = s.c.watchlist_id == watchlist_id
        doing = f"reading embeddings of {watchlist_id}"
        counted = self._tx.first(
            select(func.count()).select_from(e.join(s, s.c.id == e.c.subject_id)).where(of_watchlist), doing
        )
        total = int(counted[0]) if counted is not None else 0
        # Straight into one preallocated array, a batch of rows at a time: no per-row arrays, and the
        # driver's bytes are never all held beside the array (start-up time and peak memory at 100k+).
        vectors = np.empty((total, watchlist.dimension), dtype=np.float32)
        subject_of_row: list[str] = []
        statement = (
            select(e.c.subject_id, e.c.vector_f32le)
            .join(s, s.c.id == e.c.subject_id)
            .where(of_watchlist)
            .order_by(e.c.subject_id, e.c.position)
        )
        filled = 0
        for batch in self._tx.plain_batches(statement, doing):
            if filled + len(batch) > total:
                raise StoreUnavailable(f"{doing}: the watchlist changed while it was read")
            block = np.frombuffer(b"".join(r[1] for r in batch), dtype=_F32LE)
            vectors[filled : filled + len(batch)] = block.reshape(len(batch), watchlist.dimension)
            subject_of_row.extend(r[0] for r in batch)
            filled += len(batch)
        if filled != total:
            raise StoreUnavailable(f"{doing}: the watchlist changed while it was read")
        return subject_of_row, vectors

    def erase_content(self, watchlist_id: str) -> int:
        doing = f"erasing watchlist {watchlist_id}"
        doomed = select(s.c.id).where(s.c.watchlist_id == watchlist_id).scalar_subquery()
        self._tx.run(delete(e).where(e.c.subject_id.in_(doomed)), doing)
        return self._tx.run(delete(s).where(s.c.watchlist_id == watchlist_id), doing)

    def _subject(self, row: Row[Any]) -> Subject:
        subject = _subject(row)
        if not subject.reference_image_jpeg:
            return subject
        image = opened(self._sealer, subject.reference_image_jpeg, f"subject:{subject.id}")
        return dataclasses.replace(subject, reference_image_jpeg=image)


def _watchlist_row(w: Watchlist) -> dict[str, Any]:
    return {
        "id": w.id,
        "name": w.name,
        "model_id": w.model_id,
        "dimension": w.dimension,
        "created_by": w.created_by,
        "created_at": w.created_at,
        "state": w.state.value,
        "content_hash": w.content_hash,
        "sealed_at": w.sealed_at,
        "destroyed_at": w.destroyed_at,
    }


def _watchlist(r: Row[Any]) -> Watchlist:
    return Watchlist(
        id=r.id,
        name=r.name,
        model_id=r.model_id,
        dimension=r.dimension,
        created_by=r.created_by,
        created_at=r.created_at,
        state=WatchlistState(r.state),
        content_hash=r.content_hash,
        sealed_at=r.sealed_at,
        destroyed_at=r.destroyed_at,
    )


def _subject_row(x: Subject) -> dict[str, Any]:
    return {
        "id": x.id,
        "watchlist_id": x.watchlist_id,
        "reference": x.reference,
        "display_name": x.display_name,
        "category": x.category,
        "reason": x.reason,
        "image_source": x.image_source,
        "reference_image_jpeg": x.reference_image_jpeg,
    }


def _subject(r: Row[Any]) -> Subject:
    image = r.reference_image_jpeg
    return Subject(
        id=r.id,
        watchlist_id=r.watchlist_id,
        reference=r.reference,
        display_name=r.display_name,
        category=r.category,
        reason=r.reason,
        image_source=r.image_source,
        reference_image_jpeg=bytes(image) if image is not None else None,
    )


def _template_context(subject_id: str, position: int) -> str:
    return f"template:{subject_id}:{position}"


def _sealed_template(
    sealer: ImageSealer | None, subject_id: str, position: int, templates: Sequence[TemplateImage]
) -> bytes | None:
    """A template's source image is a face image like any other: sealed, bound to its row."""
    image = templates[position].jpeg if templates else None
    return None if image is None else sealed(sealer, image, _template_context(subject_id, position))
