"""Webhook subscriptions as stored, and what staff do with them: create, list, change, delete,
read the delivery log, send a delivery again, send a ping.

Invariants:
- The secret is generated here and returned by `create` only; reads never include it.
- Only ACTIVE subscriptions capture events (the triggers check) and get deliveries; PAUSED ones
  capture nothing while paused; FAILING ones (retry window spent) keep their undelivered rows,
  which go out, in order, once staff set the subscription ACTIVE again.
- "Send again" and "ping" add a delivery row (same event id for a resend) and its outbox kick in
  one transaction, so the worker path is the one every event takes.
"""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import asyncpg

from engine import outbox
from engine.db import Database
from engine.domain.errors import ValidationError, WebhookDeliveryNotFound, WebhookSubscriptionNotFound
from engine.domain.webhooks import EVENT_TYPES, PING

DELIVER_WEBHOOKS = "deliver_webhooks"   # {"subscription_id"}: the job name the triggers also write
STATUSES = ("ACTIVE", "PAUSED")          # what staff may set; FAILING is set by the delivery loop
_COLUMNS = ("id, url, event_types, description, status, failure_reason, failing_since, low_stock_threshold,"
            " created_at, updated_at")


@dataclass(frozen=True, slots=True)
class Subscription:
    id: UUID
    url: str
    event_types: list[str]
    description: str | None
    status: str
    failure_reason: str | None
    failing_since: dt.datetime | None
    low_stock_threshold: int
    created_at: dt.datetime
    updated_at: dt.datetime


@dataclass(frozen=True, slots=True)
class Delivery:
    id: int
    event_id: UUID
    event_type: str
    status: str
    attempts: int
    response_status: int | None
    duration_ms: int | None
    last_error: str | None
    next_attempt_at: dt.datetime | None
    last_attempt_at: dt.datetime | None
    delivered_at: dt.datetime | None
    created_at: dt.datetime


def event_types(types: list[str]) -> list[str]:
    unknown = sorted(set(types) - set(EVENT_TYPES))
    if unknown or not types:
        raise ValidationError("Unknown event types.", details={"events": [
            f"unknown: {', '.join(unknown)}" if unknown else "at least one", f"known: {', '.join(EVENT_TYPES)}"]})
    return sorted(set(types), key=EVENT_TYPES.index)


def _sub(row: asyncpg.Record) -> Subscription:
    return Subscription(**{k: row[k] for k in Subscription.__slots__})


async def create(db: Database, tenant_id: UUID, *, url: str, types: list[str], description: str | None,
                 low_stock_threshold: int, created_by: str) -> tuple[Subscription, str]:
    """A new ACTIVE subscription and its secret (the only time the secret is returned)."""
    secret = "whsec_" + secrets.token_urlsafe(32)
    async with db.connection() as conn:
        row = await conn.fetchrow(
            "INSERT INTO webhook_subscriptions (tenant_id, url, event_types, secret, description, low_stock_threshold,"
            f" created_by) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {_COLUMNS}",
            tenant_id, url, event_types(types), secret, description, low_stock_threshold, created_by)
    return _sub(row), secret


async def list_all(db: Database, tenant_id: UUID, *, page: int, page_size: int) -> tuple[list[Subscription], int]:
    async with db.connection() as conn:
        rows = await conn.fetch(
            f"SELECT {_COLUMNS}, count(*) OVER () AS total FROM webhook_subscriptions"
            " WHERE tenant_id = $1 AND deleted_at IS NULL ORDER BY created_at DESC, id LIMIT $2 OFFSET $3",
            tenant_id, page_size, (page - 1) * page_size)
        total = rows[0]["total"] if rows else await conn.fetchval(
            "SELECT count(*) FROM webhook_subscriptions WHERE tenant_id = $1 AND deleted_at IS NULL", tenant_id)
    return [_sub(r) for r in rows], total


async def get(db: Database, tenant_id: UUID, sub_id: UUID) -> Subscription:
    async with db.connection() as conn:
        row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM webhook_subscriptions"
                                  " WHERE id = $1 AND tenant_id = $2 AND deleted_at IS NULL", sub_id, tenant_id)
    if row is None:
        raise WebhookSubscriptionNotFound()
    return _sub(row)


async def update(db: Database, tenant_id: UUID, sub_id: UUID, changes: dict[str, Any]) -> Subscription:
    """Apply staff changes (url, events, description, status, low_stock_threshold). Setting ACTIVE
    clears a FAILING state and wakes the delivery of whatever is still pending."""
    if "events" in changes:
        changes["event_types"] = event_types(changes.pop("events"))
    status = changes.get("status")
    if status is not None and status not in STATUSES:
        raise ValidationError("Invalid status.", details={"status": ["ACTIVE or PAUSED"]})
    sets = [f"{name} = ${i}" for i, name in enumerate(changes, start=3)]
    if status == "ACTIVE":
        sets += ["failure_reason = NULL", "failing_since = NULL"]
    async with db.transaction() as conn:
        row = await conn.fetchrow(
            f"UPDATE webhook_subscriptions SET {', '.join(sets + ['updated_at = now()'])}"
            f" WHERE id = $1 AND tenant_id = $2 AND deleted_at IS NULL RETURNING {_COLUMNS}",
            sub_id, tenant_id, *changes.values())
        if row is None:
            raise WebhookSubscriptionNotFound()
        if status == "ACTIVE":
            # Deliveries given up while FAILING are retried from the start of a fresh window.
            await conn.execute("UPDATE webhook_deliveries SET next_attempt_at = now(), retry_from = now() WHERE subscription_id = $1"
                               " AND status = 'PENDING'", sub_id)
            await outbox.enqueue(conn, DELIVER_WEBHOOKS, {"subscription_id": sub_id}, tenant_id=tenant_id)
    return _sub(row)


