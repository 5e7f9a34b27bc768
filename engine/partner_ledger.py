"""The partner balance and its ledger: the one module that writes either.

Invariant: every change of partner_balances.balance commits together with the partner_ledger
row that explains it, so a partner's balance is the sum of their ledger. The balance never goes
below zero (its CHECK): a payment needs the whole amount (INSUFFICIENT_BALANCE otherwise), a
correction takes at most what is there. An entry tied to an order exists at most once per
(partner, order, kind) — the ledger's unique index — which makes the jobs that credit idempotent.

Callers hold the transaction (and the order row lock where an order is involved):
commissions (engine.partners), payment from the balance (engine.checkout), refunds to the
balance (engine.refunds, engine.payments.refund_execution).
"""

from __future__ import annotations

from decimal import Decimal
from uuid import UUID

import asyncpg

from engine.domain.errors import InsufficientBalance
from engine.domain.money import money

# Ledger kinds.
COMMISSION, COMMISSION_REVERSAL = "COMMISSION", "COMMISSION_REVERSAL"
PAYMENT, REFUND, PAYMENT_REFUND = "PAYMENT", "REFUND", "PAYMENT_REFUND"


async def open_account(conn: asyncpg.Connection, tenant_id: UUID, user_id: UUID) -> None:
    """The partner's balance row, at zero, unless it exists."""
    await conn.execute("INSERT INTO partner_balances (user_id, tenant_id) VALUES ($1, $2)"
                       " ON CONFLICT (user_id) DO NOTHING", user_id, tenant_id)


async def record(conn: asyncpg.Connection, tenant_id: UUID, user_id: UUID, kind: str, amount: Decimal, note: str, *,
                 order_id: UUID | None = None, points: Decimal | None = None) -> bool:
    """Append a ledger entry; for an order, at most one per kind: False if it was already there."""
    columns = "tenant_id, user_id, order_id, kind, amount, note" + (", points" if points is not None else "")
    values = "$1, $2, $3, $4, $5, $6" + (", $7" if points is not None else "")
    args = [tenant_id, user_id, order_id, kind, amount, note] + ([points] if points is not None else [])
    return bool(await conn.fetchval(
        f"INSERT INTO partner_ledger ({columns}) VALUES ({values})"
        " ON CONFLICT (user_id, order_id, kind) WHERE order_id IS NOT NULL DO NOTHING RETURNING true", *args))


async def set_entry(conn: asyncpg.Connection, tenant_id: UUID, user_id: UUID, order_id: UUID, kind: str,
                    amount: Decimal, points: Decimal, note: str) -> None:
    """Write the order's one entry of `kind` with these figures, replacing what it held (a
    running total such as the commission reversal, moved by its difference)."""
    await conn.execute(
        "INSERT INTO partner_ledger (tenant_id, user_id, order_id, kind, amount, points, note)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (user_id, order_id, kind) WHERE order_id IS NOT NULL"
        " DO UPDATE SET amount = EXCLUDED.amount, points = EXCLUDED.points, note = EXCLUDED.note",
        tenant_id, user_id, order_id, kind, amount, points, note)


async def adjust(conn: asyncpg.Connection, tenant_id: UUID, user_id: UUID, amount: Decimal,
                 points: Decimal = Decimal(0)) -> Decimal:
    """Add `amount` (may be negative) and `points` to the balance; a debit takes at most what
    the balance holds. Returns the amount actually moved (record that in the ledger)."""
    await open_account(conn, tenant_id, user_id)
    have = await conn.fetchval("SELECT balance FROM partner_balances WHERE user_id = $1 FOR UPDATE", user_id)
    amount = max(amount, -have)
    await conn.execute("UPDATE partner_balances SET balance = balance + $2, career_points = career_points + $3,"
                       " updated_at = now() WHERE user_id = $1", user_id, amount, points)
    return amount


async def credit(conn: asyncpg.Connection, tenant_id: UUID, user_id: UUID, kind: str, amount: Decimal, note: str, *,
                 order_id: UUID | None = None) -> bool:
    """Money back to the balance with its entry; for an order, once per kind (False: already
    credited, nothing moved)."""
    if not await record(conn, tenant_id, user_id, kind, amount, note, order_id=order_id):
        return False
    await adjust(conn, tenant_id, user_id, amount)
    return True


async def pay(conn: asyncpg.Connection, tenant_id: UUID, user_id: UUID, order_id: UUID, amount: Decimal,
              note: str) -> None:
    """Debit the whole `amount` for an order, or raise INSUFFICIENT_BALANCE (with what there is)."""
    left = await conn.fetchval(
        "UPDATE partner_balances SET balance = balance - $1, updated_at = now()"
        " WHERE user_id = $2 AND tenant_id = $3 AND balance >= $1 RETURNING balance", amount, user_id, tenant_id)
    if left is None:
        have = await conn.fetchval("SELECT balance FROM partner_balances WHERE user_id = $1 AND tenant_id = $2",
                                   user_id, tenant_id)
        raise InsufficientBalance(extra={"balance": money(have or 0), "required": amount})
    await record(conn, tenant_id, user_id, PAYMENT, -amount, note, order_id=order_id)
