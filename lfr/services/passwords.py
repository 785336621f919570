"""People sign in to the tablet with a name and password; only a slow, salted hash is ever stored."""

from __future__ import annotations

from typing import Protocol

from lfr.domain.audit import AuditAction, AuditEvent
from lfr.domain.clock import Clock
from lfr.domain.errors import InvalidInput, NotFound, Unauthenticated
from lfr.domain.ports import UnitOfWorkFactory
from lfr.domain.principal import Principal, PrincipalKind

MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 1024  # bounds the hashing work an anonymous caller can ask for


class PasswordHasher(Protocol):
    def hash(self, password: str) -> str: ...
    def verify(self, stored_hash: str, password: str) -> bool:
        """False for a wrong password; never raises for one."""
        ...

    def needs_rehash(self, stored_hash: str) -> bool: ...


class PasswordService:
    def __init__(self, uow: UnitOfWorkFactory, clock: Clock, hasher: PasswordHasher) -> None:
        self._uow = uow
        self._clock = clock
        self._hasher = hasher
        # Verifying against a throwaway hash when the name is unknown keeps the response time the same,
        # so timing does not tell an attacker which account names exist.
        self._decoy = hasher.hash("decoy password that matches nothing")

    def set_password(self, name: str, password: str, actor: str) -> None:
        if not MIN_PASSWORD_LENGTH <= len(password) <= MAX_PASSWORD_LENGTH:
            raise InvalidInput(
                f"a password must have {MIN_PASSWORD_LENGTH} to {MAX_PASSWORD_LENGTH} characters"
            )
        hashed = self._hasher.hash(password)
        with self._uow() as uow:
            principal = uow.principals.get(name)
            if principal.kind is not PrincipalKind.USER:
                raise InvalidInput(f"{name} is a camera; cameras authenticate with tokens")
            uow.principals.set_password_hash(name, hashed)
            uow.audit.append(
                AuditEvent(
                    AuditAction.PRINCIPAL_CHANGED,
                    actor,
                    "principal",
                    name,
                    self._clock.now(),
                    {"change": "password_set"},
                )
            )
            uow.commit()

    def authenticate(self, name: str, password: str) -> Principal:
        """The signed-in person, or Unauthenticated with the same message whatever was wrong."""
        refused = Unauthenticated("unknown name or wrong password")
        if len(password) > MAX_PASSWORD_LENGTH:
            raise refused
        with self._uow() as uow:
            try:
                principal: Principal | None = uow.principals.get(name)
            except NotFound:
                principal = None
            stored = uow.principals.password_hash(name) if principal is not None else None
        if not self._hasher.verify(stored or self._decoy, password) or stored is None:
            raise refused
        if principal is None or not principal.active or principal.kind is not PrincipalKind.USER:
            raise refused
        if self._hasher.needs_rehash(stored):
            with self._uow() as uow:
                uow.principals.set_password_hash(name, self._hasher.hash(password))
                uow.commit()
        return principal