async def delete(db: Database, tenant_id: UUID, sub_id: UUID) -> Subscription:
    """Soft delete: the delivery log keeps pointing at a real row; nothing more is captured or sent."""
    async with db.transaction() as conn:
        row = await conn.fetchrow(
            "UPDATE webhook_subscriptions SET deleted_at = now(), status = 'PAUSED', updated_at = now()"
            f" WHERE id = $1 AND tenant_id = $2 AND deleted_at IS NULL RETURNING {_COLUMNS}", sub_id, tenant_id)
        if row is None:
            raise WebhookSubscriptionNotFound()
        await conn.execute("UPDATE webhook_deliveries SET status = 'FAILED', last_error = 'subscription deleted'"
                           " WHERE subscription_id = $1 AND status = 'PENDING'", sub_id)
    return _sub(row)


def _delivery(row: asyncpg.Record) -> Delivery:
    return Delivery(**{k: row[k] for k in Delivery.__slots__})


_DELIVERY_COLUMNS = ("d.id, d.event_id, e.type AS event_type, d.status, d.attempts, d.response_status, d.duration_ms,"
                     " d.last_error, CASE WHEN d.status = 'PENDING' THEN d.next_attempt_at END AS next_attempt_at,"
                     " d.last_attempt_at, d.delivered_at, d.created_at")


async def deliveries(db: Database, tenant_id: UUID, sub_id: UUID, *, page: int, page_size: int,
                     status: str | None = None) -> tuple[list[Delivery], int]:
    """The subscription's delivery log, newest first."""
    await get(db, tenant_id, sub_id)
    async with db.connection() as conn:
        rows = await conn.fetch(
            f"SELECT {_DELIVERY_COLUMNS}, count(*) OVER () AS total FROM webhook_deliveries d"
            " JOIN webhook_events e ON e.id = d.event_id"
            " WHERE d.subscription_id = $1 AND d.tenant_id = $2 AND ($3::text IS NULL OR d.status = $3)"
            " ORDER BY d.id DESC LIMIT $4 OFFSET $5", sub_id, tenant_id, status, page_size, (page - 1) * page_size)
    return [_delivery(r) for r in rows], (rows[0]["total"] if rows else 0)


async def send_again(db: Database, tenant_id: UUID, sub_id: UUID, delivery_id: int) -> Delivery:
    """A new delivery of the same event (same event id, so receivers can de-duplicate)."""
    async with db.transaction() as conn:
        event_id = await conn.fetchval(
            "SELECT d.event_id FROM webhook_deliveries d JOIN webhook_subscriptions s ON s.id = d.subscription_id"
            " WHERE d.id = $1 AND d.subscription_id = $2 AND d.tenant_id = $3 AND s.deleted_at IS NULL",
            delivery_id, sub_id, tenant_id)
        if event_id is None:
            raise WebhookDeliveryNotFound()
        return await _add_delivery(conn, tenant_id, sub_id, event_id)


async def ping(db: Database, tenant_id: UUID, sub_id: UUID) -> Delivery:
    """Queue a `ping` event to this subscription only (whatever types it wants)."""
    await get(db, tenant_id, sub_id)
    async with db.transaction() as conn:
        event_id = await conn.fetchval(
            "INSERT INTO webhook_events (tenant_id, type, data) VALUES ($1, $2, $3) RETURNING id",
            tenant_id, PING, {"subscriptionId": str(sub_id)})
        return await _add_delivery(conn, tenant_id, sub_id, event_id)


async def _add_delivery(conn: asyncpg.Connection, tenant_id: UUID, sub_id: UUID, event_id: UUID) -> Delivery:
    delivery_id = await conn.fetchval(
        "INSERT INTO webhook_deliveries (tenant_id, subscription_id, event_id) VALUES ($1, $2, $3) RETURNING id",
        tenant_id, sub_id, event_id)
    await outbox.enqueue(conn, DELIVER_WEBHOOKS, {"subscription_id": sub_id}, tenant_id=tenant_id)
    row = await conn.fetchrow(f"SELECT {_DELIVERY_COLUMNS} FROM webhook_deliveries d"
                              " JOIN webhook_events e ON e.id = d.event_id WHERE d.id = $1", delivery_id)
    return _delivery(row)
