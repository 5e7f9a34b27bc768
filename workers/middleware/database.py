"""Opens the worker's resources (asyncpg pool, Redis, provider) on the AsyncIO middleware's
event loop after the worker boots, and closes them after it shuts down.

Must come after dramatiq's AsyncIO middleware in the stack: after_* hooks run in reverse
order, so ours then runs while the loop is still alive (AsyncIO's own stops the loop).

A worker that boots while PostgreSQL is down (a crash, a failover, the whole stack restarting
together) keeps trying to open them in the background, backing off to 10 s, instead of living on
without a pool: the nemesis found such a worker, alive but never relaying, sweeping or running
a job again. Jobs wait for the resources (WorkerResources.ready), the relay and scheduler too.
"""

from __future__ import annotations

import asyncio
import concurrent.futures

import structlog
from dramatiq.asyncio import get_event_loop_thread
from dramatiq.middleware import Middleware

from workers.resources import WorkerResources

log = structlog.get_logger("workers.database")


class DatabasePool(Middleware):
    def __init__(self, resources: WorkerResources, *, first_retry: float = 0.5, max_retry: float = 10.0) -> None:
        self.resources = resources
        self._first_retry, self._max_retry = first_retry, max_retry
        self._retrying: concurrent.futures.Future | None = None

    def after_worker_boot(self, broker, worker) -> None:
        loop_thread = get_event_loop_thread()
        try:
            loop_thread.run_coroutine(self.resources.open())
        except Exception:  # noqa: BLE001 - the database (or Redis) is down: keep trying
            log.warning("worker resources did not open at boot; retrying in the background", exc_info=True)
            self._retrying = asyncio.run_coroutine_threadsafe(self._open_until_done(), loop_thread.loop)

    async def _open_until_done(self) -> None:
        delay = self._first_retry
        while not self.resources.is_open:
            await asyncio.sleep(delay)
            try:
                await self.resources.open()
                log.info("worker resources opened after a failed boot")
            except Exception:  # noqa: BLE001
                delay = min(delay * 2, self._max_retry)
                log.warning("worker resources still cannot open; retrying", retry_in=delay)

    def after_worker_shutdown(self, broker, worker) -> None:
        if self._retrying is not None:
            self._retrying.cancel()
        loop_thread = get_event_loop_thread()
        if loop_thread is not None and loop_thread.loop.is_running():
            loop_thread.run_coroutine(self.resources.close())
