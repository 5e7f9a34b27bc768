"""Password hashing: argon2id with OWASP's parameters (19 MiB, 2 passes, 1 lane).

Hashing costs tens of milliseconds of CPU, so it runs in a worker thread and never blocks the
event loop. `verify_or_dummy` makes an unknown account cost the same as a wrong password: it
verifies against a dummy hash of the same parameters, so response time says nothing about
whether an email is registered.
"""

from __future__ import annotations

import asyncio
import secrets

from argon2 import PasswordHasher, Type, extract_parameters
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

# OWASP Password Storage Cheat Sheet: argon2id, m=19456 KiB, t=2, p=1 (minimum recommended).
OWASP_MEMORY_KIB = 19_456
OWASP_TIME_COST = 2
OWASP_PARALLELISM = 1

MIN_LENGTH = 8
MAX_LENGTH = 128  # bounded: hashing a megabyte-long "password" is a cheap denial of service


class Passwords:
    """Hash and verify passwords; the only place that knows the argon2 parameters."""

    def __init__(self, memory_kib: int = OWASP_MEMORY_KIB, time_cost: int = OWASP_TIME_COST,
                 parallelism: int = OWASP_PARALLELISM) -> None:
        self._hasher = PasswordHasher(time_cost=time_cost, memory_cost=memory_kib,
                                      parallelism=parallelism, type=Type.ID)
        self._dummy = self._hasher.hash(secrets.token_urlsafe(24))

    def hash_sync(self, password: str) -> str:
        return self._hasher.hash(password)

    async def hash(self, password: str) -> str:
        return await asyncio.to_thread(self._hasher.hash, password)

    def _verify(self, stored: str, password: str) -> bool:
        try:
            return self._hasher.verify(stored, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    async def verify(self, stored: str, password: str) -> bool:
        return await asyncio.to_thread(self._verify, stored, password)

    async def verify_or_dummy(self, stored: str | None, password: str) -> bool:
        """Verify against `stored`, or against the dummy hash when there is no account
        (always False then), spending the same time either way."""
        ok = await self.verify(stored or self._dummy, password)
        return ok and stored is not None

    def needs_rehash(self, stored: str) -> bool:
        """True when `stored` was made with weaker (older) parameters: rehash on next login."""
        try:
            params = extract_parameters(stored)
        except InvalidHashError:
            return True
        # Stronger-than-ours hashes are kept: rehashing them would weaken them.
        return (params.type is not Type.ID or params.memory_cost < self._hasher.memory_cost
                or params.time_cost < self._hasher.time_cost)
