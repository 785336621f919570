"""Accounts for people and camera nodes, and the bearer tokens they authenticate with."""

from __future__ import annotations

import dataclasses
import hashlib
import secrets
from collections.abc import Callable, Iterable
from datetime import timedelta

from lfr.domain.audit import AuditAction, AuditEvent
from lfr.domain.clock import Clock
from lfr.domain.errors import InvalidInput, Unauthenticated
from lfr.domain.ports import UnitOfWork, UnitOfWorkFactory
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

    def issue_token(self, name: str, actor: str, valid_for: timedelta | None = None) -> str:
        """Returns a new bearer token (shown once) and replaces any earlier one; it stops working after
        `valid_for`, if given."""
        if valid_for is not None and valid_for <= timedelta(0):
            raise InvalidInput("a token must be valid for a positive time")
        token = secrets.token_urlsafe(32)
        now = self._clock.now()
        expires_at = now + valid_for if valid_for is not None else None
        details: dict[str, str] = {"change": "token_issued"}
        if expires_at is not None:
            details["expires_at"] = expires_at.isoformat()
        with self._uow() as uow:
            uow.principals.get(name)
            uow.principals.set_token_hash(name, token_hash(token), expires_at)
            uow.audit.append(
                AuditEvent(AuditAction.PRINCIPAL_CHANGED, actor, "principal", name, now, details)
            )
            uow.commit()
        return token

    def disable(self, name: str, actor: str) -> Principal:
        """The account stops working at once (tokens, sessions, open streams) but is kept, with its token
        and password, so that `enable` can restore it."""
        return self._change(name, actor, "disabled", lambda p: dataclasses.replace(p, active=False))

    def enable(self, name: str, actor: str) -> Principal:
        return self._change(name, actor, "enabled", lambda p: dataclasses.replace(p, active=True))

    def set_roles(self, name: str, roles: Iterable[Role], actor: str) -> Principal:
        role_set = frozenset(roles)

        def change(principal: Principal) -> Principal:
            if principal.kind is PrincipalKind.CAMERA:
                raise InvalidInput(f"{name} is a camera account; its only role is camera")
            if not role_set or Role.CAMERA in role_set:
                raise InvalidInput("a user needs at least one role, and camera is not a user's role")
            return dataclasses.replace(principal, roles=role_set)

        return self._change(name, actor, "roles_changed", change, roles=sorted(r.value for r in role_set))

    def expire_token(self, name: str, actor: str) -> None:
        """The account's bearer token stops working at once; `issue_token` gives it a new one."""
        with self._uow() as uow:
            uow.principals.get(name)
            uow.principals.set_token_hash(name, None)
            self._audit(uow, actor, name, "token_expired")
            uow.commit()

    def remove(self, name: str, actor: str) -> None:
        """Deletes the account, its token and password. What it did stays in the audit trail under its
        name; a later account of the same name is a new account (its creation is audited too)."""
        with self._uow() as uow:
            principal = uow.principals.get(name)
            uow.principals.remove(name)
            self._audit(uow, actor, name, "removed", kind=principal.kind.value)
            uow.commit()

    def _change(
        self,
        name: str,
        actor: str,
        change: str,
        how: Callable[[Principal], Principal],
        **details: str | list[str],
    ) -> Principal:
        with self._uow() as uow:
            changed = how(uow.principals.get(name))
            uow.principals.update(changed)
            # Tablet sessions carry the roles they were signed in with only by name; ending them makes
            # the officer sign in again under what they may do now.
            uow.principals.end_sessions(name)
            self._audit(uow, actor, name, change, **details)
            uow.commit()
        return changed

    def _audit(self, uow: UnitOfWork, actor: str, name: str, change: str, **details: str | list[str]) -> None:
        uow.audit.append(
            AuditEvent(
                AuditAction.PRINCIPAL_CHANGED,
                actor,
                "principal",
                name,
                self._clock.now(),
                {"change": change, **details},
            )
        )

    def authenticate_token(self, token: str) -> Principal:
        if not token:
            raise Unauthenticated("missing bearer token")
        hashed = token_hash(token)
        with self._uow() as uow:
            found = uow.principals.find_token(hashed)
        if found is None or not found.principal.active:
            raise Unauthenticated("unknown or revoked token")
        if not found.token_works(hashed, self._clock.now()):
            raise Unauthenticated(f"the token of {found.principal.name} has expired")
        return found.principal

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
