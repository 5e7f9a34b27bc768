"""Partner commissions and career points: accrued when a partner's order is delivered, reversed
as it is refunded.

Rules:
- a line earns on its net amount: unit price x quantity, less the line's share of the order's
  discount (discount spread over the subtotal); commission = net x the product's commission %
  and points = net x its career-points % (both snapshotted on the order item at checkout);
  rounded to the cent once, on the order's sum;
- the COMMISSION ledger row holds what the whole delivered order earned; the one
  COMMISSION_REVERSAL row holds what the refunds took back: what the order earned minus what
  its unrefunded units earn (everything once the order is REFUNDED). Each reversal job
  recomputes that target and moves the balance by the difference, so it can run any number of
  times, in any order with the accrual.

Invariants (partner_ledger's unique (user, order, kind) index and the order row lock make the
jobs idempotent and serialise them): a ledger row and its balance change commit together
(engine.partner_ledger writes both), so partner_balances.balance is the sum of the partner's
ledger. The balance never goes below zero (its CHECK): a reversal larger than the balance
takes what is there, and the next reversal run for the order takes the rest.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Iterable
from uuid import UUID

import asyncpg

from engine import partner_ledger
from engine.db import Database
from engine.domain.money import money
from engine.orders import lock_order

COMMISSION, REVERSAL = partner_ledger.COMMISSION, partner_ledger.COMMISSION_REVERSAL
HUNDRED = Decimal(100)


@dataclass(frozen=True, slots=True)
class EarningLine:
    unit_price: Decimal
    quantity: int
    commission_percentage: Decimal
    career_points_percentage: Decimal


def earnings(lines: Iterable[EarningLine], subtotal: Decimal, discount: Decimal) -> tuple[Decimal, Decimal]:
    """(commission, career points) the lines earn (pure; the rule is in the module docstring)."""
    net_share = (subtotal - discount) / subtotal if subtotal > 0 else Decimal(0)
    commission = points = Decimal(0)
    for ln in lines:
        net = ln.unit_price * ln.quantity * net_share
        commission += net * ln.commission_percentage / HUNDRED
        points += net * ln.career_points_percentage / HUNDRED
    return money(commission), money(points)


def _lines(items: Iterable[asyncpg.Record], *, unrefunded: bool) -> list[EarningLine]:
    return [EarningLine(i["unit_price"], i["quantity"] - (i["refunded_quantity"] if unrefunded else 0),
                        i["commission_percentage"], i["career_points_percentage"]) for i in items]


async def accrue_commission(db: Database, order_id: UUID) -> str:
    """Credit a delivered partner order's commission and points, once. Returns the outcome:
    ACCRUED, ALREADY_ACCRUED, NOT_A_PARTNER or NOT_DELIVERED."""
    async with db.transaction() as conn:
        order = await lock_order(conn, order_id)
        if order["buyer_role"] != "partner":
            return "NOT_A_PARTNER"
        if order["delivered_at"] is None or order["status"] not in ("DELIVERED", "REFUNDED"):
            return "NOT_DELIVERED"
        items = await conn.fetch("SELECT * FROM order_items WHERE order_id = $1", order_id)
        amount, points = earnings(_lines(items, unrefunded=False), order["subtotal"], order["discount"])
        inserted = await partner_ledger.record(conn, order["tenant_id"], order["user_id"], COMMISSION, amount,
                                               f"Commission for order {order['order_number']}",
                                               order_id=order_id, points=points)
        if not inserted:
            return "ALREADY_ACCRUED"
        await partner_ledger.adjust(conn, order["tenant_id"], order["user_id"], amount, points)
        # Refunds that completed before this job ran are taken back at once.
        await _reconcile_reversal(conn, order, items)
    return "ACCRUED"


async def reverse_commission(db: Database, order_id: UUID) -> str:
    """Take back what the order's refunded units earned. Returns REVERSED, UNCHANGED,
    NO_COMMISSION (nothing was accrued: the accrual will net it out) or NOT_A_PARTNER."""
    async with db.transaction() as conn:
        order = await lock_order(conn, order_id)
        if order["buyer_role"] != "partner":
            return "NOT_A_PARTNER"
        items = await conn.fetch("SELECT * FROM order_items WHERE order_id = $1", order_id)
        return await _reconcile_reversal(conn, order, items)


async def _reconcile_reversal(conn: asyncpg.Connection, order: asyncpg.Record, items: list[asyncpg.Record]) -> str:
    ledger = {r["kind"]: r for r in await conn.fetch(
        "SELECT kind, amount, points FROM partner_ledger WHERE user_id = $1 AND order_id = $2 AND kind = ANY($3)",
        order["user_id"], order["id"], [COMMISSION, REVERSAL])}
    earned = ledger.get(COMMISSION)
    if earned is None:
        return "NO_COMMISSION"
    if order["status"] == "REFUNDED":
        target_amount, target_points = earned["amount"], earned["points"]
    else:
        keep_amount, keep_points = earnings(_lines(items, unrefunded=True), order["subtotal"], order["discount"])
        target_amount, target_points = earned["amount"] - keep_amount, earned["points"] - keep_points
    done = ledger.get(REVERSAL)
    done_amount = -done["amount"] if done else Decimal(0)
    done_points = -done["points"] if done else Decimal(0)
    if (target_amount, target_points) == (done_amount, done_points):
        return "UNCHANGED"
    moved = await partner_ledger.adjust(conn, order["tenant_id"], order["user_id"], done_amount - target_amount,
                                        done_points - target_points)
    await partner_ledger.set_entry(conn, order["tenant_id"], order["user_id"], order["id"], REVERSAL,
                                   -(done_amount - moved), -target_points,
                                   f"Commission reversed for refunds of order {order['order_number']}")
    return "REVERSED"
