"""Who is calling: a camera node or a person, with roles that decide what they may do."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from lfr.domain.errors import PermissionDenied


class PrincipalKind(StrEnum):
    CAMERA = "camera"
    USER = "user"


class Role(StrEnum):
    OFFICER = "officer"  # sees alerts of windows they are assigned to, adjudicates them
    SUPERVISOR = "supervisor"  # authorising officer: creates, authorises and closes windows
    AUDITOR = "auditor"  # reads the audit log and reports
    ADMIN = "admin"  # manages watchlists, accounts and retention
    CAMERA = "camera"  # streams observations


@dataclass(frozen=True, slots=True)
class Principal:
    name: str
    kind: PrincipalKind
    roles: frozenset[Role]
    active: bool = True
    # Sessions issued under an older generation are over: signing out bumps it (see the tablet).
    session_generation: int = 0

    def has_any(self, *roles: Role) -> bool:
        return self.active and bool(self.roles.intersection(roles))

    def require(self, *roles: Role) -> None:
        if not self.has_any(*roles):
            wanted = " or ".join(sorted(r.value for r in roles))
            raise PermissionDenied(f"{self.name} needs the role {wanted}")


@dataclass(frozen=True, slots=True)
class Credentials:
    """An account with the hash of its bearer token (None: it has none) and when that token expires
    (None: never)."""

    principal: Principal
    token_hash: str | None
    token_expires_at: datetime | None = None

    def token_works(self, token_hash: str, now: datetime) -> bool:
        return (
            self.token_hash == token_hash
            and (self.token_expires_at is None or now < self.token_expires_at)
            and self.principal.active
        )


SYSTEM = Principal("system", PrincipalKind.USER, frozenset({Role.ADMIN}))
