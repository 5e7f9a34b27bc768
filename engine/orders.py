"""Orders after checkout: the one way an order's status changes, cancelling, and reading.

`change_status` is THE status change, whoever asks (staff, the cancel endpoint, the payment
webhook, the expiry job, delivery tracking, refunds):
- it locks the order row (SELECT ... FOR UPDATE) and checks the move with
  engine.domain.status_step.step (the state machine's transition plus the move's effects), so
  when two paths race (payment vs expiry) the second one sees the first one's status and gets
  INVALID_STATUS_TRANSITION: exactly one wins;
- it does the stock side of the move in the same transaction: PAID sells the reserved units,
  CANCELLED releases them (unpaid) or returns the sold ones (paid);
- it appends the history row (who, when, note) and writes the outbox rows of the move:
  ORDER_PAID on payment, REFUND_CANCELLED_ORDER when a paid order is cancelled,
  ACCRUE_COMMISSION when a partner's order is delivered;
- `apply_step` does all of that for many orders in one statement: the expiry sweep uses it.
Callers run it inside their own transaction (`Database.transaction()`).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Iterable, Sequence
from uuid import UUID

import asyncpg

from engine import outbox, stock
from engine.db import Database
from engine.order_records import Order, OrderLine, OrderSummary, StatusEntry
from engine.domain.status_step import Event, Step, StockMove, check_expected, step
from engine.domain.errors import Forbidden, OrderNotFound
from engine.domain.order_status import OrderStatus, check_cancellable
from engine.domain.principal import Principal

S = OrderStatus


def actor_of(principal: Principal) -> str:
    """How a principal appears in the status history: 'user:<id>' or 'apikey:<id>'."""
    return principal.scope


async def lock_order(conn: asyncpg.Connection, order_id: UUID, *, tenant_id: UUID | None = None,
                     user_id: UUID | None = None) -> asyncpg.Record:
    """The order row, locked until commit; OrderNotFound unless it is the tenant's (and, when
    `user_id` is given, that user's)."""
    row = await conn.fetchrow(
        "SELECT o.*, u.role AS buyer_role FROM orders o JOIN users u ON u.id = o.user_id"
        " WHERE o.id = $1 AND ($2::uuid IS NULL OR o.tenant_id = $2) AND ($3::uuid IS NULL OR o.user_id = $3)"
        " FOR UPDATE OF o", order_id, tenant_id, user_id)
    if row is None:
        raise OrderNotFound()
    return row


async def change_status(conn: asyncpg.Connection, order_id: UUID, target: OrderStatus | str, *,
                        actor: str, note: str | None = None, tenant_id: UUID | None = None,
                        transaction_id: str | None = None,
                        expect: OrderStatus | str | Iterable[OrderStatus | str] | None = None) -> asyncpg.Record:
    """Move the order to `target` (see the module doc); returns the updated order row.

    `actor` is who asks: 'user:<id>', 'apikey:<id>' or 'system:<job>'. `note` goes into the
    history (and is the cancel reason for CANCELLED). `transaction_id` is recorded with PAID.
    `expect`: the status(es) the caller's decision was based on; any other current status is
    INVALID_STATUS_TRANSITION even where the move itself would be allowed. The expiry job
    passes expect=PENDING_PAYMENT, so an order paid a moment earlier is never cancelled by it
    (PAID -> CANCELLED is a legal move for staff, not for a timer).
    Raises OrderNotFound, InvalidStatusTransition. Must run inside a transaction."""
    if not conn.is_in_transaction():
        raise RuntimeError("change_status must run inside a transaction")
    order = await lock_order(conn, order_id, tenant_id=tenant_id)
    check_expected(order["status"], expect)
    move = step(order["status"], target)
    (updated,) = await apply_step(conn, move, [order], actor=actor, note=note, transaction_id=transaction_id)
    return updated


async def apply_step(conn: asyncpg.Connection, move: Step, orders: Sequence[asyncpg.Record], *, actor: str,
                     note: str | None, transaction_id: str | None = None) -> list[asyncpg.Record]:
    """Make `move` for these orders, all locked by the caller and all in `move.source`: the
    stock side, the outbox rows, then one statement that updates them and appends their
    history rows. Returns the updated order rows. The single change and the expiry sweep both
    end here, so a status change has one set of effects whoever asks."""
    ids = [o["id"] for o in orders]
    if move.stock is StockMove.SELL:
        for order_id in ids:
            await stock.commit_sale(conn, order_id)
    elif move.stock is StockMove.RELEASE:
        await stock.release_orders(conn, ids)
    elif move.stock is StockMove.RETURN:
        for order_id in ids:
            await stock.return_sold(conn, order_id)
    for event in move.events:
        for order in orders:
            if event is Event.ACCRUE_COMMISSION and order["buyer_role"] != "partner":
                continue
            await outbox.enqueue(conn, _OUTBOX_KIND[event], {"order_id": order["id"]}, tenant_id=order["tenant_id"])

    sets = ["status = $2", "updated_at = now()"]
    args: list[Any] = [ids, move.target.value, actor, note]
    if move.payment_status is not None:
        sets.append(f"payment_status = '{move.payment_status}'")
    if move.stamp == "cancelled_at":
        sets.append("cancelled_at = now()")
    elif move.stamp is not None:
        sets.append(f"{move.stamp} = coalesce({move.stamp}, now())")
    if move.records_reason:
        sets.append("cancel_reason = $4")
    if move.clears_deadline:
        sets.append("expires_at = NULL")
    if transaction_id is not None and move.target is S.PAID:
        args.append(transaction_id)
        sets.append(f"transaction_id = ${len(args)}")
    return await conn.fetch(
        f"WITH moved AS (UPDATE orders SET {', '.join(sets)} WHERE id = ANY($1::uuid[]) RETURNING *),"
        " history AS (INSERT INTO order_status_history (tenant_id, order_id, status, note, changed_by)"
        "             SELECT tenant_id, id, $2, $4::text, $3 FROM moved)"
        " SELECT * FROM moved", *args)


