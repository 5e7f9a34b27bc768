"""Opens the worker's resources (asyncpg pool, Redis, provider) on the AsyncIO middleware's
event loop after the worker boots, and closes them after it shuts down.

Must come after dramatiq's AsyncIO middleware in the stack: after_* hooks run in reverse
order, so ours then runs while the loop is still alive (AsyncIO's own stops the loop).
"""

from __future__ import annotations

from dramatiq.asyncio import get_event_loop_thread
from dramatiq.middleware import Middleware

from workers.resources import WorkerResources


class DatabasePool(Middleware):
    def __init__(self, resources: WorkerResources) -> None:
        self.resources = resources

    def after_worker_boot(self, broker, worker) -> None:
        get_event_loop_thread().run_coroutine(self.resources.open())

    def after_worker_shutdown(self, broker, worker) -> None:
        loop_thread = get_event_loop_thread()
        if loop_thread is not None and loop_thread.loop.is_running():
            loop_thread.run_coroutine(self.resources.close())
