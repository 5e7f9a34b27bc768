"""Refund requests: a customer asks, staff review, a job executes.

    request_refund (customer) -> PENDING_REVIEW -> approve (staff) -> APPROVED -> execute_refund
    (job) -> COMPLETED | FAILED;  PENDING_REVIEW -> reject (staff) -> REJECTED

Rules:
- only a DELIVERED order, within `refund_period_days` of delivery
  (engine.domain.order_status.check_refundable), with units not yet refunded and money not yet
  refunded, and no other request open (PENDING_REVIEW or APPROVED) for it;
- a request covers all unrefunded units, or the units of the `itemIds` given. Its amount is the
  goods' share of what was paid (unit price x quantity scaled by (total - shipping) / subtotal,
  so discount and tax follow the goods); a request covering every unit left asks for all the
  money left, shipping included. Staff may approve a smaller amount, never a larger one.
- approval writes the EXECUTE_REFUND outbox row in its own transaction.

Execution invariants (`execute_refund`, safe to run any number of times, concurrently too):
- the money moves through engine.payments.refund_execution under the idempotency key
  `refund_request:<id>`: one refunds row, one provider refund, and the payments CHECK refuses
  anything beyond what was paid, also when refunds of one order run at the same time;
- completing the refund, marking the request COMPLETED, counting the refunded units
  (order_items.refunded_quantity, conditionally), restocking them (`restock_on_refund`), the
  order's move to REFUNDED once everything paid is refunded (change_status), and the
  REVERSE_COMMISSION outbox row of a partner's order all commit in ONE transaction, only while
  the request is still APPROVED: a second run finds it COMPLETED and does nothing.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, fields
from decimal import Decimal
from typing import Sequence
from uuid import UUID

import asyncpg

from engine import outbox, partner_ledger, stock
from engine.db import Database
from engine.domain.errors import (CannotRefund, Conflict, Forbidden, RefundAlreadyRequested, RefundNotFound,
                           ValidationError)
from engine.domain.money import money
from engine.domain.order_status import OrderStatus, check_refundable, transition
from engine.orders import actor_of, change_status, lock_order
from engine.payments import refund_execution as execution
from engine.payments.provider import PaymentProvider, RefundRejected
from engine.domain.principal import Principal

PENDING_REVIEW, APPROVED, REJECTED, COMPLETED, FAILED = "PENDING_REVIEW", "APPROVED", "REJECTED", "COMPLETED", "FAILED"
STATUSES = (PENDING_REVIEW, APPROVED, REJECTED, COMPLETED, FAILED)
OPEN = (PENDING_REVIEW, APPROVED)
EXECUTOR = "system:execute_refund"


# ----------------------------------------------------------------------------- pure rules

@dataclass(frozen=True, slots=True)
class ItemLeft:
    item_id: UUID
    unit_price: Decimal
    quantity_left: int     # quantity - refunded_quantity


@dataclass(frozen=True, slots=True)
class PlannedItem:
    item_id: UUID
    quantity: int
    amount: Decimal        # unit price x quantity, as the document shows it


def plan_refund(items: Sequence[ItemLeft], selected: Sequence[UUID] | None, *, subtotal: Decimal,
                shipping: Decimal, total: Decimal, refunded: Decimal) -> tuple[list[PlannedItem], Decimal]:
    """(items, requested amount) of a request (the rule is in the module docstring).
    CannotRefund when nothing (or none of the selected items) is left to refund;
    ValidationError for an item id that is not the order's."""
    left = {i.item_id: i for i in items}
    money_left = total - refunded
    if selected is None:
        chosen = [i for i in items if i.quantity_left > 0]
    else:
        unknown = [str(s) for s in selected if s not in left]
        if unknown:
            raise ValidationError(details={"itemIds": [f"not an item of this order: {', '.join(unknown)}"]})
        chosen = [left[s] for s in dict.fromkeys(selected)]
        if any(i.quantity_left <= 0 for i in chosen):
            raise CannotRefund("An item was already refunded.")
    if not chosen or money_left <= 0:
        raise CannotRefund("Nothing is left to refund on this order.")
    planned = [PlannedItem(i.item_id, i.quantity_left, money(i.unit_price * i.quantity_left)) for i in chosen]
    if sum(i.quantity_left for i in chosen) == sum(i.quantity_left for i in items if i.quantity_left > 0):
        return planned, money_left  # every unit left: all the money left, shipping included
    share = (total - shipping) / subtotal if subtotal > 0 else Decimal(0)
    requested = min(money(sum((p.amount for p in planned), Decimal(0)) * share), money_left)
    if requested <= 0:
        raise CannotRefund("Nothing is left to refund for these items.")
    return planned, requested


# ----------------------------------------------------------------------------- reading

