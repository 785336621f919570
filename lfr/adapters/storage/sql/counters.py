from __future__ import annotations

from sqlalchemy import Insert, select
from sqlalchemy.dialects import postgresql, sqlite

from lfr.adapters.storage.sql.schema import observation_counts as t
from lfr.adapters.storage.sql.tx import Tx


class SqlCounters:
    def __init__(self, tx: Tx) -> None:
        self._tx = tx

    def increment(self, counts: dict[tuple[str, str, str], int]) -> None:
        """One upsert that adds, so concurrent flushes (replicas included) never lose a count."""
        if not counts:
            return
        rows = [
            {"window_id": w, "camera_id": c, "outcome": o, "faces": n}
            for (w, c, o), n in sorted(counts.items())  # a fixed order: two flushes cannot deadlock
        ]
        self._tx.run(self._upsert(rows), "adding observation counts")

    def totals(self, window_id: str | None = None) -> dict[tuple[str, str, str], int]:
        query = select(t)
        if window_id is not None:
            query = query.where(t.c.window_id == window_id)
        rows = self._tx.rows(query, "reading observation counts")
        return {(r.window_id, r.camera_id, r.outcome): int(r.faces) for r in rows}

    def _upsert(self, rows: list[dict[str, object]]) -> Insert:
        if self._tx.dialect == "postgresql":
            pg = postgresql.insert(t).values(rows)
            return pg.on_conflict_do_update(
                index_elements=[t.c.window_id, t.c.camera_id, t.c.outcome],
                set_={"faces": t.c.faces + pg.excluded.faces},
            )
        lite = sqlite.insert(t).values(rows)
        return lite.on_conflict_do_update(
            index_elements=[t.c.window_id, t.c.camera_id, t.c.outcome],
            set_={"faces": t.c.faces + lite.excluded.faces},
        )
