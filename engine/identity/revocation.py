"""The access-token deny list, in Redis so every API process sees a revocation at once.

A revoked `jti` (logout) or session (refresh family: logout or theft detection) is kept only
as long as an access token of it could still be valid, then Redis forgets it on its own.
Redis errors are not caught here: the caller decides between failing open and closed. The
checks of concurrent requests share pipelined round trips (engine.redis_batch).
"""

from __future__ import annotations

from uuid import UUID

import redis.asyncio as aioredis

from engine.redis_batch import ScriptBatcher

# How many of the keys exist: one script so concurrent checks share a pipelined round trip.
_ANY_EXISTS = "return redis.call('EXISTS', unpack(KEYS))"

# KEYS[1]: the account's version copy (engine.identity.account_versions); KEYS[2..]: deny-list
# keys. One script, so a request learns "revoked?" and "which account version?" in one trip.
# Returns {denied count, signed version or '' when Redis has no copy}.
_CHECK = """
local version = redis.call('GET', KEYS[1])
local denied = redis.call('EXISTS', unpack(KEYS, 2))
return {denied, version or ''}
"""


class Revocations:
    def __init__(self, redis: aioredis.Redis, prefix: str, access_ttl: int) -> None:
        self._redis = redis
        self._prefix = prefix
        self._access_ttl = access_ttl
        self._exists = ScriptBatcher(redis, _ANY_EXISTS)
        self._check = ScriptBatcher(redis, _CHECK)

    def _jti_key(self, jti: str) -> str:
        return f"{self._prefix}:revoked:jti:{jti}"

    def _session_key(self, session_id: UUID) -> str:
        return f"{self._prefix}:revoked:sid:{session_id}"

    async def revoke_token(self, jti: str, expires_at: int, now: int) -> None:
        """Deny this access token until it expires."""
        await self._redis.set(self._jti_key(jti), b"1", ex=max(1, expires_at - now + 1))

    async def revoke_session(self, session_id: UUID) -> None:
        """Deny every access token issued with this refresh family (they live at most access_ttl)."""
        await self._redis.set(self._session_key(session_id), b"1", ex=self._access_ttl + 1)

    async def is_revoked(self, jti: str, session_id: UUID | None) -> bool:
        keys = [self._jti_key(jti)]
        if session_id is not None:
            keys.append(self._session_key(session_id))
        return bool(await self._exists(keys, []))

    async def check(self, jti: str, session_id: UUID | None, version_key: str) -> tuple[bool, int | None]:
        """(revoked?, the account's signed version or None when Redis has no copy), in one trip."""
        keys = [version_key, self._jti_key(jti)]
        if session_id is not None:
            keys.append(self._session_key(session_id))
        denied, version = await self._check(keys, [])
        return bool(denied), (int(version) if version not in (b"", "", None) else None)
