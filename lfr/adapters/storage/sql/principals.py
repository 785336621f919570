from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import Row, delete, insert, select, update

from lfr.adapters.storage.sql.schema import evaluations as ev
from lfr.adapters.storage.sql.schema import principals as t
from lfr.adapters.storage.sql.tx import Tx
from lfr.domain.errors import NotFound
from lfr.domain.evaluation import EvaluationSummary
from lfr.domain.principal import Credentials, Principal, PrincipalKind, Role

_PRINCIPAL = (t.c.name, t.c.kind, t.c.roles_json, t.c.active, t.c.session_generation)  # never the hashes


class SqlPrincipals:
    def __init__(self, tx: Tx) -> None:
        self._tx = tx

    def add(self, principal: Principal) -> None:
        row = _to_row(principal) | {"session_generation": principal.session_generation}
        self._tx.run(insert(t).values(row), f"adding account {principal.name}", may_conflict=True)

    def get(self, name: str) -> Principal:
        row = self._tx.first(select(*_PRINCIPAL).where(t.c.name == name), f"reading account {name}")
        if row is None:
            raise NotFound(f"no account {name}")
        return _from_row(row)

    def update(self, principal: Principal) -> None:
        self._set(principal.name, _to_row(principal), "updating")

    def all(self) -> list[Principal]:
        rows = self._tx.rows(select(*_PRINCIPAL).order_by(t.c.name), "listing accounts")
        return [_from_row(r) for r in rows]

    def set_token_hash(self, name: str, token_hash: str | None, expires_at: datetime | None = None) -> None:
        values = {"token_hash": token_hash, "token_expires_at": expires_at if token_hash else None}
        self._set(name, values, "issuing a token to")

    def find_token(self, token_hash: str) -> Credentials | None:
        row = self._tx.first(
            select(*_PRINCIPAL, t.c.token_hash, t.c.token_expires_at).where(t.c.token_hash == token_hash),
            "checking a token",
        )
        return Credentials(_from_row(row), row.token_hash, row.token_expires_at) if row is not None else None

    def remove(self, name: str) -> None:
        removed = self._tx.run(delete(t).where(t.c.name == name), f"removing account {name}")
        if removed != 1:
            raise NotFound(f"no account {name}")

    def credentials(self) -> dict[str, Credentials]:
        rows = self._tx.rows(
            select(*_PRINCIPAL, t.c.token_hash, t.c.token_expires_at), "reading accounts and tokens"
        )
        return {r.name: Credentials(_from_row(r), r.token_hash, r.token_expires_at) for r in rows}

    def find_by_token_hash(self, token_hash: str) -> Principal | None:
        row = self._tx.first(select(*_PRINCIPAL).where(t.c.token_hash == token_hash), "checking a token")
        return _from_row(row) if row is not None else None

    def set_password_hash(self, name: str, password_hash: str) -> None:
        self._set(name, {"password_hash": password_hash}, "setting the password of")

    def password_hash(self, name: str) -> str | None:
        row = self._tx.first(select(t.c.password_hash).where(t.c.name == name), "checking a password")
        return row.password_hash if row is not None else None

    def end_sessions(self, name: str) -> int:
        # One UPDATE, so a concurrent account change can neither lose the bump nor be lost to it.
        self._set(name, {"session_generation": t.c.session_generation + 1}, "ending the sessions of")
        row = self._tx.first(select(t.c.session_generation).where(t.c.name == name), f"reading {name}")
        assert row is not None
        return int(row.session_generation)

    def _set(self, name: str, values: dict[str, Any], doing: str) -> None:
        changed = self._tx.run(
            update(t).where(t.c.name == name).values(values), f"{doing} {name}", may_conflict=True
        )
        if changed != 1:
            raise NotFound(f"no account {name}")


def _to_row(p: Principal) -> dict[str, Any]:
    return {
        "name": p.name,
        "kind": p.kind.value,
        "roles_json": json.dumps(sorted(r.value for r in p.roles)),
        "active": p.active,
    }


def _from_row(r: Row[Any]) -> Principal:
    return Principal(
        name=r.name,
        kind=PrincipalKind(r.kind),
        roles=frozenset(Role(x) for x in json.loads(r.roles_json)),
        active=bool(r.active),
        session_generation=int(r.session_generation),
    )


class SqlEvaluations:
    def __init__(self, tx: Tx) -> None:
        self._tx = tx

    def add(self, summary: EvaluationSummary) -> None:
        self._tx.run(
            insert(ev).values(
                id=summary.id,
                model_id=summary.model_id,
                dataset_fingerprint=summary.dataset_fingerprint,
                recommended_threshold=summary.recommended_threshold,
                passed=summary.passed,
                report_sha256=summary.report_sha256,
                recorded_by=summary.recorded_by,
                recorded_at=summary.recorded_at,
                index_type=summary.index_type,
                report_json=summary.report_json,
            ),
            f"recording evaluation {summary.id}",
            may_conflict=True,
        )

    def for_model(self, model_id: str) -> list[EvaluationSummary]:
        rows = self._tx.rows(
            select(ev).where(ev.c.model_id == model_id).order_by(ev.c.recorded_at.desc(), ev.c.id),
            f"listing evaluations of {model_id}",
        )
        return [
            EvaluationSummary(
                id=r.id,
                model_id=r.model_id,
                dataset_fingerprint=r.dataset_fingerprint,
                recommended_threshold=r.recommended_threshold,
                passed=bool(r.passed),
                report_sha256=r.report_sha256,
                recorded_by=r.recorded_by,
                recorded_at=r.recorded_at,
                index_type=r.index_type,
                report_json=r.report_json,
            )
            for r in rows
        ]