@dataclass(frozen=True, slots=True)
class RefundRequest:
    id: UUID
    order_id: UUID
    order_number: str
    user_id: UUID
    status: str
    reason: str
    description: str | None
    requested_amount: Decimal
    approved_amount: Decimal | None
    refunded_amount: Decimal | None
    review_note: str | None
    failure: str | None
    created_at: dt.datetime
    reviewed_at: dt.datetime | None
    completed_at: dt.datetime | None


@dataclass(frozen=True, slots=True)
class RefundLine:
    item_id: UUID          # the order item
    product_name: str
    quantity: int
    amount: Decimal


@dataclass(frozen=True, slots=True)
class RefundView:
    request: RefundRequest
    items: list[RefundLine]


_REQUEST_FIELDS = tuple(f.name for f in fields(RefundRequest))


async def _view(conn: asyncpg.Connection, request_id: UUID) -> RefundView:
    req = await conn.fetchrow(
        "SELECT r.*, o.order_number FROM refund_requests r JOIN orders o ON o.id = r.order_id WHERE r.id = $1",
        request_id)
    items = await conn.fetch(
        "SELECT ri.order_item_id AS item_id, i.product_name, ri.quantity, ri.amount FROM refund_request_items ri"
        " JOIN order_items i ON i.id = ri.order_item_id WHERE ri.request_id = $1 ORDER BY i.id", request_id)
    return RefundView(RefundRequest(**{f: req[f] for f in _REQUEST_FIELDS}),
                      [RefundLine(i["item_id"], i["product_name"], i["quantity"], i["amount"]) for i in items])


async def list_requests(db: Database, tenant_id: UUID, *, status: str | None, page: int,
                        page_size: int) -> tuple[list[RefundView], int]:
    """Staff: the tenant's requests, newest first, optionally of one status."""
    async with db.connection() as conn:
        total = await conn.fetchval(
            "SELECT count(*) FROM refund_requests WHERE tenant_id = $1 AND ($2::text IS NULL OR status = $2)",
            tenant_id, status)
        ids = await conn.fetch(
            "SELECT id FROM refund_requests WHERE tenant_id = $1 AND ($2::text IS NULL OR status = $2)"
            " ORDER BY created_at DESC, id DESC LIMIT $3 OFFSET $4", tenant_id, status, page_size,
            (page - 1) * page_size)
        return [await _view(conn, r["id"]) for r in ids], total


# ----------------------------------------------------------------------------- customer

async def request_refund(db: Database, principal: Principal, order_id: UUID, *, reason: str,
                         item_ids: Sequence[UUID] | None, description: str | None, refund_period_days: int,
                         now: dt.datetime) -> RefundView:
    """The customer's request for their own order. Raises OrderNotFound, CannotRefund,
    RefundPeriodExpired, RefundAlreadyRequested, ValidationError (unknown item ids)."""
    if principal.user_id is None:  # an API key: a permission problem, not the order's state
        raise Forbidden("Refunds are requested by the buyer's account; staff and keys with `orders:write`"
                        " refund with PATCH /api/v1/orders/{id}/status (status refunded).")
    async with db.transaction() as conn:
        # The order row lock serialises requests for one order: two at once cannot both open.
        order = await lock_order(conn, order_id, tenant_id=principal.tenant_id, user_id=principal.user_id)
        check_refundable(OrderStatus(order["status"]), order["delivered_at"], now, refund_period_days)
        if await conn.fetchval("SELECT EXISTS (SELECT 1 FROM refund_requests WHERE order_id = $1"
                               " AND status = ANY($2::text[]))", order_id, list(OPEN)):
            raise RefundAlreadyRequested()
        rows = await conn.fetch("SELECT id, unit_price, quantity - refunded_quantity AS q_left FROM order_items"
                                " WHERE order_id = $1 ORDER BY id", order_id)
        planned, amount = plan_refund([ItemLeft(r["id"], r["unit_price"], r["q_left"]) for r in rows], item_ids,
                                      subtotal=order["subtotal"], shipping=order["shipping"], total=order["total"],
                                      refunded=order["refunded_amount"])
        request_id = await conn.fetchval(
            "INSERT INTO refund_requests (tenant_id, order_id, user_id, reason, description, requested_amount,"
            " created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $7) RETURNING id",
            principal.tenant_id, order_id, principal.user_id, reason, description, amount, now)
        await conn.executemany(
            "INSERT INTO refund_request_items (request_id, order_item_id, quantity, amount) VALUES ($1, $2, $3, $4)",
            [(request_id, p.item_id, p.quantity, p.amount) for p in planned])
        return await _view(conn, request_id)


# ----------------------------------------------------------------------------- staff