_OUTBOX_KIND = {Event.ORDER_PAID: outbox.ORDER_PAID, Event.REFUND_CANCELLED_ORDER: outbox.REFUND_CANCELLED_ORDER,
                Event.ACCRUE_COMMISSION: outbox.ACCRUE_COMMISSION}


# ----------------------------------------------------------------------------- cancel

@dataclass(frozen=True, slots=True)
class Cancelled:
    order_id: UUID
    order_number: str
    refund_pending: bool        # the order was paid: a refund job was queued
    refund_amount: Any          # Decimal when refund_pending, else None


async def cancel_order(db: Database, principal: Principal, order_id: UUID, reason: str) -> Cancelled:
    """Cancel an order that has not shipped: the customer's own, or any of the tenant's with
    `orders:write`. Unpaid: the reservation is released; paid: sold units return to stock and
    a refund of the amount paid is queued. CANNOT_CANCEL once shipped or final."""
    if principal.can("orders:write"):
        owner = None
    elif principal.user_id is not None:
        owner = principal.user_id
    else:
        raise Forbidden("Cancelling orders with an API key requires `orders:write`.")
    async with db.transaction() as conn:
        order = await lock_order(conn, order_id, tenant_id=principal.tenant_id, user_id=owner)
        check_cancellable(OrderStatus(order["status"]))
        paid = order["status"] in (S.PAID.value, S.PROCESSING.value)
        await change_status(conn, order_id, S.CANCELLED, actor=actor_of(principal), note=reason,
                            tenant_id=principal.tenant_id)
    return Cancelled(order_id=order_id, order_number=order["order_number"], refund_pending=paid,
                     refund_amount=(order["total"] - order["refunded_amount"]) if paid else None)


async def set_status(db: Database, principal: Principal, order_id: UUID, target: OrderStatus,
                     note: str | None) -> None:
    """Staff / orders:write: move an order through the state machine (read it back with get_order)."""
    async with db.transaction() as conn:
        await change_status(conn, order_id, target, actor=actor_of(principal), note=note,
                            tenant_id=principal.tenant_id)


# ----------------------------------------------------------------------------- reading

@dataclass(frozen=True, slots=True)
class OrderFilter:
    status: OrderStatus | None = None
    created_from: dt.datetime | None = None   # inclusive
    created_to: dt.datetime | None = None     # exclusive


def reader_scope(principal: Principal) -> UUID | None:
    """None: the principal reads every order of the tenant (orders:read); else only the
    orders of this user id. Forbidden for an API key without orders:read."""
    if principal.can("orders:read") or principal.can("orders:write"):
        return None
    if principal.user_id is None:  # an API key without the scope: a permission problem, whatever the id
        raise Forbidden("Reading orders with an API key requires `orders:read`.")
    return principal.user_id


async def list_orders(db: Database, principal: Principal, flt: OrderFilter, *, page: int,
                      page_size: int) -> tuple[list[OrderSummary], int]:
    """A page of orders, newest first, and the total matching."""
    user_id = reader_scope(principal)
    where = ("o.tenant_id = $1 AND ($2::uuid IS NULL OR o.user_id = $2) AND ($3::text IS NULL OR o.status = $3)"
             " AND ($4::timestamptz IS NULL OR o.created_at >= $4) AND ($5::timestamptz IS NULL OR o.created_at < $5)")
    args = (principal.tenant_id, user_id, flt.status.value if flt.status else None, flt.created_from, flt.created_to)
    async with db.connection() as conn:
        total = await conn.fetchval(f"SELECT count(*) FROM orders o WHERE {where}", *args)
        rows = await conn.fetch(
            f"SELECT o.id, o.order_number, o.status, o.payment_status, o.total, o.currency, o.created_at,"
            f" o.updated_at, (SELECT coalesce(sum(i.quantity), 0) FROM order_items i WHERE i.order_id = o.id)::int"
            f" AS item_count FROM orders o WHERE {where}"
            f" ORDER BY o.created_at DESC, o.id DESC LIMIT $6 OFFSET $7", *args, page_size, (page - 1) * page_size)
    return [OrderSummary.from_row(r) for r in rows], total


@dataclass(frozen=True, slots=True)
class OrderDetail:
    order: Order
    items: list[OrderLine]
    history: list[StatusEntry]


async def get_order(db: Database, principal: Principal, order_id: UUID) -> OrderDetail:
    """One order with its items and history; OrderNotFound for another user's or tenant's."""
    user_id = reader_scope(principal)
    async with db.connection() as conn:
        order = await conn.fetchrow(
            "SELECT * FROM orders WHERE id = $1 AND tenant_id = $2 AND ($3::uuid IS NULL OR user_id = $3)",
            order_id, principal.tenant_id, user_id)
        if order is None:
            raise OrderNotFound()
        items = await conn.fetch("SELECT * FROM order_items WHERE order_id = $1"
                                 " ORDER BY product_name, sku, id", order_id)
        history = await conn.fetch(
            "SELECT status, note, changed_by, changed_at FROM order_status_history WHERE order_id = $1 ORDER BY id",
            order_id)
    return OrderDetail(Order.from_row(order), [OrderLine.from_row(i) for i in items],
                       [StatusEntry(h["status"], h["note"], h["changed_by"], h["changed_at"]) for h in history])
