"""The delivery loop a worker runs for one subscription: oldest pending delivery first.

Invariants:
- One worker at a time delivers a subscription: a lease (`lease_until`, `lease_token`) taken
  with a conditional UPDATE, released at the end, expiring by itself if the worker dies. That is
  both the per-subscription ordering and the bound on concurrency per target.
- Head of line: a failing delivery stops the subscription's later ones until it succeeds or its
  retry window is spent, so a receiver sees each entity's events in the order they happened.
- At least once: the attempt is counted before the POST and the outcome recorded after it; a
  worker killed in between leaves the delivery PENDING and it is sent again, with the same event
  id and byte-identical body (receivers de-duplicate on `Webhook-Id`).
- The HTTP POST is a port (`Post`) the worker supplies; the engine never imports an HTTP client.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Awaitable, Callable
from uuid import UUID

import asyncpg

from engine import outbox
from engine.db import Database
from engine.domain.webhooks import RetryPolicy, encode_event, headers_for, successful
from engine.settings import Settings
from engine.webhooks.subscriptions import DELIVER_WEBHOOKS


@dataclass(frozen=True, slots=True)
class Outcome:
    status: int | None        # the receiver's HTTP status; None when there was no answer
    error: str | None         # why it failed (timeout, refused address, ...), short and safe to show
    duration_ms: int

    @property
    def ok(self) -> bool:
        return self.error is None and self.status is not None and successful(self.status)


# post(url, headers, body) -> Outcome; must never raise for anything the receiver does.
Post = Callable[[str, dict[str, str], bytes], Awaitable[Outcome]]


def retry_policy(settings: Settings) -> RetryPolicy:
    return RetryPolicy(settings.webhook_backoff_base_seconds, settings.webhook_backoff_max_seconds,
                       settings.webhook_retry_window_seconds)


def lease_seconds(settings: Settings) -> float:
    """Long enough for one attempt with margin; short enough that a dead worker's lease lapses soon."""
    return settings.webhook_timeout_seconds * 2 + 5


async def deliver_subscription(db: Database, sub_id: UUID, post: Post, *, retry: RetryPolicy, lease: float,
                               batch: int) -> str:
    """Deliver the subscription's due deliveries in order, up to `batch`; returns what happened."""
    token = uuid.uuid4()
    async with db.connection() as conn:
        sub = await conn.fetchrow(
            "UPDATE webhook_subscriptions SET lease_until = now() + make_interval(secs => $2), lease_token = $3"
            " WHERE id = $1 AND status = 'ACTIVE' AND deleted_at IS NULL"
            " AND (lease_until IS NULL OR lease_until < now()) RETURNING tenant_id, url, secret", sub_id, lease, token)
    if sub is None:
        return "busy or not active"
    sent, outcome = 0, "idle"
    try:
        while sent < batch:
            delivery = await _next_due(db, sub_id)
            if delivery is None:
                break
            result = await _attempt(db, sub, delivery, post)
            sent += 1
            outcome = await _record(db, sub, sub_id, delivery, result, retry)
            if not result.ok:
                break
            async with db.connection() as conn:
                await conn.execute("UPDATE webhook_subscriptions SET lease_until = now() + make_interval(secs => $2)"
                                   " WHERE id = $1 AND lease_token = $3", sub_id, lease, token)
    finally:
        await _release(db, sub, sub_id, token)
    return f"{outcome} after {sent} attempt(s)"


async def _next_due(db: Database, sub_id: UUID) -> asyncpg.Record | None:
    async with db.connection() as conn:
        row = await conn.fetchrow(
            "SELECT d.id, d.event_id, d.attempts, d.next_attempt_at <= now() AS due, d.retry_from,"
            " e.type, e.data, e.occurred_at FROM webhook_deliveries d JOIN webhook_events e ON e.id = d.event_id"
            " WHERE d.subscription_id = $1 AND d.status = 'PENDING' ORDER BY d.id LIMIT 1", sub_id)
    # Head of line: if the oldest is waiting for its retry, everything behind it waits too.
    return row if row is not None and row["due"] else None


async def _attempt(db: Database, sub: asyncpg.Record, delivery: asyncpg.Record, post: Post) -> Outcome:
    async with db.connection() as conn:
        await conn.execute("UPDATE webhook_deliveries SET attempts = attempts + 1, last_attempt_at = now()"
                           " WHERE id = $1", delivery["id"])
    body = encode_event(str(delivery["event_id"]), delivery["type"], delivery["occurred_at"], delivery["data"])
    headers = headers_for(sub["secret"], str(delivery["event_id"]), delivery["type"], body, int(time.time()))
    try:
        return await post(sub["url"], headers, body)
    except Exception as exc:  # a port bug must not leave the delivery unrecorded
        return Outcome(None, f"delivery error: {exc.__class__.__name__}", 0)