async def _lock_request(conn: asyncpg.Connection, tenant_id: UUID, request_id: UUID) -> asyncpg.Record:
    row = await conn.fetchrow("SELECT * FROM refund_requests WHERE id = $1 AND tenant_id = $2 FOR UPDATE",
                              request_id, tenant_id)
    if row is None:
        raise RefundNotFound()
    if row["status"] != PENDING_REVIEW:
        raise Conflict(f"The refund request is {row['status']}, not pending review.",
                       extra={"currentStatus": row["status"]})
    return row


async def approve(db: Database, principal: Principal, request_id: UUID, *, amount: Decimal | None,
                  note: str | None, now: dt.datetime) -> RefundView:
    """PENDING_REVIEW -> APPROVED for `amount` (default: the amount requested; never more), and
    the EXECUTE_REFUND job queued. A request already reviewed is CONFLICT (so of two staff
    approving at once, one wins and one refund is queued)."""
    async with db.transaction() as conn:
        req = await _lock_request(conn, principal.tenant_id, request_id)
        amount = req["requested_amount"] if amount is None else money(amount)
        if amount <= 0 or amount > req["requested_amount"]:
            raise ValidationError(details={"amount": [f"must be more than 0 and at most {req['requested_amount']}"]})
        await conn.execute(
            "UPDATE refund_requests SET status = 'APPROVED', approved_amount = $2, review_note = $3,"
            " reviewed_by = $4, reviewed_at = $5, updated_at = $5 WHERE id = $1",
            request_id, amount, note, actor_of(principal), now)
        await outbox.enqueue(conn, outbox.EXECUTE_REFUND, {"refund_id": request_id}, tenant_id=principal.tenant_id)
        return await _view(conn, request_id)


async def reject(db: Database, principal: Principal, request_id: UUID, *, reason: str,
                 now: dt.datetime) -> RefundView:
    """PENDING_REVIEW -> REJECTED with the reason; CONFLICT once reviewed."""
    async with db.transaction() as conn:
        await _lock_request(conn, principal.tenant_id, request_id)
        await conn.execute(
            "UPDATE refund_requests SET status = 'REJECTED', review_note = $2, reviewed_by = $3, reviewed_at = $4,"
            " updated_at = $4 WHERE id = $1", request_id, reason, actor_of(principal), now)
        return await _view(conn, request_id)


async def refund_order(db: Database, principal: Principal, order_id: UUID, *, note: str | None,
                       now: dt.datetime) -> UUID:
    """Staff move a DELIVERED order to REFUNDED (`PATCH /orders/{id}/status`): a request for
    everything left, approved for the whole amount by `principal` and queued for execution in
    one transaction, so the money, the units, the stock, the status and the commission go
    exactly the way of an approved customer request (`execute_refund`). Staff are not bound by
    the customer's refund period. Raises OrderNotFound, InvalidStatusTransition (not
    DELIVERED), RefundAlreadyRequested (a request is open), CannotRefund (nothing left)."""
    async with db.transaction() as conn:
        order = await lock_order(conn, order_id, tenant_id=principal.tenant_id)
        transition(OrderStatus(order["status"]), OrderStatus.REFUNDED)
        if await conn.fetchval("SELECT EXISTS (SELECT 1 FROM refund_requests WHERE order_id = $1"
                               " AND status = ANY($2::text[]))", order_id, list(OPEN)):
            raise RefundAlreadyRequested()
        rows = await conn.fetch("SELECT id, unit_price, quantity - refunded_quantity AS q_left FROM order_items"
                                " WHERE order_id = $1 ORDER BY id", order_id)
        planned, amount = plan_refund([ItemLeft(r["id"], r["unit_price"], r["q_left"]) for r in rows], None,
                                      subtotal=order["subtotal"], shipping=order["shipping"], total=order["total"],
                                      refunded=order["refunded_amount"])
        request_id = await conn.fetchval(
            "INSERT INTO refund_requests (tenant_id, order_id, user_id, status, reason, requested_amount,"
            " approved_amount, review_note, reviewed_by, reviewed_at, created_at, updated_at)"
            " VALUES ($1, $2, $3, 'APPROVED', $4, $5, $5, $6, $7, $8, $8, $8) RETURNING id",
            principal.tenant_id, order_id, order["user_id"], note or "Refunded by staff", amount, note,
            actor_of(principal), now)
        await conn.executemany(
            "INSERT INTO refund_request_items (request_id, order_item_id, quantity, amount) VALUES ($1, $2, $3, $4)",
            [(request_id, p.item_id, p.quantity, p.amount) for p in planned])
        await outbox.enqueue(conn, outbox.EXECUTE_REFUND, {"refund_id": request_id}, tenant_id=principal.tenant_id)
    return request_id


# ----------------------------------------------------------------------------- execution (the job)

def idempotency_key(request_id: UUID) -> str:
    return f"refund_request:{request_id}"


