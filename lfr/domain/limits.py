"""How long text and how large numbers lfr accepts, whichever way they arrive (gRPC, tablet, CLI).

Every free-text field ends up in the audit trail and on screens that may be read in court; unbounded
fields let one caller write megabytes into the chain. Integers are bounded by what the stores hold: SQLite
and PostgreSQL keep 64-bit signed sequences and 32-bit signed versions.
"""

from __future__ import annotations

from collections.abc import Iterable

from lfr.domain.errors import InvalidInput

MAX_ID = 128  # account names, camera ids, model ids, entity ids, references
MAX_LINE = 500  # a location, a display name, a category, an image source, a watchlist's name
MAX_TEXT = 4000  # a purpose, a legal basis, a reason, an officer's notes
MAX_ITEMS = 1000  # cameras or assigned officers of one window
MAX_SEQUENCE = 2**63 - 1
MAX_VERSION = 2**31 - 1


def require_length(field: str, value: str, limit: int) -> None:
    if len(value) > limit:
        raise InvalidInput(f"{field} is {len(value)} characters long; at most {limit} are accepted")


def require_lengths(field: str, values: Iterable[str], limit: int, max_items: int = MAX_ITEMS) -> None:
    items = list(values)
    if len(items) > max_items:
        raise InvalidInput(f"{field} has {len(items)} entries; at most {max_items} are accepted")
    for value in items:
        require_length(field, value, limit)


def require_at_most(field: str, value: int, limit: int) -> None:
    if value > limit:
        raise InvalidInput(f"{field} {value} is larger than the largest accepted, {limit}")
