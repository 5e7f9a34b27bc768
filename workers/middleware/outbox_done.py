"""Marks an outbox row done when its job finished, so a message the broker lost is sent again.

The relay puts the row id on each message (the `outbox_id` option). Around each job:
- before it runs: the row's `resend_at` moves to now + the job's time limit + OUTBOX_RESEND_SECONDS,
  so a job still running is not presumed lost;
- after it succeeded, or failed for good (dead-lettered): the row is done;
- after a failure that will be retried: `resend_at` moves past the longest backoff, since the
  retry is itself a broker message that can be lost.
The job's effect commits before the mark; a crash between the two leaves the row not done, it is
sent again after `resend_at`, and the idempotent job changes nothing the second time.
Messages without `outbox_id` (periodic jobs, `commerce jobs --retry-dead`) are left alone.

Hooks run in worker threads; the database pool lives on the AsyncIO middleware's loop, so the
marks run there (bounded wait). A mark that fails (database down) is logged and skipped: the
row is simply sent again later.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any, Awaitable, Callable

import structlog
from dramatiq.asyncio import get_event_loop_thread
from dramatiq.middleware import Middleware

from engine import outbox
from workers.resources import WorkerResources

log = structlog.get_logger("workers.outbox_done")

_MARK_TIMEOUT = 10.0          # seconds a worker thread waits for a mark before moving on
_DEFAULT_TIME_LIMIT_MS = 600_000
_DEFAULT_MAX_BACKOFF_MS = 7 * 86_400_000  # Dramatiq's cap on a retry's delay


class OutboxDone(Middleware):
    def __init__(self, resources: WorkerResources) -> None:
        self.resources = resources

    def _grace(self) -> dt.timedelta:
        return dt.timedelta(seconds=self.resources.settings.outbox_resend_seconds)

    def _option(self, broker, message, name: str, default: int) -> int:
        actor = broker.get_actor(message.actor_name)
        return int(message.options.get(name, actor.options.get(name, default)) or default)

    def _run(self, what: str, make: Callable[[Any], Awaitable[Any]]) -> None:
        loop_thread = get_event_loop_thread()
        if loop_thread is None or not loop_thread.loop.is_running() or not self.resources.is_open:
            return

        async def mark() -> None:
            async with self.resources.db.connection() as conn:
                await make(conn)

        try:
            asyncio.run_coroutine_threadsafe(mark(), loop_thread.loop).result(_MARK_TIMEOUT)
        except Exception:  # noqa: BLE001 - the row is sent again later; nothing is lost
            log.warning("could not record outbox job progress", what=what, exc_info=True)

    def before_process_message(self, broker, message) -> None:
        row = message.options.get("outbox_id")
        if row is None:
            return
        limit_ms = self._option(broker, message, "time_limit", _DEFAULT_TIME_LIMIT_MS)
        hold = dt.timedelta(milliseconds=limit_ms) + self._grace()
        self._run("running", lambda conn: outbox.mark_running(conn, row, for_at_least=hold))

    def after_process_message(self, broker, message, *, result=None, exception=None) -> None:
        row = message.options.get("outbox_id")
        if row is None:
            return
        if exception is None or message.failed:
            self._run("done", lambda conn: outbox.mark_done(conn, row))
            return
        # Retries (earlier in the stack) has re-enqueued it with a delay of at most max_backoff.
        backoff_ms = min(self._option(broker, message, "max_backoff", _DEFAULT_MAX_BACKOFF_MS), _DEFAULT_MAX_BACKOFF_MS)
        hold = dt.timedelta(milliseconds=backoff_ms) + self._grace()
        self._run("retrying", lambda conn: outbox.mark_running(conn, row, for_at_least=hold))

    def after_skip_message(self, broker, message) -> None:
        if message.failed and message.options.get("outbox_id") is not None:
            row = message.options["outbox_id"]
            self._run("done", lambda conn: outbox.mark_done(conn, row))


