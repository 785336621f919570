"""Argon2id password hashing (argon2-cffi) behind the PasswordHasher port."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError


class Argon2Hasher:
    def __init__(self, hasher: PasswordHasher | None = None) -> None:
        # argon2-cffi's defaults follow RFC 9106's second recommended profile (64 MiB, 3 passes).
        self._hasher = hasher or PasswordHasher()

    @classmethod
    def fast_for_tests(cls) -> Argon2Hasher:
        """Same algorithm with tiny cost parameters, so test suites do not spend seconds hashing."""
        return cls(PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))

    def hash(self, password: str) -> str:
        return self._hasher.hash(password)

    def verify(self, stored_hash: str, password: str) -> bool:
        try:
            return self._hasher.verify(stored_hash, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, stored_hash: str) -> bool:
        return self._hasher.check_needs_rehash(stored_hash)
