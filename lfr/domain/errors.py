"""One exception tree for lfr. Adapters translate these to transport codes in one place each.

    LfrError
    ├── InvalidInput                 bad request data               gRPC INVALID_ARGUMENT / HTTP 422
    │   ├── InvalidEmbedding         dimension, NaN/Inf, zero norm
    │   ├── ModelMismatch            embedding from another model
    │   ├── InvalidCrop              oversized or corrupt JPEG
    │   └── InvalidWindow            end before start, threshold outside [0, 1], ...
    ├── NotFound                                                    NOT_FOUND / 404
    ├── Conflict                     the current state forbids it   FAILED_PRECONDITION / 409
    │   ├── WatchlistStateError      unsealed, sealed, destroyed
    │   ├── AlreadyAdjudicated
    │   └── StaleUpdate              optimistic version check lost  ABORTED / 409
    ├── Unauthenticated              no or unknown credentials      UNAUTHENTICATED / 401
    ├── PermissionDenied             known caller, not allowed      PERMISSION_DENIED / 403
    ├── Throttled                    too many attempts; retry later RESOURCE_EXHAUSTED / 429
    └── StoreUnavailable             the database cannot be used    UNAVAILABLE / 503

Domain errors never subclass transport errors, so the core stays free of gRPC and HTTP.
"""

from __future__ import annotations


class LfrError(Exception):
    """Base of every error lfr raises on purpose."""


class InvalidInput(LfrError):
    """The caller sent data that can never be accepted as it is."""


class InvalidEmbedding(InvalidInput):
    """An embedding has the wrong dimension, non-finite values or zero norm."""


class ModelMismatch(InvalidInput):
    """An embedding was made by a different model than the watchlist's."""


class InvalidCrop(InvalidInput):
    """A face crop is too large or is not a readable JPEG."""


class InvalidWindow(InvalidInput):
    """A deployment window's definition is inconsistent."""


class NotFound(LfrError):
    """The named entity does not exist (or was purged)."""


class Conflict(LfrError):
    """The entity exists but its current state forbids the operation."""


class WatchlistStateError(Conflict):
    """The watchlist is unsealed, already sealed, or destroyed."""


class AlreadyAdjudicated(Conflict):
    """An alert that was already decided cannot be decided again."""


class StaleUpdate(Conflict):
    """Someone else changed the entity since the caller read it."""


class Unauthenticated(LfrError):
    """No credentials, or credentials nobody issued."""


class PermissionDenied(LfrError):
    """The caller is known but lacks the role or assignment for this."""


class Throttled(LfrError):
    """Too many attempts (e.g. failed sign-ins) in a short time; the caller may retry after a while."""

    def __init__(self, message: str, retry_after_seconds: float) -> None:
        super().__init__(message)
        self.retry_after_seconds = retry_after_seconds


class StoreUnavailable(LfrError):
    """The persistent store could not be reached or failed; callers must fail closed."""
