"""Rate limiting: the interface every route calls. `check` returns the X-RateLimit-* headers
for the response or raises RateLimited (429 with Retry-After)."""

from __future__ import annotations

from aiohttp import web

from engine.principal import Principal


class RateLimiter:
    """No limits; the base of the Redis limiter."""

    async def check(self, request: web.Request, principal: Principal, policy: str | None) -> dict[str, str]:
        return {}
