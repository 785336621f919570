from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Row, bindparam, func, insert, select, update

from lfr.adapters.storage.sql.schema import windows as t
from lfr.adapters.storage.sql.tx import Tx
from lfr.domain.errors import NotFound, StaleUpdate
from lfr.domain.window import DeploymentWindow, WindowState

WINDOW_CHANNEL = "lfr_window_changes"  # NOTIFY payload: the window id

_BY_ID = select(t).where(t.c.id == bindparam("window_id"))  # built once: every alert reads its window


class SqlWindows:
    def __init__(self, tx: Tx) -> None:
        self._tx = tx

    def add(self, window: DeploymentWindow) -> None:
        self._tx.run(insert(t).values(_to_row(window)), f"adding window {window.id}", may_conflict=True)

    def get(self, window_id: str) -> DeploymentWindow:
        row = self._tx.first(_BY_ID, f"reading window {window_id}", params={"window_id": window_id})
        if row is None:
            raise NotFound(f"no window {window_id}")
        return _from_row(row)

    def update(self, window: DeploymentWindow) -> None:
        changed = self._tx.run(
            update(t).where(t.c.id == window.id, t.c.version == window.version - 1).values(_to_row(window)),
            f"updating window {window.id}",
        )
        if changed != 1:
            self.get(window.id)  # NotFound if it is not there at all
            raise StaleUpdate(f"window {window.id} changed concurrently")
        if self._tx.dialect == "postgresql":
            # Delivered at commit to every replica listening, which re-reads its arming gate at once: a
            # window closed on one replica disarms all of them within a second, not at their next refresh.
            self._tx.first(select(func.pg_notify(WINDOW_CHANNEL, window.id)), "announcing a window change")

    def find(self, states: Sequence[WindowState] | None = None) -> list[DeploymentWindow]:
        query = select(t).order_by(t.c.created_at, t.c.id)
        if states is not None:
            query = query.where(t.c.state.in_([s.value for s in states]))
        return [_from_row(r) for r in self._tx.rows(query, "listing windows")]


def _to_row(w: DeploymentWindow) -> dict[str, Any]:
    return {
        "id": w.id,
        "purpose": w.purpose,
        "legal_basis": w.legal_basis,
        "location": w.location,
        "camera_ids_json": json.dumps(sorted(w.camera_ids)),
        "watchlist_id": w.watchlist_id,
        "watchlist_hash": w.watchlist_hash,
        "model_id": w.model_id,
        "threshold": w.threshold,
        "starts_at": w.starts_at,
        "ends_at": w.ends_at,
        "created_by": w.created_by,
        "created_at": w.created_at,
        "state": w.state.value,
        "assigned_users_json": json.dumps(sorted(w.assigned_users)),
        "authorised_by": w.authorised_by,
        "authorised_at": w.authorised_at,
        "closed_by": w.closed_by,
        "closed_at": w.closed_at,
        "close_reason": w.close_reason,
        "armed_recorded": w.armed_recorded,
        "version": w.version,
    }


def _from_row(r: Row[Any]) -> DeploymentWindow:
    return DeploymentWindow(
        id=r.id,
        purpose=r.purpose,
        legal_basis=r.legal_basis,
        location=r.location,
        camera_ids=frozenset(json.loads(r.camera_ids_json)),
        watchlist_id=r.watchlist_id,
        watchlist_hash=r.watchlist_hash,
        model_id=r.model_id,
        threshold=r.threshold,
        starts_at=r.starts_at,
        ends_at=r.ends_at,
        created_by=r.created_by,
        created_at=r.created_at,
        state=WindowState(r.state),
        assigned_users=frozenset(json.loads(r.assigned_users_json)),
        authorised_by=r.authorised_by,
        authorised_at=r.authorised_at,
        closed_by=r.closed_by,
        closed_at=r.closed_at,
        close_reason=r.close_reason,
        armed_recorded=bool(r.armed_recorded),
        version=r.version,
    )
