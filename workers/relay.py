"""The outbox relay: hands committed outbox rows to Dramatiq and marks them sent.

Invariant: a row is marked sent only in the transaction that sent it, after the send. So a
crash before the business transaction commits leaves no row; a crash after it commits but
before the relay runs, or between the send and the mark, leaves the row unsent and the next
relay run sends it (again): nothing is lost, and a duplicate message is absorbed by the job's
idempotency. FOR UPDATE SKIP LOCKED lets every worker process run a relay side by side.

Rows due later than `horizon` stay in the outbox until they come closer, so a 30-minute
payment expiry does not sit in a worker's memory as a delayed message for 30 minutes.

Sent is not done (engine/outbox.py): each message carries its row id (the `outbox_id` message
option); the worker marks the row done when the job finished (workers/middleware/outbox_done.py).
A row sent but not done by its `resend_at` was lost by the broker and is sent again here.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any, Callable, Collection

import structlog

from engine.db import Database

log = structlog.get_logger("workers.relay")

# send(job, payload, delay_ms, outbox_id): enqueue on the broker; raises if the broker is unreachable.
Send = Callable[[str, dict[str, Any], "int | None", int], None]


class OutboxRelay:
    def __init__(self, db: Database, send: Send, jobs: Collection[str], *, batch_size: int = 200,
                 horizon: dt.timedelta = dt.timedelta(minutes=5), poll_seconds: float = 0.5,
                 resend_after: dt.timedelta = dt.timedelta(seconds=120)) -> None:
        self._db = db
        self._send = send
        self._jobs = sorted(jobs)   # rows of jobs nobody here implements wait for a worker that does
        self._batch_size = batch_size
        self._horizon = horizon
        self._poll = poll_seconds
        self._resend_after = resend_after

    async def relay_once(self) -> int:
        """Send one batch of due rows; returns how many were sent."""
        async with self._db.transaction() as conn:
            rows = await conn.fetch(
                "SELECT id, job, payload, sent_at IS NOT NULL AS lost,"
                " greatest(0, extract(epoch FROM not_before - now()) * 1000)::bigint AS delay_ms"
                " FROM outbox WHERE done_at IS NULL AND job = ANY($1::text[])"
                "  AND ((sent_at IS NULL AND not_before <= now() + $2::interval) OR resend_at <= now())"
                " ORDER BY id LIMIT $3 FOR UPDATE SKIP LOCKED",
                self._jobs, self._horizon, self._batch_size)
            if not rows:
                return 0
            batch = [(r["job"], r["payload"], r["delay_ms"] or None, r["id"]) for r in rows]
            # The broker call is blocking I/O: keep it off the event loop.
            await asyncio.to_thread(self._send_all, batch)
            await conn.execute("UPDATE outbox SET sent_at = now(), sends = sends + 1,"
                               " resend_at = greatest(not_before, now()) + $2::interval WHERE id = ANY($1::bigint[])",
                               [r["id"] for r in rows], self._resend_after)
        lost = [r["id"] for r in rows if r["lost"]]
        if lost:
            # Not an error of ours: the broker dropped messages it had accepted. Worth a look.
            log.warning("outbox rows sent again: sent before but never finished", count=len(lost), ids=lost[:20])
        return len(rows)

    def _send_all(self, batch: list[tuple[str, dict[str, Any], int | None, int]]) -> None:
        for job, payload, delay_ms, row_id in batch:
            self._send(job, payload, delay_ms, row_id)

    async def run(self, stop: asyncio.Event) -> None:
        """Relay until `stop` is set; a full batch is followed at once by the next."""
        while not stop.is_set():
            try:
                sent = await self.relay_once()
            except Exception:  # broker or database down: keep the rows, try again later
                log.warning("outbox relay failed; retrying", exc_info=True)
                sent = 0
            if sent < self._batch_size:
                try:
                    await asyncio.wait_for(stop.wait(), self._poll)
                except asyncio.TimeoutError:
                    pass
