"""Rate limiting: one limiter in Redis, shared by every API process.

Algorithm: a sliding-window log, one sorted set per (limit, caller), checked and updated by one
Lua script, so concurrent requests in any number of processes cannot both take the last slot,
and no fixed-window boundary lets a double burst through: at most N requests are admitted in
ANY 60-second window. Time comes from Redis (`TIME`), so API clocks need not agree. Refused
requests are not recorded (a client hammering a limit is not locked out for longer).
The script calls of one event-loop turn share one pipelined round trip (ScriptBatcher), so a
request never costs more than one Redis round trip, and under load much less.

Which limits apply to a request (all of them are checked at once; the tightest answers):
- the route's declared policy (POLICIES below; every route declares one, `unlimited` included,
  and the README's table is generated from the declarations), per caller: the user for bearer
  tokens, the key for API keys, the client address for anonymous callers. A route may declare
  another policy for signed-in users (`user_policy`: a customer's `POST /orders` shares the
  checkout's `financial` budget, while API keys keep `orders` and their plan);
- for API keys, the key's plan (standard / enterprise), on every route.
Limits are Settings fields (`rate_*`), per minute.

Headers on every limited response: X-RateLimit-Limit, -Remaining, -Reset (epoch seconds at which
the oldest counted request leaves the window, i.e. when a slot frees up) and -Policy. A refusal
is 429 RATE_LIMIT_EXCEEDED with Retry-After.

Redis unavailable (documented choice): every policy but `financial` fails OPEN (the request is
served without limit headers; a warning is logged and `rate_limit_fail_open_total` counts it),
because refusing all reads would turn a cache outage into a full outage. `financial` fails
CLOSED with 503 + Retry-After: a checkout flood is worse than a short checkout pause. After a
failure the limiter does not try Redis again for `_BREAKER_SECONDS`, so an outage does not add
a connection attempt to every request; it recovers on its own when Redis returns.
"""

from __future__ import annotations

import functools
import ipaddress
import itertools
import math
import os
import time
from dataclasses import dataclass
from typing import Callable

import redis.asyncio as aioredis
import structlog
from aiohttp import web

from engine.domain.errors import RateLimited, ServiceUnavailable
from engine.identity.sessions import REDIS_DOWN
from engine.domain.principal import Principal
from engine.redis_batch import ScriptBatcher
from engine.settings import Settings

log = structlog.get_logger("ratelimit")

# The X-RateLimit-* headers of this request, written by the limiter, sent by the middleware.
RATE_LIMIT_HEADERS: web.RequestKey[dict[str, str]] = web.RequestKey("rate_limit_headers")

UNLIMITED = "unlimited"


@dataclass(frozen=True, slots=True)
class Policy:
    name: str
    setting: str | None     # the Settings field holding its per-minute budget; None: not limited
    covers: str             # what it is for, in the README's words


# The storefront document's classes (catalogue 200, cart 100, checkout 2, orders 100; review
# writes 100 and shipping 200 by their own pages) plus the routes the documents do not price.
POLICIES: dict[str, Policy] = {p.name: p for p in (
    Policy("catalogue", "rate_catalogue", "product listing and details, reviews of a product"),
    Policy("categories", "rate_categories", "category tree and category pages"),
    Policy("shipping", "rate_shipping", "shipping methods and cost calculation"),
    Policy("reviews", "rate_reviews", "writing a review, voting one helpful"),
    Policy("cart", "rate_cart", "cart operations"),
    Policy("financial", "rate_financial", "checkout; a signed-in user's `POST /orders`"),
    Policy("orders", "rate_orders", "order reads and operations; `POST /orders` by API keys"),
    Policy("auth", "rate_auth", "sign-up, login, refresh (each costs a password hash or a token rotation)"),
    Policy("account", "rate_account", "the signed-in user's own account: `/me`, logout, addresses"),
    Policy("admin", "rate_admin", "staff and integration management routes"),
    Policy("webhooks", "rate_webhooks", "payment provider webhooks (signature-checked)"),
    Policy("pages", "rate_pages", "HTML pages and documents: API reference, OpenAPI, payment page"),
    Policy(UNLIMITED, None, "health probes and the metrics scrape: never 429 to the orchestrator"),
)}
FAIL_CLOSED = frozenset({"financial"})
WINDOW_MS = 60_000
_BREAKER_SECONDS = 1.0

