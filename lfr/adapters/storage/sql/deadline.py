"""A client-side deadline for every PostgreSQL call, whatever the network does.

statement_timeout bounds a query the server is running; TCP keepalives and tcp_user_timeout bound a
network that stops acknowledging. Neither helps when the path hangs while still acknowledging (a stalled
proxy or middlebox, a frozen server process): the client would wait for ever, and with it the matcher's
single matching thread. So each statement, commit and rollback is armed with a deadline; one watchdog
thread shuts down the socket of a call that passes it, the driver then fails at once
(OperationalError, hence StoreUnavailable), and the pool throws the connection away.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import logging
import os
import socket
import threading
import time
import weakref
from collections.abc import Iterator
from typing import Any

from sqlalchemy import Engine

logger = logging.getLogger(__name__)


class Deadlines:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._heap: list[tuple[float, int]] = []
        self._armed: dict[int, Any] = {}  # token -> DB-API connection
        self._tokens = itertools.count(1)
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None

    @contextlib.contextmanager
    def guard(self, dbapi_connection: Any) -> Iterator[None]:
        token = self.arm(dbapi_connection)
        try:
            yield
        finally:
            self.disarm(token)

    def arm(self, dbapi_connection: Any) -> int:
        token = next(self._tokens)
        with self._cond:
            self._armed[token] = dbapi_connection
            heapq.heappush(self._heap, (time.monotonic() + self.seconds, token))
            if self._thread is None:
                self._thread = threading.Thread(target=self._watch, daemon=True, name="lfr-db-deadlines")
                self._thread.start()
            self._cond.notify()
        return token

    def disarm(self, token: int) -> None:
        with self._cond:
            self._armed.pop(token, None)

    def _watch(self) -> None:
        while True:
            expired = []
            with self._cond:
                while self._heap and self._heap[0][1] not in self._armed:
                    heapq.heappop(self._heap)  # finished in time
                wait = self._heap[0][0] - time.monotonic() if self._heap else None
                if wait is None or wait > 0:
                    self._cond.wait(wait)
                    continue
                _, token = heapq.heappop(self._heap)
                expired.append(self._armed.pop(token))
            for connection in expired:
                _break(connection, self.seconds)


def _break(dbapi_connection: Any, seconds: float) -> None:
    logger.error("a database call took longer than %.1f s: breaking its connection", seconds)
    try:
        fd = dbapi_connection.fileno()
        with socket.socket(fileno=os.dup(fd)) as sock:
            sock.shutdown(socket.SHUT_RDWR)
    except (OSError, ValueError, AttributeError) as exc:  # already closed: nothing left to break
        logger.info("connection already gone (%s)", type(exc).__name__)


_BY_ENGINE: weakref.WeakKeyDictionary[Engine, Deadlines] = weakref.WeakKeyDictionary()


def attach(engine: Engine, deadlines: Deadlines) -> None:
    _BY_ENGINE[engine] = deadlines


def deadlines_of(engine: Engine) -> Deadlines | None:
    return _BY_ENGINE.get(engine)


@contextlib.contextmanager
def guarded(engine: Engine, dbapi_connection: Any) -> Iterator[None]:
    """Runs a commit or rollback under the engine's deadline, if it has one."""
    deadlines = deadlines_of(engine)
    if deadlines is None:
        yield
        return
    with deadlines.guard(dbapi_connection):
        yield
