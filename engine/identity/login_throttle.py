"""Failed-login throttling: an attacker gains no guesses, and cannot lock anyone out.

The rule (docs/DECISIONS.md, "Login throttle"), two budgets per window:
- per (account, address) pair: `max_failures` (5) failures, then that pair is refused
  (429 + Retry-After) until its window ends. The owner signing in from any other address is not
  affected, so nobody can lock a victim out by failing on their account.
- per address: `max_address_failures` (50) failures over all accounts, then the address is
  refused. Slower than the pair budget, so an office behind one NAT can mistype many times
  before it is throttled, while password spraying from one address gets 50 guesses per window.
There is deliberately no account-wide lock: it is exactly the lever that lets a stranger lock
a victim out. Guessing from many addresses is bounded per address and slowed by argon2.

Atomicity: one Lua script checks every budget and, when none is spent, counts this attempt as
a failure *before* the password is checked (`attempt`); a success gives the attempt back
(`succeeded`). So N parallel wrong passwords for one account get at most `max_failures`
password checks: there is no gap between "is it blocked?" and "count it".

Unknown accounts are counted exactly like known ones, so the throttle says nothing about
which emails exist. Accounts are keyed by a hash of (tenant, lower-cased email): no emails in
Redis. Windows are fixed, starting at a key's first counted attempt.
"""

from __future__ import annotations

import hashlib
from uuid import UUID

import redis.asyncio as aioredis

# KEYS: the budgets' counters; ARGV[1]: window seconds; ARGV[1 + i]: the budget of KEYS[i].
# Returns 0 when the attempt was counted on every key (go ahead and check the password), or
# the seconds until the most blocked spent budget allows attempts again.
_ATTEMPT = """
local worst = 0
for i, key in ipairs(KEYS) do
  local n = tonumber(redis.call('GET', key) or '0')
  if n >= tonumber(ARGV[1 + i]) then
    local ttl = redis.call('TTL', key)
    if ttl < 1 then ttl = 1 end
    if ttl > worst then worst = ttl end
  end
end
if worst > 0 then return worst end
for i, key in ipairs(KEYS) do
  if redis.call('INCR', key) == 1 then redis.call('EXPIRE', key, ARGV[1]) end
end
return 0
"""

# A success: the pair starts afresh; the address gives back only this attempt (its other
# failures still count).
_SUCCEEDED = """
redis.call('DEL', KEYS[1])
local n = tonumber(redis.call('GET', KEYS[2]) or '0')
if n > 0 then redis.call('DECR', KEYS[2]) end
return 1
"""


class LoginThrottle:
    def __init__(self, redis: aioredis.Redis, prefix: str, max_failures: int, window_seconds: int,
                 max_address_failures: int | None = None) -> None:
        self._redis = redis
        self._prefix = prefix
        self._max = max_failures
        self._max_address = max_address_failures if max_address_failures is not None else 10 * max_failures
        self._window = window_seconds
        self._attempt = redis.register_script(_ATTEMPT)
        self._succeeded = redis.register_script(_SUCCEEDED)

    def _keys(self, tenant_id: UUID, email: str, address: str) -> list[str]:
        account = hashlib.sha256(f"{tenant_id}:{email.strip().lower()}".encode()).hexdigest()[:32]
        return [f"{self._prefix}:login-fail:pair:{account}:{address}", f"{self._prefix}:login-fail:addr:{address}"]

    async def attempt(self, tenant_id: UUID, email: str, address: str) -> int:
        """Take one attempt from every budget: 0 when allowed (the attempt now counts as a
        failure until `succeeded`), else the seconds the caller must wait."""
        return int(await self._attempt(keys=self._keys(tenant_id, email, address),
                                       args=[self._window, self._max, self._max_address]))

    async def succeeded(self, tenant_id: UUID, email: str, address: str) -> None:
        await self._succeeded(keys=self._keys(tenant_id, email, address), args=[])