# KEYS: one sorted set per limit. ARGV[1]: window (ms); ARGV[2]: this request's unique member;
# ARGV[2 + i]: the limit of KEYS[i]. Admit only if every limit has room; then record in all.
# Returns {admitted, now_ms, counts[], oldest_ms[]} (counts include this request if admitted).
_SLIDING_WINDOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = tonumber(ARGV[1])
local counts, oldest = {}, {}
local admitted = 1
for i, key in ipairs(KEYS) do
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
  counts[i] = redis.call('ZCARD', key)
  local first = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
  oldest[i] = tonumber(first[2] or now)
  if counts[i] >= tonumber(ARGV[2 + i]) then admitted = 0 end
end
if admitted == 1 then
  for i, key in ipairs(KEYS) do
    redis.call('ZADD', key, now, ARGV[2])
    redis.call('PEXPIRE', key, window)
    counts[i] = counts[i] + 1
  end
end
return {admitted, now, counts, oldest}
"""


@dataclass(frozen=True, slots=True)
class Limit:
    policy: str      # the X-RateLimit-Policy value
    key: str         # Redis key of this caller's window
    limit: int       # requests per window


@dataclass(frozen=True, slots=True)
class Decision:
    admitted: bool
    limit: Limit
    remaining: int
    reset_epoch: int
    retry_after: int

    def headers(self) -> dict[str, str]:
        return {"X-RateLimit-Limit": str(self.limit.limit), "X-RateLimit-Remaining": str(self.remaining),
                "X-RateLimit-Reset": str(self.reset_epoch), "X-RateLimit-Policy": self.limit.policy}


def policy_limit(settings: Settings, policy: str) -> int | None:
    setting = POLICIES[policy].setting
    return None if setting is None else int(getattr(settings, setting))


def plan_limit(settings: Settings, plan: str | None) -> int:
    return settings.rate_api_key_enterprise if plan == "enterprise" else settings.rate_api_key_standard


def client_address(request: web.Request, settings: Settings) -> str:
    """The caller's IP. Behind a trusted proxy, the last X-Forwarded-For entry (the address that
    proxy saw; earlier entries are whatever the client chose to send)."""
    raw = request.remote or ""
    if settings.trust_forwarded_for:
        forwarded = [p.strip() for p in request.headers.get("X-Forwarded-For", "").split(",") if p.strip()]
        if forwarded:
            raw = forwarded[-1]
    return _normalised_address(raw)


@functools.lru_cache(maxsize=4096)
def _normalised_address(raw: str) -> str:
    """Canonical text of an IP address ("unknown" if it is none); cached: parsing an address
    on every request costs more than the dictionary hit, and callers repeat."""
    try:
        return str(ipaddress.ip_address(raw))
    except ValueError:
        return "unknown"


def applicable_limits(settings: Settings, principal: Principal, policy: str | None, address: str) -> list[Limit]:
    """Every limit this request counts against (empty: the route is not limited)."""
    prefix = f"{settings.redis_prefix}:rl"
    caller = f"addr:{address}" if principal.is_anonymous else principal.scope
    limits = []
    budget = policy_limit(settings, policy) if policy is not None else None
    if policy is not None and budget is not None:
        limits.append(Limit(policy, f"{prefix}:{policy}:{caller}", budget))
    if principal.api_key_id is not None:
        plan = principal.plan or "standard"
        limits.append(Limit(f"api-key-{plan}", f"{prefix}:plan:{principal.api_key_id}", plan_limit(settings, plan)))
    return limits


def decide(limits: list[Limit], admitted: bool, now_ms: int, counts: list[int], oldest_ms: list[int]) -> Decision:
    """The tightest limit's answer. Admitted: the limit with the fewest requests left. Refused:
    among the exhausted limits, the one that frees a slot last."""
    def free_at(i: int) -> int:
        return oldest_ms[i] + WINDOW_MS

    if admitted:
        i = min(range(len(limits)), key=lambda j: (limits[j].limit - counts[j], limits[j].limit))
        return Decision(True, limits[i], max(0, limits[i].limit - counts[i]), math.ceil(free_at(i) / 1000), 0)
    exhausted = [j for j in range(len(limits)) if counts[j] >= limits[j].limit]
    i = max(exhausted, key=lambda j: (free_at(j), -limits[j].limit))
    retry = max(1, math.ceil((free_at(i) - now_ms) / 1000))
    return Decision(False, limits[i], 0, math.ceil(free_at(i) / 1000), retry)


class Breaker:
    """After a Redis failure, skip Redis for a moment instead of paying a failed connection
    attempt on every request; try again after `seconds` (recovery needs no restart)."""

    def __init__(self, seconds: float = _BREAKER_SECONDS) -> None:
        self._seconds = seconds
        self._open_until = 0.0

    @property
    def is_open(self) -> bool:
        return time.monotonic() < self._open_until

    def trip(self) -> None:
        self._open_until = time.monotonic() + self._seconds


# The counted request of a response, so that a replayed answer can give its slot back.
_TICKET: web.RequestKey[tuple[list[str], str]] = web.RequestKey("rate_limit_ticket")


class RateLimiter:
    """No limits (rate limiting disabled); the interface every route calls."""

    async def check(self, request: web.Request, principal: Principal, policy: str | None) -> dict[str, str]:
        return {}

    async def refund(self, request: web.Request) -> None:
        """Un-count this request (it was answered from a stored response and cost nothing)."""


class RedisRateLimiter(RateLimiter):
    def __init__(self, settings: Settings, redis: aioredis.Redis,
                 on_fail_open: Callable[[str, BaseException], None] = lambda policy, exc: None,
                 on_refused: Callable[[str], None] = lambda policy: None) -> None:
        self._settings = settings
        self._redis = redis
        self._script = ScriptBatcher(redis, _SLIDING_WINDOW)
        self._on_fail_open = on_fail_open
        self._on_refused = on_refused
        self._breaker = Breaker()
        # Unique sorted-set members without a syscall per request (uuid4 reads os.urandom):
        # a random per-limiter prefix (unique across processes) and a counter.
        self._member_prefix = os.urandom(8).hex()
        self._members = itertools.count()

    async def check(self, request: web.Request, principal: Principal, policy: str | None) -> dict[str, str]:
        """X-RateLimit-* headers for the response; raises RateLimited (429) or, for a
        fail-closed policy while Redis is down, ServiceUnavailable (503)."""
        limits = applicable_limits(self._settings, principal, policy,
                                   client_address(request, self._settings))
        if not limits:
            return {}
        if self._breaker.is_open:
            return self._redis_down(policy, ConnectionError("Redis failed less than a second ago"))
        member = f"{self._member_prefix}{next(self._members)}"
        try:
            admitted, now_ms, counts, oldest = await self._script(
                [lim.key for lim in limits], [WINDOW_MS, member, *[lim.limit for lim in limits]])
        except REDIS_DOWN as exc:
            self._breaker.trip()
            return self._redis_down(policy, exc)
        decision = decide(limits, bool(admitted), int(now_ms), [int(c) for c in counts], [int(o) for o in oldest])
        headers = decision.headers()
        if not decision.admitted:
            self._on_refused(decision.limit.policy)
            raise RateLimited("Rate limit exceeded; retry later.",
                              extra={"retry_after": decision.retry_after, "headers": headers})
        request[_TICKET] = ([lim.key for lim in limits], member)
        return headers

    async def refund(self, request: web.Request) -> None:
        ticket = request.get(_TICKET)
        if ticket is None:
            return
        del request[_TICKET]
        keys, member = ticket
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for key in keys:
                    pipe.zrem(key, member)
                await pipe.execute()
        except REDIS_DOWN as exc:  # the slot frees itself when the window moves on
            self._on_fail_open("refund", exc)
            return
        headers = request.get(RATE_LIMIT_HEADERS)
        if headers and "X-RateLimit-Remaining" in headers:
            headers["X-RateLimit-Remaining"] = str(min(int(headers["X-RateLimit-Limit"]),
                                                       int(headers["X-RateLimit-Remaining"]) + 1))

    def _redis_down(self, policy: str | None, exc: BaseException) -> dict[str, str]:
        if policy in FAIL_CLOSED:
            raise ServiceUnavailable("Rate limiting is unavailable; retry shortly.",
                                     extra={"retry_after": self._settings.dependency_retry_after})
        self._on_fail_open(policy or "api-key", exc)
        return {}
