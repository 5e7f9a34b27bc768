"""Account versions: is an access token's `ver` still its account's? Answered from Redis.

PostgreSQL holds the truth (`users.auth_version`, bumped by a trigger whenever role,
permissions or `disabled` change, migration 0012). Redis holds a copy per account, signed:
`+v` for an active account at version v, `-v` for a disabled one, so one GET tells a request
both "still the token's version?" and "still allowed in?".

Writes are monotonic (a copy is replaced only by one of at least the same version), so a slow
reader that loaded an old version from PostgreSQL can never overwrite the newer copy that a
role change published after its commit. A copy lives `ttl` seconds; when it is missing (expired,
evicted, Redis restarted or flushed) the caller asks PostgreSQL and publishes the answer: a
miss costs one query, it never lets a stale token through. If the publish after a change fails
(Redis down), the old copy can be believed for at most `ttl` seconds: that is the bound.
"""

from __future__ import annotations

from uuid import UUID

import asyncpg
import redis.asyncio as aioredis

# KEYS[1]: the account's copy; ARGV[1]: signed version; ARGV[2]: ttl seconds.
_PUBLISH = """
local old = tonumber(redis.call('GET', KEYS[1]) or '0')
local new = tonumber(ARGV[1])
if math.abs(new) >= math.abs(old) then
  redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
  return 1
end
return 0
"""


def signed(version: int, disabled: bool) -> int:
    return -version if disabled else version


def key(prefix: str, user_id: UUID) -> str:
    return f"{prefix}:acct-ver:{user_id}"


async def load(conn: asyncpg.Connection, tenant_id: UUID, user_id: UUID) -> int | None:
    """The account's signed version from PostgreSQL; None when it does not exist in the tenant."""
    row = await conn.fetchrow("SELECT auth_version, disabled FROM users WHERE id = $1 AND tenant_id = $2",
                              user_id, tenant_id)
    return None if row is None else signed(row["auth_version"], row["disabled"])


class AccountVersions:
    """The Redis side: publish an account's signed version (after a change, or after a miss)."""

    def __init__(self, redis: aioredis.Redis, prefix: str, ttl: int) -> None:
        self._prefix = prefix
        self._ttl = ttl
        self._publish = redis.register_script(_PUBLISH)

    def key(self, user_id: UUID) -> str:
        return key(self._prefix, user_id)

    async def publish(self, user_id: UUID, signed_version: int) -> None:
        """Raises Redis errors: the caller decides what a failed publish means."""
        await self._publish(keys=[self.key(user_id)], args=[signed_version, self._ttl])
