"""The webhook POST: the engine's `Post` port over aiohttp, treated as the SSRF surface it is.

- The target is re-validated at every delivery: a literal IP must be allowed, and a name is
  resolved by a resolver that refuses the whole answer if any address is disallowed; aiohttp
  then connects only to the addresses that resolver returned (no second lookup to rebind).
- No redirects (a 3xx is a failed delivery), no proxies from the environment, no cookies.
- One total timeout covers connect, send and the response; at most `cap` bytes of the response
  body are read. A hanging receiver costs one job at most the timeout, never more.
"""

from __future__ import annotations

import socket
import time
from typing import Any

import aiohttp
from aiohttp.abc import AbstractResolver
from aiohttp.resolver import DefaultResolver

from engine.domain.errors import ValidationError
from engine.domain.webhooks import address_allowed, parse_target
from engine.webhooks.deliveries import Outcome, Post


class _Blocked(OSError):
    """Raised inside aiohttp's connect: the name resolved to a disallowed address."""


class GuardedResolver(AbstractResolver):
    def __init__(self, *, allow_private: bool) -> None:
        self._inner = DefaultResolver()
        self._allow_private = allow_private

    async def resolve(self, host: str, port: int = 0, family: int = socket.AF_INET) -> list[dict[str, Any]]:
        infos = await self._inner.resolve(host, port, family)
        if not infos or any(not address_allowed(i["host"], allow_private=self._allow_private) for i in infos):
            raise _Blocked(f"{host} resolves to a disallowed address")
        return infos

    async def close(self) -> None:
        await self._inner.close()


def _blocked(exc: BaseException) -> bool:
    while exc is not None:
        if isinstance(exc, _Blocked):
            return True
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    return False


class WebhookClient:
    """Open for one job run (`async with`); its `post` is the engine's Post port."""

    def __init__(self, *, timeout: float, cap: int, dev_mode: bool) -> None:
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._cap = cap
        self._dev_mode = dev_mode
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Post:
        connector = aiohttp.TCPConnector(resolver=GuardedResolver(allow_private=self._dev_mode),
                                         limit_per_host=1, use_dns_cache=False)
        self._session = aiohttp.ClientSession(connector=connector, timeout=self._timeout, trust_env=False,
                                              cookie_jar=aiohttp.DummyCookieJar())
        return self.post

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()

    async def post(self, url: str, headers: dict[str, str], body: bytes) -> Outcome:
        started = time.monotonic()

        def took() -> int:
            return int((time.monotonic() - started) * 1000)

        try:
            parse_target(url, dev_mode=self._dev_mode)   # literal IPs never reach the resolver
        except ValidationError:
            return Outcome(None, "target refused: disallowed address or scheme", 0)
        assert self._session is not None
        try:
            async with self._session.post(url, data=body, headers=headers, allow_redirects=False) as resp:
                await resp.content.read(self._cap)
                return Outcome(resp.status, None, took())
        except TimeoutError:
            return Outcome(None, f"timeout after {self._timeout.total:g}s", took())
        except aiohttp.ClientError as exc:
            if _blocked(exc):
                return Outcome(None, "target refused: resolves to a disallowed address", took())
            return Outcome(None, f"connection failed: {exc.__class__.__name__}", took())
        except _Blocked:
            return Outcome(None, "target refused: resolves to a disallowed address", took())
