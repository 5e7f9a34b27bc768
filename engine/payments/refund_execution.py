"""Executing a refund through the provider, exactly once, across crashes and redeliveries.

The three steps, each safe to repeat:
1. `begin_refund` (one transaction) records a PENDING refund under its idempotency key; the
   database trigger adds it to payments.refunded_amount, whose CHECK refuses anything beyond
   what was paid, also under concurrent refunds (they serialise on the payment row).
2. the provider is called with the same idempotency key, outside any transaction (no network
   call inside a transaction); a repeat call returns the first refund and moves no money.
3. `complete_refund` (one transaction) marks it SUCCEEDED and adds it to orders.refunded_amount,
   only if it was still PENDING, so a redelivered job changes nothing.
A worker killed between 2 and 3 is redelivered, finds the PENDING row, calls the provider again
with the same key (no second refund) and completes.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from uuid import UUID

import asyncpg

from engine import partner_ledger
from engine.db import Database
from engine.domain.errors import CannotRefund
from engine.payments.provider import PaymentProvider, RefundRejected
from engine.payments.settlement import lock_order

PENDING, SUCCEEDED, FAILED = "PENDING", "SUCCEEDED", "FAILED"


@dataclass(frozen=True, slots=True)
class RefundAttempt:
    refund_id: UUID
    order_id: UUID
    amount: Decimal
    status: str
    idempotency_key: str
    payment_ref: str | None


async def begin_refund(conn: asyncpg.Connection, *, order_id: UUID, amount: Decimal, reason: str,
                       idempotency_key: str, request_id: UUID | None = None) -> RefundAttempt:
    """Record (or find) the refund under `idempotency_key`. CannotRefund if nothing was paid or
    the amount would exceed what is left of the payment."""
    existing = await _by_key(conn, idempotency_key)
    if existing is not None:
        return existing
    payment = await conn.fetchrow(
        "SELECT id, tenant_id, status FROM payments WHERE order_id = $1", order_id)
    if payment is None or payment["status"] != "PAID":
        raise CannotRefund("The order has no captured payment to refund.")
    try:
        async with conn.transaction():  # a savepoint: the guard's refusal leaves the caller's work intact
            await conn.execute(
                "INSERT INTO refunds (tenant_id, order_id, payment_id, request_id, amount, reason, idempotency_key)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (idempotency_key) DO NOTHING",
                payment["tenant_id"], order_id, payment["id"], request_id, amount, reason, idempotency_key)
    except asyncpg.CheckViolationError:
        raise CannotRefund("The refund would exceed the amount paid.") from None
    found = await _by_key(conn, idempotency_key)
    assert found is not None
    return found


async def _by_key(conn: asyncpg.Connection, key: str) -> RefundAttempt | None:
    row = await conn.fetchrow(
        "SELECT r.id, r.order_id, r.amount, r.status, r.idempotency_key, p.payment_ref"
        " FROM refunds r JOIN payments p ON p.id = r.payment_id WHERE r.idempotency_key = $1", key)
    return None if row is None else RefundAttempt(row["id"], row["order_id"], row["amount"], row["status"],
                                                  row["idempotency_key"], row["payment_ref"])


async def complete_refund(conn: asyncpg.Connection, refund_id: UUID, provider_ref: str, *, now: dt.datetime) -> bool:
    """PENDING -> SUCCEEDED and the order's refunded total grows; False if it was already done."""
    row = await conn.fetchrow(
        "UPDATE refunds SET status = 'SUCCEEDED', provider_ref = $2, completed_at = $3"
        " WHERE id = $1 AND status = 'PENDING' RETURNING order_id, amount", refund_id, provider_ref, now)
    if row is None:
        return False
    await conn.execute(
        "UPDATE orders o SET refunded_amount = o.refunded_amount + $2, updated_at = now(),"
        " payment_status = CASE WHEN o.refunded_amount + $2 >= p.amount THEN 'REFUNDED' ELSE o.payment_status END"
        " FROM payments p WHERE o.id = $1 AND p.order_id = o.id", row["order_id"], row["amount"])
    return True


async def fail_refund(conn: asyncpg.Connection, refund_id: UUID) -> bool:
    """The provider refused for good: the amount goes back to the refundable remainder."""
    return await conn.fetchval(
        "UPDATE refunds SET status = 'FAILED' WHERE id = $1 AND status = 'PENDING' RETURNING true", refund_id) or False


async def execute(db: Database, provider: PaymentProvider, attempt: RefundAttempt, *, now: dt.datetime) -> str:
    """Steps 2 and 3 for a recorded attempt; returns its final status."""
    if attempt.status != PENDING:
        return attempt.status
    if attempt.payment_ref is None:
        raise CannotRefund("The payment has no provider reference; refund it by hand.")
    try:
        provider_ref = await provider.refund(attempt.payment_ref, attempt.amount, attempt.idempotency_key)
    except RefundRejected:
        async with db.transaction() as conn:
            await fail_refund(conn, attempt.refund_id)
        return FAILED
    async with db.transaction() as conn:
        await complete_refund(conn, attempt.refund_id, provider_ref, now=now)
    return SUCCEEDED


def cancelled_order_key(order_id: UUID) -> str:
    return f"order:{order_id}:cancelled"


async def refund_cancelled_order(db: Database, provider: PaymentProvider, order_id: UUID, *,
                                 now: dt.datetime) -> str:
    """Refund everything still refundable of a CANCELLED order's payment. Idempotent: the key is
    the order's, so however often this runs there is one refund. Returns the outcome."""
    key = cancelled_order_key(order_id)
    async with db.transaction() as conn:
        order = await lock_order(conn, order_id)
        attempt = await _by_key(conn, key)
        if attempt is None:
            if order["status"] != "CANCELLED":
                return "NOT_CANCELLED"
            if order["payment_method"] == "BALANCE":
                return await _refund_to_balance(conn, order_id)
            left = await conn.fetchval(
                "SELECT amount - refunded_amount FROM payments WHERE order_id = $1 AND status = 'PAID'", order_id)
            if not left or left <= 0:
                return "NOTHING_TO_REFUND"
            attempt = await begin_refund(conn, order_id=order_id, amount=left, reason="CANCELLED_ORDER",
                                         idempotency_key=key)
    return await execute(db, provider, attempt, now=now)


async def _refund_to_balance(conn: asyncpg.Connection, order_id: UUID) -> str:
    """A cancelled order paid from the partner balance: the money goes back to the balance, once
    (the ledger's one-entry-per-kind-per-order index is the guard)."""
    row = await conn.fetchrow(
        "SELECT tenant_id, user_id, total - refunded_amount AS left, payment_status FROM orders WHERE id = $1",
        order_id)
    if row["payment_status"] != "PAID" or row["left"] <= 0:
        return "NOTHING_TO_REFUND"
    credited = await partner_ledger.credit(conn, row["tenant_id"], row["user_id"], partner_ledger.PAYMENT_REFUND,
                                           row["left"], "Refund of cancelled order", order_id=order_id)
    if not credited:
        return SUCCEEDED
    await conn.execute("UPDATE orders SET refunded_amount = refunded_amount + $2, payment_status = 'REFUNDED',"
                       " updated_at = now() WHERE id = $1", order_id, row["left"])
    return SUCCEEDED
