"""Applying payment events to orders, inside the caller's transaction.

Invariants (every function locks the order row first, so payment and expiry serialise on it):
- a PENDING_PAYMENT order paid in full becomes PAID and its reservation a sale, once
  (engine.orders.change_status does the status, stock and ORDER_PAID outbox row);
- a second success for an order already paid changes nothing (outcome DUPLICATE);
- money arriving for an order already CANCELLED (payment racing expiry) is recorded and a
  refund of it is queued through the outbox (REFUND_CANCELLED_ORDER), never lost, never kept.
Every event, applied or not, leaves a payment_events row saying what it did.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from uuid import UUID

import asyncpg

from engine import outbox
from engine.db import Database
from engine.domain.errors import InvalidStatusTransition
from engine import orders
from engine.orders import change_status

PAID, DUPLICATE, FAILED = "PAID", "DUPLICATE", "FAILED"
LATE_PAYMENT_REFUNDED = "LATE_PAYMENT_REFUNDED"
IGNORED_AMOUNT_MISMATCH, IGNORED_STATUS = "IGNORED_AMOUNT_MISMATCH", "IGNORED_STATUS"


async def lock_order(conn: asyncpg.Connection, order_id: UUID, tenant_id: UUID | None = None) -> asyncpg.Record:
    """The order row, locked for this transaction; OrderNotFound if absent (or another tenant's)."""
    return await orders.lock_order(conn, order_id, tenant_id=tenant_id)


async def _mark_paid(conn: asyncpg.Connection, order: asyncpg.Record, *, provider: str, payment_ref: str | None,
                     amount: Decimal, currency: str, now: dt.datetime) -> None:
    await conn.execute(
        "INSERT INTO payments (tenant_id, order_id, provider, payment_ref, method, currency, amount, status, paid_at)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, 'PAID', $8)"
        " ON CONFLICT (order_id) DO UPDATE SET status = 'PAID', amount = EXCLUDED.amount, paid_at = EXCLUDED.paid_at,"
        "  provider = EXCLUDED.provider, payment_ref = coalesce(EXCLUDED.payment_ref, payments.payment_ref),"
        "  updated_at = now()",
        order["tenant_id"], order["id"], provider, payment_ref, order["payment_method"], currency, amount, now)
    await conn.execute(
        "UPDATE orders SET payment_status = 'PAID', paid_at = coalesce(paid_at, $2),"
        " transaction_id = coalesce($3, transaction_id), updated_at = now() WHERE id = $1",
        order["id"], now, payment_ref)


async def _record(conn: asyncpg.Connection, order: asyncpg.Record, *, event_id: str | None, source: str,
                  kind: str, amount: Decimal | None, outcome: str) -> str:
    await conn.execute(
        "INSERT INTO payment_events (tenant_id, order_id, event_id, source, kind, amount, outcome)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7)",
        order["tenant_id"], order["id"], event_id, source, kind, amount, outcome)
    return outcome


async def payment_succeeded(conn: asyncpg.Connection, order_id: UUID, *, amount: Decimal, currency: str,
                            provider: str, payment_ref: str | None, event_id: str | None, source: str,
                            now: dt.datetime, tenant_id: UUID | None = None) -> str:
    """Apply "the buyer paid `amount`"; returns the outcome (PAID, DUPLICATE, LATE_PAYMENT_REFUNDED, ...)."""
    order = await lock_order(conn, order_id, tenant_id)

    async def done(outcome: str) -> str:
        return await _record(conn, order, event_id=event_id, source=source, kind="payment.succeeded",
                             amount=amount, outcome=outcome)

    if order["payment_status"] in ("PAID", "REFUNDED"):
        return await done(DUPLICATE)
    if order["status"] == "PENDING_PAYMENT":
        if amount != order["total"] or currency != order["currency"]:
            # Partial or wrong-currency money never pays an order; a human sorts it out.
            return await done(IGNORED_AMOUNT_MISMATCH)
        await _mark_paid(conn, order, provider=provider, payment_ref=payment_ref, amount=amount,
                         currency=currency, now=now)
        # change_status sells the reservation and queues ORDER_PAID in this same transaction.
        await change_status(conn, order_id, "PAID", actor=source, note="Payment confirmed",
                            transaction_id=payment_ref, expect="PENDING_PAYMENT")
        return await done(PAID)
    if order["status"] == "CANCELLED" and amount > 0:
        # Lost the race with expiry (or a cancel): keep the record, give the money back.
        await _mark_paid(conn, order, provider=provider, payment_ref=payment_ref, amount=amount,
                         currency=currency, now=now)
        await outbox.enqueue(conn, outbox.REFUND_CANCELLED_ORDER, {"order_id": order_id},
                             tenant_id=order["tenant_id"])
        return await done(LATE_PAYMENT_REFUNDED)
    return await done(IGNORED_STATUS)


async def payment_failed(conn: asyncpg.Connection, order_id: UUID, *, event_id: str | None, source: str,
                         amount: Decimal | None, now: dt.datetime) -> str:
    """Apply "the payment attempt failed": the order stays PENDING_PAYMENT (the buyer may retry)."""
    order = await lock_order(conn, order_id)
    outcome = IGNORED_STATUS
    if order["status"] == "PENDING_PAYMENT" and order["payment_status"] in ("PENDING", "FAILED"):
        await conn.execute("UPDATE orders SET payment_status = 'FAILED', updated_at = now() WHERE id = $1", order_id)
        await conn.execute("UPDATE payments SET status = 'FAILED', updated_at = now()"
                           " WHERE order_id = $1 AND status = 'PENDING'", order_id)
        outcome = FAILED
    return await _record(conn, order, event_id=event_id, source=source, kind="payment.failed",
                         amount=amount, outcome=outcome)


async def confirm_bank_transfer(conn: asyncpg.Connection, tenant_id: UUID, order_id: UUID, *, actor: str,
                                now: dt.datetime) -> str:
    """Staff saw the transfer arrive: PENDING_PAYMENT -> PAID; already paid is a no-op (DUPLICATE);
    any other state is InvalidStatusTransition (a cancelled order's money is refunded by hand)."""
    order = await lock_order(conn, order_id, tenant_id)
    if order["payment_status"] in ("PAID", "REFUNDED") and order["status"] != "CANCELLED":
        return DUPLICATE
    if order["status"] != "PENDING_PAYMENT":
        raise InvalidStatusTransition(f"An order in {order['status']} cannot be confirmed as paid.")
    return await payment_succeeded(conn, order_id, amount=order["total"], currency=order["currency"],
                                   provider="bank_transfer", payment_ref=None, event_id=None, source=actor,
                                   now=now, tenant_id=tenant_id)


@dataclass(frozen=True, slots=True)
class PaymentState:
    """An order's payment as it stands after a confirmation."""

    order_id: UUID
    status: str
    payment_status: str
    paid_at: dt.datetime | None
    transaction_id: str | None


async def confirm_payment(db: Database, tenant_id: UUID, order_id: UUID, *, actor: str,
                          now: dt.datetime) -> PaymentState:
    """The unit of work behind staff's confirm-payment; returns the order's payment state after."""
    async with db.transaction() as conn:
        await confirm_bank_transfer(conn, tenant_id, order_id, actor=actor, now=now)
        row = await conn.fetchrow(
            "SELECT id, status, payment_status, paid_at, transaction_id FROM orders WHERE id = $1", order_id)
    return PaymentState(row["id"], row["status"], row["payment_status"], row["paid_at"], row["transaction_id"])
