"""PostgreSQL LISTEN: what other replicas committed reaches this one at once, without polling.

The store's transactions NOTIFY at commit (adapters/storage/sql/alerts.py and windows.py): an alert
change's revision number, or a window's id; never alert content. One listener thread per process holds
its own connection (outside the pool), and on every (re)connection calls `on_reconnect` first, because
notifications sent while it was away are lost: its listeners then re-read from where they were.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import psycopg
from sqlalchemy.engine import URL

from lfr.adapters.storage.sql.alerts import ALERT_CHANNEL
from lfr.adapters.storage.sql.engine import POSTGRES_CONNECT_TIMEOUT_S, parse_store_url
from lfr.adapters.storage.sql.windows import WINDOW_CHANNEL

logger = logging.getLogger(__name__)

WAIT_SECONDS = 0.5  # how often the thread looks up from waiting, to notice it should stop
RETRY_FIRST, RETRY_LAST = 0.1, 2.0


def is_postgres(url: str) -> bool:
    return parse_store_url(url).get_backend_name() == "postgresql"


def _libpq_dsn(url: URL) -> str:
    """The store URL as psycopg takes it (no SQLAlchemy driver suffix)."""
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


class PostgresListener:
    def __init__(
        self,
        url: str,
        on_alert: Callable[[int], None],
        on_window: Callable[[str], None],
        on_reconnect: Callable[[], None],
    ) -> None:
        self._dsn = _libpq_dsn(parse_store_url(url))
        self._on_alert = on_alert
        self._on_window = on_window
        self._on_reconnect = on_reconnect
        self._stop = threading.Event()
        self._connected = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pg-listen", daemon=True)
        self.backend_pid: int | None = None  # the listening connection's server process (tests end it)
        self.connections = 0

    def start(self) -> None:
        self._thread.start()

    def wait_connected(self, timeout: float) -> bool:
        return self._connected.wait(timeout)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        delay = RETRY_FIRST
        while not self._stop.is_set():
            try:
                with psycopg.connect(
                    self._dsn, autocommit=True, connect_timeout=POSTGRES_CONNECT_TIMEOUT_S
                ) as connection:
                    connection.execute(f"LISTEN {ALERT_CHANNEL}")
                    connection.execute(f"LISTEN {WINDOW_CHANNEL}")
                    self.backend_pid = connection.info.backend_pid
                    self.connections += 1
                    self._connected.set()
                    delay = RETRY_FIRST
                    self._on_reconnect()  # what was committed while nobody here listened
                    while not self._stop.is_set():
                        for note in connection.notifies(timeout=WAIT_SECONDS):
                            self._dispatch(note.channel, note.payload)
            except psycopg.Error as exc:
                self._connected.clear()
                logger.warning(
                    "lost the PostgreSQL notification connection (%s); reconnecting", type(exc).__name__
                )
                self._stop.wait(delay)
                delay = min(RETRY_LAST, delay * 2)

    def _dispatch(self, channel: str, payload: str) -> None:
        try:
            if channel == ALERT_CHANNEL and payload.isdigit():
                self._on_alert(int(payload))
            elif channel == WINDOW_CHANNEL:
                self._on_window(payload)
        except Exception:
            # A failing listener must not end the notifications of the others.
            logger.exception("handling a %s notification failed", channel)