async def _record(db: Database, sub: asyncpg.Record, sub_id: UUID, delivery: asyncpg.Record, result: Outcome,
                  retry: RetryPolicy) -> str:
    attempts = delivery["attempts"] + 1
    async with db.transaction() as conn:
        if result.ok:
            await conn.execute(
                "UPDATE webhook_deliveries SET status = 'DELIVERED', delivered_at = now(), response_status = $2,"
                " duration_ms = $3, last_error = NULL WHERE id = $1", delivery["id"], result.status, result.duration_ms)
            return "delivered"
        now = await conn.fetchval("SELECT now()")
        next_at = retry.next_attempt(attempts, delivery["retry_from"], now)
        why = result.error or f"HTTP {result.status}"
        if next_at is not None:
            await conn.execute(
                "UPDATE webhook_deliveries SET next_attempt_at = $2, response_status = $3, duration_ms = $4,"
                " last_error = $5 WHERE id = $1", delivery["id"], next_at, result.status, result.duration_ms, why)
            await outbox.enqueue(conn, DELIVER_WEBHOOKS, {"subscription_id": sub_id}, tenant_id=sub["tenant_id"],
                                 not_before=next_at)
            return "retry scheduled"
        await conn.execute(
            "UPDATE webhook_deliveries SET status = 'FAILED', response_status = $2, duration_ms = $3, last_error = $4"
            " WHERE id = $1", delivery["id"], result.status, result.duration_ms, why)
        await conn.execute(
            "UPDATE webhook_subscriptions SET status = 'FAILING', failing_since = now(), updated_at = now(),"
            " failure_reason = $2 WHERE id = $1 AND status = 'ACTIVE'", sub_id,
            f"event {delivery['event_id']} undelivered after {attempts} attempts: {why}")
        return "gave up"


async def _release(db: Database, sub: asyncpg.Record, sub_id: UUID, token: UUID) -> None:
    """Give the lease back; if something became due meanwhile (its kick found the lease taken),
    wake a worker for it. A kick arriving during this UPDATE waits for it and then wins the lease."""
    async with db.transaction() as conn:
        await conn.execute("UPDATE webhook_subscriptions SET lease_until = NULL, lease_token = NULL"
                           " WHERE id = $1 AND lease_token = $2", sub_id, token)
        due = await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM webhook_subscriptions s WHERE s.id = $1 AND s.status = 'ACTIVE'"
            " AND (SELECT d.next_attempt_at <= now() FROM webhook_deliveries d WHERE d.subscription_id = s.id"
            " AND d.status = 'PENDING' ORDER BY d.id LIMIT 1))", sub_id)
        if due:
            await outbox.enqueue(conn, DELIVER_WEBHOOKS, {"subscription_id": sub_id}, tenant_id=sub["tenant_id"])


async def due_subscriptions(db: Database, *, limit: int = 1000) -> list[UUID]:
    """Active subscriptions with a due delivery and no live lease: the sweep's backstop for kicks
    lost with a killed worker (its lease lapsed while its message was already acknowledged)."""
    async with db.connection() as conn:
        rows = await conn.fetch(
            "SELECT s.id FROM webhook_subscriptions s WHERE s.status = 'ACTIVE' AND s.deleted_at IS NULL"
            " AND (s.lease_until IS NULL OR s.lease_until < now())"
            " AND EXISTS (SELECT 1 FROM webhook_deliveries d WHERE d.subscription_id = s.id AND d.status = 'PENDING'"
            " AND d.next_attempt_at <= now()) LIMIT $1", limit)
    return [r["id"] for r in rows]




async def purge_log(db: Database, *, older_than_days: float) -> int:
    """Drop finished deliveries older than the retention, then events no delivery points at;
    returns the deliveries removed. PENDING ones are never dropped."""
    async with db.transaction() as conn:
        removed = await conn.fetchval(
            "WITH gone AS (DELETE FROM webhook_deliveries WHERE status <> 'PENDING'"
            " AND created_at < now() - make_interval(secs => $1) RETURNING event_id),"
            " events AS (DELETE FROM webhook_events e WHERE e.id IN (SELECT event_id FROM gone)"
            " AND NOT EXISTS (SELECT 1 FROM webhook_deliveries d WHERE d.event_id = e.id"
            " AND d.event_id NOT IN (SELECT event_id FROM gone)))"
            " SELECT count(*) FROM gone", older_than_days * 86400)
    return removed
