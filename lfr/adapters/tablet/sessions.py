"""Signed session cookies: stateless, so any tablet replica sharing the secret can serve any request.

The cookie holds who signed in, a CSRF token bound to that session, the account's session generation it
was issued under, and two times: when it was issued (for the absolute limit) and when its holder last did
something (for the idle limit). Times come from the injected clock, so expiry is testable without sleeping.

Stateless cookies cannot be taken back, so signing out bumps the account's session generation in the store
and every request compares it: a copy of the cookie stops working too. That ends the person's sessions on
every tablet at once, which is also how a lost tablet is signed out from another one.
"""

from __future__ import annotations

import dataclasses
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from itsdangerous import BadSignature, URLSafeSerializer

from lfr.domain.clock import Clock

COOKIE_NAME = "lfr_session"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
# Re-signing the cookie on every request is pointless churn; once a minute keeps idle expiry accurate enough.
REFRESH_AFTER = timedelta(seconds=60)


@dataclass(frozen=True, slots=True)
class Session:
    user: str | None  # None: anonymous, only good for the sign-in form's CSRF token
    csrf: str
    issued: datetime
    seen: datetime
    generation: int = 0  # the account's session generation when this session was issued


class SessionCodec:
    def __init__(self, secret: bytes, clock: Clock, idle: timedelta, max_age: timedelta) -> None:
        self._serializer = URLSafeSerializer(secret, salt="lfr-tablet-session")
        self._clock = clock
        self.idle = idle
        self.max_age = max_age

    def new(self, user: str | None, generation: int = 0) -> Session:
        """A fresh session with a fresh CSRF token; signing in always makes a new one (no fixation)."""
        now = self._clock.now()
        return Session(user, secrets.token_urlsafe(32), now, now, generation)

    def dumps(self, session: Session) -> str:
        return self._serializer.dumps(
            [
                session.user,
                session.csrf,
                session.issued.timestamp(),
                session.seen.timestamp(),
                session.generation,
            ]
        )

    def loads(self, raw: str | None) -> Session | None:
        """The session in a cookie, or None when there is none or its signature is wrong."""
        if not raw:
            return None
        try:
            user, csrf, issued, seen, generation = self._serializer.loads(raw)
            return Session(
                user if isinstance(user, str) else None,
                str(csrf),
                datetime.fromtimestamp(float(issued), UTC),
                datetime.fromtimestamp(float(seen), UTC),
                int(generation),
            )
        except (BadSignature, TypeError, ValueError):
            return None

    def deadline(self, session: Session) -> datetime:
        return min(session.seen + self.idle, session.issued + self.max_age)

    def expired(self, session: Session) -> bool:
        return self._clock.now() >= self.deadline(session)

    def touched(self, session: Session) -> Session | None:
        """The session with its idle clock restarted, or None if it is fresh enough to leave alone."""
        now = self._clock.now()
        if now - session.seen < REFRESH_AFTER:
            return None
        return dataclasses.replace(session, seen=now)
