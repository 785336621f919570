"""Accounts for people and camera nodes, and the bearer tokens they authenticate with."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable

from lfr.domain.audit import AuditAction, AuditEvent
from lfr.domain.clock import Clock
from lfr.domain.errors import InvalidInput, Unauthenticated
from lfr.domain.ports import UnitOfWorkFactory
from lfr.domain.principal import Principal, PrincipalKind, Role


def token_hash(token: str) -> str:
    """Tokens are long random strings, so a plain SHA-256 is enough; only the hash is stored."""
    return hashlib.sha256(token.encode()).hexdigest()


class PrincipalService:
    def __init__(self, uow: UnitOfWorkFactory, clock: Clock) -> None:
        self._uow = uow
        self._clock = clock

    def create(self, name: str, kind: PrincipalKind, roles: Iterable[Role], actor: str) -> Principal:
        name = name.strip()
        if not name or len(name) > 128 or any(c.isspace() for c in name):
            raise InvalidInput("a name must be 1-128 characters without spaces")
        role_set = frozenset({Role.CAMERA} if kind is PrincipalKind.CAMERA else roles)
        if not role_set:
            raise InvalidInput("a user needs at least one role")
        principal = Principal(name, kind, role_set)
        with self._uow() as uow:
            uow.principals.add(principal)
            uow.audit.append(
                AuditEvent(
                    AuditAction.PRINCIPAL_CHANGED,
                    actor,
                    kind.value,
                    name,
                    self._clock.now(),
                    {"change": "created", "roles": sorted(r.value for r in role_set)},
                )
            )
            uow.commit()
        return principal

    def issue_token(self, name: str, actor: str) -> str:
        """Returns a new bearer token (shown once) and replaces any earlier one."""
        token = secrets.token_urlsafe(32)
        with self._uow() as uow:
            uow.principals.get(name)
            uow.principals.set_token_hash(name, token_hash(token))
            uow.audit.append(
                AuditEvent(
                    AuditAction.PRINCIPAL_CHANGED,
                    actor,
                    "principal",
                    name,
                    self._clock.now(),
                    {"change": "token_issued"},
                )
            )
            uow.commit()
        return token

    def authenticate_token(self, token: str) -> Principal:
        if not token:
            raise Unauthenticated("missing bearer token")
        with self._uow() as uow:
            principal = uow.principals.find_by_token_hash(token_hash(token))
        if principal is None or not principal.active:
            raise Unauthenticated("unknown or revoked token")
        return principal

    def end_sessions(self, name: str) -> int:
        """Ends every tablet session of `name` (their cookies stop working); returns the new generation."""
        with self._uow() as uow:
            generation = uow.principals.end_sessions(name)
            uow.commit()
        return generation

    def get(self, name: str) -> Principal:
        with self._uow() as uow:
            return uow.principals.get(name)

    def list_principals(self) -> list[Principal]:
        with self._uow() as uow:
            return uow.principals.all()