async def execute_refund(db: Database, provider: PaymentProvider, request_id: UUID, *, restock: bool,
                         now: dt.datetime) -> str:
    """Execute an APPROVED request (see the module docstring). Returns the request's status
    afterwards (COMPLETED, FAILED), or what it already was. RefundNotFound if absent."""
    async with db.transaction() as conn:
        req = await conn.fetchrow("SELECT * FROM refund_requests WHERE id = $1 FOR UPDATE", request_id)
        if req is None:
            raise RefundNotFound()
        if req["status"] != APPROVED:
            return req["status"]
        order = await lock_order(conn, req["order_id"])
        if order["payment_method"] == "BALANCE":
            return await _refund_to_balance(conn, req, order, restock=restock, now=now)
        try:
            attempt = await execution.begin_refund(
                conn, order_id=req["order_id"], amount=req["approved_amount"], reason="REQUEST",
                idempotency_key=idempotency_key(request_id), request_id=request_id)
        except CannotRefund as exc:
            await _fail(conn, request_id, exc.message, now)
            return FAILED
    if attempt.status == execution.FAILED:
        async with db.transaction() as conn:
            await _fail(conn, request_id, "The payment provider refused the refund.", now)
        return FAILED
    provider_ref = None
    if attempt.status == execution.PENDING:
        try:
            if attempt.payment_ref is None:
                raise RefundRejected("The payment has no provider reference; refund it by hand.")
            # Outside any transaction: a network call for a real provider. Same key -> one refund.
            provider_ref = await provider.refund(attempt.payment_ref, attempt.amount, attempt.idempotency_key)
        except RefundRejected as exc:
            async with db.transaction() as conn:
                await execution.fail_refund(conn, attempt.refund_id)
                await _fail(conn, request_id, str(exc) or "The payment provider refused the refund.", now)
            return FAILED
    async with db.transaction() as conn:
        req = await conn.fetchrow("SELECT * FROM refund_requests WHERE id = $1 FOR UPDATE", request_id)
        if req["status"] != APPROVED:
            return req["status"]  # a run alongside finished first
        if provider_ref is not None:
            await execution.complete_refund(conn, attempt.refund_id, provider_ref, now=now)
        await _finish(conn, req, restock=restock, now=now)
    return COMPLETED


async def _fail(conn: asyncpg.Connection, request_id: UUID, why: str, now: dt.datetime) -> None:
    await conn.execute("UPDATE refund_requests SET status = 'FAILED', failure = $2, updated_at = $3"
                       " WHERE id = $1 AND status = 'APPROVED'", request_id, why, now)


async def _refund_to_balance(conn: asyncpg.Connection, req: asyncpg.Record, order: asyncpg.Record, *,
                             restock: bool, now: dt.datetime) -> str:
    """An order paid from the partner balance is refunded to it, in this one transaction."""
    amount = req["approved_amount"]
    grown = await conn.fetchval(
        "UPDATE orders SET refunded_amount = refunded_amount + $2, updated_at = now()"
        " WHERE id = $1 AND refunded_amount + $2 <= total RETURNING true", order["id"], amount)
    if not grown:
        await _fail(conn, req["id"], "The refund would exceed the amount paid.", now)
        return FAILED
    await partner_ledger.credit(conn, order["tenant_id"], order["user_id"], partner_ledger.REFUND, amount,
                                f"Refund {req['id']} of order {order['order_number']}")
    await _finish(conn, req, restock=restock, now=now)
    return COMPLETED


async def _finish(conn: asyncpg.Connection, req: asyncpg.Record, *, restock: bool, now: dt.datetime) -> None:
    """The effects of a refund whose money moved: request, units, stock, status, commission."""
    request_id, order_id = req["id"], req["order_id"]
    await conn.execute(
        "UPDATE refund_requests SET status = 'COMPLETED', refunded_amount = approved_amount, completed_at = $2,"
        " updated_at = $2 WHERE id = $1", request_id, now)
    counted = await conn.fetch(
        "UPDATE order_items i SET refunded_quantity = i.refunded_quantity + r.quantity FROM refund_request_items r"
        " WHERE r.request_id = $1 AND i.id = r.order_item_id AND i.refunded_quantity + r.quantity <= i.quantity"
        " RETURNING i.id, r.quantity", request_id)
    if restock and counted:
        await stock.return_sold(conn, order_id, {r["id"]: r["quantity"] for r in counted})
    order = await lock_order(conn, order_id)
    if order["refunded_amount"] >= order["total"] and order["status"] == OrderStatus.DELIVERED.value:
        await change_status(conn, order_id, OrderStatus.REFUNDED, actor=EXECUTOR,
                            note=f"Refunded {order['refunded_amount']} {order['currency']}")
    if order["buyer_role"] == "partner":
        await outbox.enqueue(conn, outbox.REVERSE_COMMISSION, {"order_id": order_id}, tenant_id=order["tenant_id"])
