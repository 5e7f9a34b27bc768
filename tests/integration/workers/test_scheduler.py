"""Two scheduler instances (two worker processes) fire each tick once between them."""

from __future__ import annotations

import asyncio
import secrets

import redis.asyncio as aioredis

from workers.scheduler import PeriodicTask, Scheduler


async def test_each_tick_fires_once_across_two_schedulers(redis_url):
    prefix = f"sched{secrets.token_hex(4)}"
    fired: list[tuple[str, int]] = []
    clients = [aioredis.from_url(redis_url) for _ in range(2)]
    period = 0.1
    clock_now = [1_000_000.0]

    def clock():
        return clock_now[0]

    def task(name):
        return PeriodicTask(name, period, lambda: fired.append((name, int(clock_now[0] // period))))

    schedulers = [Scheduler(c, prefix, [task("sweep")], clock=clock) for c in clients]
    try:
        for _ in range(50):                       # 50 ticks, both schedulers racing on each
            await asyncio.gather(*(s.tick() for s in schedulers), *(s.tick() for s in schedulers))
            clock_now[0] += period
        ticks = [t for _, t in fired]
        assert len(ticks) == 50 and len(set(ticks)) == 50

        # Real time, real loops: about one fire per period, never two for the same tick.
        fired.clear()
        live = [Scheduler(c, prefix + "live", [PeriodicTask("sweep", 0.2, lambda: fired.append(("s", 0)))])
                for c in clients]
        stop = asyncio.Event()
        runs = [asyncio.create_task(s.run(stop)) for s in live]
        await asyncio.sleep(1.05)
        stop.set()
        await asyncio.gather(*runs)
        assert 4 <= len(fired) <= 7
    finally:
        for c in clients:
            keys = [k async for k in c.scan_iter(f"{prefix}*")]
            if keys:
                await c.delete(*keys)
            await c.aclose()
