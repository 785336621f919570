"""Storage backends behind the UnitOfWork port, chosen by URL: memory://, sqlite:///..., postgresql://..."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from lfr.domain.errors import InvalidInput
from lfr.domain.ports import ImageSealer, UnitOfWork

if TYPE_CHECKING:
    from lfr.adapters.storage.sql.engine import StoreTimeouts


class Store(Protocol):
    """A UnitOfWorkFactory that also owns connections."""

    def __call__(self) -> UnitOfWork: ...
    def close(self) -> None: ...
    def seal_plaintext_images(self) -> int:
        """Encrypts face images stored before encryption was configured; returns how many."""
        ...

    def scrub(self) -> bool:
        """After deletions, removes leftover copies of deleted rows (SQLite's WAL). True when done."""
        ...


def open_store(url: str, timeouts: StoreTimeouts | None = None, sealer: ImageSealer | None = None) -> Store:
    """Opens (and for SQL, migrates to the latest schema) the store named by `url`; `timeouts` bound each
    SQL call (defaults when None); `sealer` encrypts the face images an SQL store keeps (memory:// keeps
    nothing at rest)."""
    if url.startswith("memory://"):
        from lfr.adapters.storage.memory import MemoryStore

        return MemoryStore()
    if url.startswith(("sqlite:", "postgresql:", "postgresql+psycopg:", "postgres:")):
        from lfr.adapters.storage.sql import SqlStore

        return SqlStore.open(url, timeouts=timeouts, sealer=sealer)
    raise InvalidInput(
        f"unsupported store URL {url!r}: use memory://, sqlite:///PATH or postgresql+psycopg://..."
    )


def store_clock(store: Store) -> Callable[[], datetime] | None:
    """A reader of the store's own clock, or None when the store shares this host's clock (SQLite files and
    memory are embedded in this process, so the host clock is the store's clock)."""
    from lfr.adapters.storage.sql import SqlStore

    if isinstance(store, SqlStore) and store.engine.dialect.name == "postgresql":
        return store.clock_timestamp
    return None
