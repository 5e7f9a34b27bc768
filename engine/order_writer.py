"""Writing orders: the order statement's input as a typed record, and group commit.

`OrderRecord` names every field the order statement (`place_orders`, migration 0013) reads;
it travels as JSON, so the statement has one parameter instead of 42 positional ones.

Group commit (`OrderWriter`, batched mode): checkouts hand their records to the writer actors
of the first stock row they reserved (ORDER_WRITERS of them, in turn), so the checkouts whose
reservations came back in one product-actor batch arrive together and are written by a few
calls - one round trip and one commit per group. Each order keeps its own checks: one whose cart changed, whose coupon ran out or
whose holds were reclaimed writes nothing and hears why; the others are written. If the
group's call fails as a whole (a deadlock between two groups sharing coupons in opposite
orders, say), each order is retried alone, so one order's trouble never fails the others.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Hashable, Sequence
from uuid import UUID

import asyncpg
import msgspec

from engine.actors import Actor
from engine.db import Database

_PLACE = ("SELECT n, holds_ok, cart_ok, coupons_ok, slot_ok, order_number, stored, key_ok"
          " FROM place_orders($1::text::jsonb)")
_encode = msgspec.json.Encoder(decimal_format="string").encode


@dataclass(frozen=True, slots=True)
class ItemRecord:
    product_id: UUID
    variant_id: UUID | None
    stock_id: UUID | None
    product_name: str
    sku: str
    thumbnail_url: str | None
    variant_attributes: dict[str, str] | None
    quantity: int
    unit_price: Decimal
    commission_percentage: Decimal
    career_points_percentage: Decimal


@dataclass(frozen=True, slots=True)
class OrderRecord:
    """One order as the order statement writes it (see place_orders for what each check means)."""

    order_id: UUID
    tenant_id: UUID
    user_id: UUID
    year: str
    holds: Sequence[UUID]
    coupon_ids: Sequence[UUID]          # sorted: locked in id order
    cart_id: UUID | None                # None for POST /orders (no cart)
    cart_version: int | None
    payment_method: str
    currency: str
    subtotal: Decimal
    discount: Decimal
    shipping: Decimal
    tax: Decimal
    total: Decimal
    shipping_address: dict[str, Any]
    billing_address: dict[str, Any] | None
    shipping_method_id: UUID
    shipping_method: dict[str, Any]
    applied_coupons: list[dict[str, Any]]
    notes: str | None
    expires_at: dt.datetime | None
    estimated_delivery: dt.date
    created_at: dt.datetime
    changed_by: str
    expiry_job: str
    items: Sequence[ItemRecord]
    # With an Idempotency-Key: the answer to store under it, a record (engine.checkout.PlacedOrder)
    # whose `order_number` the statement fills in; web renders it (migration 0019).
    response_status: int | None = None
    response_kind: str | None = None
    response_record: Any = None
    response_scope: str | None = None
    response_key: str | None = None
    unpaid_limit: int | None = None     # the buyer's own orders: at most this many unpaid (None: no limit)
    # The key is claimed by the statement itself (engine.idempotency): the request's digest (hex),
    # how long the key lives, and after how long a row without an answer counts as abandoned.
    request_hash: str | None = None
    key_ttl: float | None = None
    key_lease: float | None = None


@dataclass(frozen=True, slots=True)
class Written:
    """What the statement says about one order: which check failed, or its number."""

    holds_ok: bool
    cart_ok: bool
    coupons_ok: bool
    slot_ok: bool
    order_number: str | None
    stored: bool
    key_ok: bool = True      # False: another request holds the order's Idempotency-Key (nothing written)


async def write_orders(conn: asyncpg.Connection, records: Sequence[OrderRecord]) -> list[Written]:
    """Write these orders in one call (one statement; one transaction unless `conn` is in one)."""
    rows = await conn.fetch(_PLACE, _encode(list(records)).decode())
    out: list[Written | None] = [None] * len(records)
    for r in rows:
        out[r["n"]] = Written(r["holds_ok"], r["cart_ok"], r["coupons_ok"], r["slot_ok"], r["order_number"], r["stored"],
                             r["key_ok"])
    assert all(w is not None for w in out), "place_orders skipped an order"
    return out  # type: ignore[return-value]


class OrderWriter(Actor):
    """Writes whatever orders are waiting, as one group (see the module docstring)."""

    __slots__ = ("_db",)

    def __init__(self, db: Database) -> None:
        self._db = db

    async def handle_batch(self, messages: list[OrderRecord]) -> list[object]:
        try:
            async with self._db.connection() as conn:
                return list(await write_orders(conn, messages))
        except (asyncpg.PostgresError, asyncpg.InterfaceError):
            if len(messages) == 1:
                raise
        answers: list[object] = []
        for record in messages:  # the group failed as a whole: each alone, so only its own trouble fails it
            try:
                async with self._db.connection() as conn:
                    answers.extend(await write_orders(conn, [record]))
            except (asyncpg.PostgresError, asyncpg.InterfaceError) as error:
                answers.append(error)  # that caller hears 503; the written ones their numbers
        return answers


def writer_key(record: OrderRecord, lane: int) -> Hashable:
    """The first stock row the order reserved (what batched its reservation), else one shared
    key, and one of the row's `lane`s: one writer per row would write that row's orders one
    group at a time, on one database backend, while the next group waits (measured: half the
    checkouts/s of writing each order alone); a few lanes keep groups large and the backends busy."""
    tracked = sorted(i.stock_id for i in record.items if i.stock_id is not None)
    return (tracked[0] if tracked else None, lane)
