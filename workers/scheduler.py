"""Periodic jobs that run in every worker process but fire once per tick across all of them.

Time is cut into ticks of each task's period (tick n = floor(unix time / period)). Every
process's scheduler tries `SET <prefix>:scheduler:<task>:<n> NX EX <2 periods>` when a new tick
starts; only the one that sets the key fires it. So adding worker machines adds no work, and a
process that starts mid-tick cannot fire a tick another process already fired.
"""

from __future__ import annotations

import asyncio
import math
import os
import socket
import time
from dataclasses import dataclass
from typing import Awaitable, Callable

import redis.asyncio as aioredis
import structlog

log = structlog.get_logger("workers.scheduler")


@dataclass(frozen=True, slots=True)
class PeriodicTask:
    name: str
    period_seconds: float
    fire: Callable[[], Awaitable[None] | None]   # usually: send the task's Dramatiq message


class Scheduler:
    def __init__(self, redis: aioredis.Redis, prefix: str, tasks: list[PeriodicTask], *,
                 clock: Callable[[], float] = time.time) -> None:
        self._redis = redis
        self._prefix = prefix
        self._tasks = tasks
        self._clock = clock
        self._last_tick: dict[str, int] = {}
        self._owner = f"{socket.gethostname()}:{os.getpid()}:{id(self)}"

    def _key(self, task: PeriodicTask, tick: int) -> str:
        return f"{self._prefix}:scheduler:{task.name}:{tick}"

    async def tick(self) -> list[tuple[str, int]]:
        """Fire every task whose new tick this scheduler won; returns (task, tick) fired."""
        fired = []
        now = self._clock()
        for task in self._tasks:
            tick = int(now // task.period_seconds)
            if self._last_tick.get(task.name) == tick:
                continue
            self._last_tick[task.name] = tick
            won = await self._redis.set(self._key(task, tick), self._owner, nx=True,
                                        ex=max(1, math.ceil(task.period_seconds * 2)))
            if not won:
                continue
            result = task.fire()
            if asyncio.iscoroutine(result):
                await result
            fired.append((task.name, tick))
        return fired

    async def run(self, stop: asyncio.Event) -> None:
        """Check for new ticks (a few times per shortest period) until `stop` is set."""
        shortest = min((t.period_seconds for t in self._tasks), default=1.0)
        poll = max(0.05, min(1.0, shortest / 4))
        while not stop.is_set():
            try:
                await self.tick()
            except Exception:  # Redis down: this tick is someone else's or lost; the sweep catches up
                log.warning("scheduler tick failed", exc_info=True)
            try:
                await asyncio.wait_for(stop.wait(), poll)
            except asyncio.TimeoutError:
                pass
