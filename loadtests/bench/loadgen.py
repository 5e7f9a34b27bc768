"""A closed-loop asyncio load generator: `concurrency` workers on one aiohttp session, each
sending its next request as soon as the previous one answered, until `seconds` pass or
`max_requests` are sent (both bounds always apply). It measures its own CPU share, so the
report can show it was not the bottleneck.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import aiohttp

# request(session, i) -> HTTP status (or a pseudo-status for non-HTTP work); i counts from 0.
Request = Callable[[aiohttp.ClientSession, int], Awaitable[int]]


@dataclass
class LoadResult:
    sent: int
    statuses: dict[int, int]
    latencies_ms: list[float] = field(repr=False)
    wall: float
    cpu: float

    @property
    def rate(self) -> float:
        return self.sent / self.wall if self.wall else 0.0

    def rate_of(self, *statuses: int) -> float:
        return sum(self.statuses.get(s, 0) for s in statuses) / self.wall if self.wall else 0.0

    def pct(self, q: float) -> float:
        if not self.latencies_ms:
            return 0.0
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]

    @property
    def p50(self) -> float:
        return statistics.median(self.latencies_ms) if self.latencies_ms else 0.0

    @property
    def p99(self) -> float:
        return self.pct(99)

    @property
    def cpu_share(self) -> float:
        """Fraction of one core the generator used."""
        return self.cpu / self.wall if self.wall else 0.0


async def closed_loop(request: Request, *, concurrency: int, seconds: float, max_requests: int = 10_000_000,
                      timeout: float = 30.0) -> LoadResult:
    counter = iter(range(max_requests))
    statuses: dict[int, int] = {}
    latencies: list[float] = []
    deadline = time.monotonic() + seconds
    connector = aiohttp.TCPConnector(limit=concurrency, force_close=False)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=timeout)) as session:

        async def worker() -> None:
            for i in counter:
                if time.monotonic() >= deadline:
                    return
                t0 = time.perf_counter()
                try:
                    status = await request(session, i)
                except (TimeoutError, aiohttp.ClientError):
                    status = 599
                latencies.append((time.perf_counter() - t0) * 1000)
                statuses[status] = statuses.get(status, 0) + 1

        cpu0, t0 = time.process_time(), time.monotonic()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall, cpu = time.monotonic() - t0, time.process_time() - cpu0
    return LoadResult(sum(statuses.values()), statuses, latencies, wall, cpu)


async def get(session: aiohttp.ClientSession, url: str, headers: dict[str, str] | None = None) -> int:
    async with session.get(url, headers=headers) as r:
        await r.read()
        return r.status


async def post(session: aiohttp.ClientSession, url: str, body: object, headers: dict[str, str] | None = None) -> int:
    async with session.post(url, json=body, headers=headers) as r:
        await r.read()
        return r.status
