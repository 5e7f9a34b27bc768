"""Failed-login throttling: after N failures within the window, for one account or from one
address, further attempts are refused (429 + Retry-After) before any password is checked.

Unknown accounts are counted exactly like known ones, so the throttle says nothing about
which emails exist. Accounts are keyed by a hash of (tenant, lower-cased email): no emails in
Redis. A success clears the account's count, not the address's.
"""

from __future__ import annotations

import hashlib
from uuid import UUID

import redis.asyncio as aioredis

# Count a failure on every key; start each key's window at its first failure.
_RECORD = """
for i, key in ipairs(KEYS) do
  if redis.call('INCR', key) == 1 then redis.call('EXPIRE', key, ARGV[1]) end
end
return 1
"""

# Seconds until the most blocked key allows attempts again, 0 when none is blocked.
_BLOCKED_FOR = """
local worst = 0
for i, key in ipairs(KEYS) do
  local n = tonumber(redis.call('GET', key) or '0')
  if n >= tonumber(ARGV[1]) then
    local ttl = redis.call('TTL', key)
    if ttl < 1 then ttl = 1 end
    if ttl > worst then worst = ttl end
  end
end
return worst
"""


class LoginThrottle:
    def __init__(self, redis: aioredis.Redis, prefix: str, max_failures: int, window_seconds: int) -> None:
        self._redis = redis
        self._prefix = prefix
        self._max = max_failures
        self._window = window_seconds
        self._record = redis.register_script(_RECORD)
        self._blocked = redis.register_script(_BLOCKED_FOR)

    def _keys(self, tenant_id: UUID, email: str, address: str) -> list[str]:
        account = hashlib.sha256(f"{tenant_id}:{email.strip().lower()}".encode()).hexdigest()[:32]
        return [f"{self._prefix}:login-fail:acct:{account}", f"{self._prefix}:login-fail:addr:{address}"]

    async def blocked_for(self, tenant_id: UUID, email: str, address: str) -> int:
        """Seconds the caller must wait before another attempt; 0 when allowed."""
        return int(await self._blocked(keys=self._keys(tenant_id, email, address), args=[self._max]))

    async def failed(self, tenant_id: UUID, email: str, address: str) -> None:
        await self._record(keys=self._keys(tenant_id, email, address), args=[self._window])

    async def succeeded(self, tenant_id: UUID, email: str, address: str) -> None:
        await self._redis.delete(self._keys(tenant_id, email, address)[0])
