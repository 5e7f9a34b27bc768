"""Runs the outbox relay and the periodic scheduler as tasks on the worker's event loop, from
boot (after the resources are open) until shutdown begins (before they close)."""

from __future__ import annotations

import asyncio
import concurrent.futures
from typing import Any, Callable, Coroutine

import structlog
from dramatiq.asyncio import get_event_loop_thread
from dramatiq.middleware import Middleware

log = structlog.get_logger("workers.background")

# Each factory receives the stop event and returns the loop coroutine to run.
LoopFactory = Callable[[asyncio.Event], Coroutine[Any, Any, None]]


class BackgroundLoops(Middleware):
    def __init__(self, *factories: LoopFactory) -> None:
        self.factories = factories
        self._stop: asyncio.Event | None = None
        self._futures: list[concurrent.futures.Future] = []

    def after_worker_boot(self, broker, worker) -> None:
        loop = get_event_loop_thread().loop

        async def make_stop() -> asyncio.Event:
            return asyncio.Event()

        self._stop = asyncio.run_coroutine_threadsafe(make_stop(), loop).result()
        self._futures = [asyncio.run_coroutine_threadsafe(f(self._stop), loop) for f in self.factories]

    def before_worker_shutdown(self, broker, worker) -> None:
        loop_thread = get_event_loop_thread()
        if self._stop is None or loop_thread is None:
            return
        loop_thread.loop.call_soon_threadsafe(self._stop.set)
        for fut in self._futures:
            try:
                fut.result(timeout=30)
            except Exception:
                log.warning("background loop ended with an error", exc_info=True)
