"""Shipping an order and following its parcel until the carrier delivers it.

Invariants:
- an order ships only through engine.orders.change_status (PAID passes through PROCESSING
  first, so the history shows both), in the transaction that records carrier, tracking number
  and the first tracking event;
- a sync stores what the carrier reports under a unique (order, status, time) key, so running
  it twice, or from two workers at once, stores each event once; the carrier is asked outside
  any transaction (it is a network call for a real carrier);
- an order becomes DELIVERED only from SHIPPED (change_status with expect=SHIPPED), with
  delivered_at the time the carrier delivered it, and change_status queues the partner's
  commission (ACCRUE_COMMISSION) in that same transaction.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Callable, Iterable
from uuid import UUID

import asyncpg

from engine.carrier import Carrier, CarrierEvent, Parcel
from engine.carrier.port import DELIVERED, SHIPPED
from engine.db import Database
from engine.domain.errors import InvalidStatusTransition, NotShipped, OrderNotFound, ValidationError
from engine.domain.order_status import OrderStatus
from engine.orders import actor_of, change_status, lock_order, reader_scope
from engine.domain.principal import Principal

S = OrderStatus
SYNC_ACTOR = "system:sync_tracking"
MAX_TRACKING_NUMBER = 64


async def record_events(conn: asyncpg.Connection, tenant_id: UUID, order_id: UUID,
                        events: Iterable[CarrierEvent]) -> None:
    """Store carrier events; ones already stored are left alone."""
    await conn.executemany(
        "INSERT INTO tracking_events (tenant_id, order_id, status, location, description, occurred_at)"
        " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (order_id, status, occurred_at) DO NOTHING",
        [(tenant_id, order_id, e.status, e.location, e.description, e.occurred_at) for e in events])


async def ship_order(db: Database, principal: Principal, order_id: UUID, carrier: Carrier, *,
                     carrier_name: str | None, tracking_number: str | None, now: dt.datetime,
                     estimated_delivery: dt.date | None = None) -> asyncpg.Record:
    """Staff hand the parcel over: PROCESSING (or PAID) -> SHIPPED with carrier, tracking number
    (the carrier makes one up when none is given) and the first tracking event at `now`; an
    `estimated_delivery` given replaces the one the checkout promised.
    Raises OrderNotFound, InvalidStatusTransition (not yet paid, already shipped, final)."""
    if tracking_number is not None:
        tracking_number = tracking_number.strip()
        if not tracking_number or len(tracking_number) > MAX_TRACKING_NUMBER or not tracking_number.isprintable():
            raise ValidationError(details={"trackingNumber": [f"must be 1-{MAX_TRACKING_NUMBER} printable characters"]})
    actor = actor_of(principal)
    async with db.transaction() as conn:
        order = await lock_order(conn, order_id, tenant_id=principal.tenant_id)
        if order["status"] == S.PAID.value:
            await change_status(conn, order_id, S.PROCESSING, actor=actor, note="Prepared for shipping",
                                tenant_id=principal.tenant_id)
        number = tracking_number or carrier.new_tracking_number(order_id)
        name = (carrier_name or "").strip() or (order["shipping_method"] or {}).get("carrier") or carrier.name
        await change_status(conn, order_id, S.SHIPPED, actor=actor, note=f"Tracking: {number}",
                            tenant_id=principal.tenant_id)
        updated = await conn.fetchrow(
            "UPDATE orders SET carrier = $2, tracking_number = $3, tracking_url = $4, shipped_at = $5,"
            " estimated_delivery = coalesce($6, estimated_delivery), updated_at = now() WHERE id = $1 RETURNING *",
            order_id, name, number, carrier.tracking_url(number), now, estimated_delivery)
        await record_events(conn, order["tenant_id"], order_id,
                            [CarrierEvent(SHIPPED, "Warehouse", "Package shipped", now)])
    return updated


async def sync_order(db: Database, carrier: Carrier, order_id: UUID, *, now: dt.datetime) -> bool:
    """Pull the parcel's events from the carrier and store them; DELIVERED reported -> the
    order becomes DELIVERED. Returns True if this call delivered it. A no-op unless SHIPPED."""
    async with db.connection() as conn:
        order = await conn.fetchrow(
            "SELECT status, tracking_number, shipped_at, shipping_address FROM orders WHERE id = $1", order_id)
    if order is None:
        raise OrderNotFound()
    if order["status"] != S.SHIPPED.value or order["tracking_number"] is None or order["shipped_at"] is None:
        return False
    city = (order["shipping_address"] or {}).get("city") or None
    events = await carrier.track(Parcel(order["tracking_number"], order["shipped_at"], city), now)
    delivered = next((e for e in events if e.status == DELIVERED), None)
    async with db.transaction() as conn:
        locked = await lock_order(conn, order_id)
        if locked["status"] != S.SHIPPED.value:
            return False  # delivered by a sync that ran alongside, or moved by staff meanwhile
        await record_events(conn, locked["tenant_id"], order_id, events)
        if delivered is None:
            return False
        await change_status(conn, order_id, S.DELIVERED, actor=SYNC_ACTOR, note=delivered.description,
                            expect=S.SHIPPED)
        await conn.execute("UPDATE orders SET delivered_at = $2 WHERE id = $1", order_id, delivered.occurred_at)
    return True


@dataclass
class SyncReport:
    synced: int = 0
    delivered: int = 0
    failed: list[UUID] = field(default_factory=list)


async def sync_shipped(db: Database, carrier_of: Callable[[str | None], Carrier], *, now: dt.datetime,
                       batch_size: int = 500) -> SyncReport:
    """Sync every SHIPPED order of every tenant (the periodic tick). One order's failure does not
    stop the others; its id is reported and the next tick tries it again."""
    report = SyncReport()
    after: tuple[dt.datetime, UUID] | None = None
    while True:
        async with db.connection() as conn:
            rows = await conn.fetch(
                "SELECT id, shipped_at, carrier FROM orders WHERE status = 'SHIPPED' AND shipped_at IS NOT NULL"
                " AND ($1::timestamptz IS NULL OR (shipped_at, id) > ($1, $2::uuid))"
                " ORDER BY shipped_at, id LIMIT $3",
                after[0] if after else None, after[1] if after else None, batch_size)
        for row in rows:
            try:
                if await sync_order(db, carrier_of(row["carrier"]), row["id"], now=now):
                    report.delivered += 1
                report.synced += 1
            except (InvalidStatusTransition, OrderNotFound):
                report.synced += 1  # moved on meanwhile: nothing left to sync
            except Exception:  # one parcel's trouble (carrier down) must not starve the rest
                report.failed.append(row["id"])
        if len(rows) < batch_size:
            return report
        after = (rows[-1]["shipped_at"], rows[-1]["id"])


@dataclass(frozen=True, slots=True)
class ShippedOrder:
    """A shipped order as its tracking page shows it."""

    order_id: UUID
    order_number: str
    status: str
    carrier: str | None
    tracking_number: str | None
    tracking_url: str | None
    estimated_delivery: dt.date | None
    shipped_at: dt.datetime
    delivered_at: dt.datetime | None


@dataclass(frozen=True, slots=True)
class TrackingEvent:
    status: str
    location: str | None
    description: str | None
    occurred_at: dt.datetime


@dataclass(frozen=True, slots=True)
class Tracking:
    order: ShippedOrder
    events: list[TrackingEvent]    # newest first


async def get_tracking(db: Database, principal: Principal, order_id: UUID) -> Tracking:
    """The order's parcel and its events. OrderNotFound for another user's or tenant's order,
    NotShipped before it ships."""
    user_id = reader_scope(principal)
    async with db.connection() as conn:
        order = await conn.fetchrow(
            "SELECT id, order_number, status, carrier, tracking_number, tracking_url, estimated_delivery,"
            " shipped_at, delivered_at FROM orders WHERE id = $1 AND tenant_id = $2"
            " AND ($3::uuid IS NULL OR user_id = $3)", order_id, principal.tenant_id, user_id)
        if order is None:
            raise OrderNotFound()
        if order["shipped_at"] is None:
            raise NotShipped(extra={"currentStatus": order["status"]})
        events = await conn.fetch(
            "SELECT status, location, description, occurred_at FROM tracking_events WHERE order_id = $1"
            " ORDER BY occurred_at DESC, id DESC", order_id)
    shipped = ShippedOrder(order["id"], order["order_number"], order["status"], order["carrier"],
                           order["tracking_number"], order["tracking_url"], order["estimated_delivery"],
                           order["shipped_at"], order["delivered_at"])
    return Tracking(shipped, [TrackingEvent(e["status"], e["location"], e["description"], e["occurred_at"])
                              for e in events])
