"""Payment expiry: an order still PENDING_PAYMENT at its expires_at is cancelled and its
reservation released.

Two paths reach it: the delayed EXPIRE_ORDER job (one order, at its deadline) and the periodic
sweep (every overdue order, catching whatever the delayed job missed). Both lock the order row
first, as payment settlement does, so a payment and an expiry arriving together serialise:
whichever commits first wins and the other sees the new state (a late payment is refunded by
settlement). Expiring an order twice changes nothing the second time.

The delayed job goes through engine.orders.change_status. The sweep expires up to `batch_size`
orders per transaction in set form (one order at a time managed ~290 orders/s): the state
machine decides the whole batch at once (engine.domain.status_step.plan_moves) and
engine.orders.apply_step makes the move for all of them, the same step a single change makes:
status, stamps and history in one statement, the reservation released at most once per order
(stock_state check-and-set), stock rows locked in id order after the orders.
"""

from __future__ import annotations

import datetime as dt
from uuid import UUID

import asyncpg

from engine.db import Database
from engine.domain.status_step import plan_moves
from engine.orders import apply_step, change_status

ACTOR = "system:expiry"
NOTE = "Payment not received in time"


async def _expire_locked(conn: asyncpg.Connection, order_id: UUID) -> None:
    # change_status releases the reservation in this same transaction; `expect` makes sure a
    # timer never cancels an order that was paid a moment earlier.
    await change_status(conn, order_id, "CANCELLED", actor=ACTOR, note=NOTE, expect="PENDING_PAYMENT")


async def expire_order(conn: asyncpg.Connection, order_id: UUID, *, now: dt.datetime) -> bool:
    """Cancel the order if it is still unpaid past its deadline; True if this call expired it."""
    row = await conn.fetchrow(
        "SELECT status, payment_status, expires_at FROM orders WHERE id = $1 FOR UPDATE", order_id)
    if row is None or row["status"] != "PENDING_PAYMENT" or row["payment_status"] == "PAID":
        return False
    if row["expires_at"] is None or row["expires_at"] > now:
        return False
    await _expire_locked(conn, order_id)
    return True


async def sweep_overdue(db: Database, *, now: dt.datetime, batch_size: int = 500,
                        max_batches: int | None = None) -> int:
    """Expire every overdue unpaid order, `batch_size` per transaction; returns how many.

    SKIP LOCKED lets several sweepers (and the delayed jobs, and payments) work side by side:
    an order someone else holds is theirs to decide and is left alone this round.
    """
    total, batches = 0, 0
    while max_batches is None or batches < max_batches:
        async with db.transaction() as conn:
            expired = await _expire_batch(conn, now=now, batch_size=batch_size)
        total += expired
        batches += 1
        if expired < batch_size:
            break
    return total


async def _expire_batch(conn: asyncpg.Connection, *, now: dt.datetime, batch_size: int) -> int:
    # The lock re-checks the conditions on each row it takes, so every order locked here is
    # still PENDING_PAYMENT and unpaid; plan_moves checks the same with `expect`, as the
    # delayed job's change_status does.
    locked = await conn.fetch(
        "SELECT id, tenant_id, status FROM orders WHERE status = 'PENDING_PAYMENT' AND expires_at <= $1"
        " AND payment_status <> 'PAID'"
        " ORDER BY expires_at LIMIT $2 FOR UPDATE SKIP LOCKED", now, batch_size)
    rows = {r["id"]: r for r in locked}
    moves = plan_moves({r["id"]: r["status"] for r in locked}, "CANCELLED", expect="PENDING_PAYMENT")
    for move, ids in moves.groups.items():
        await apply_step(conn, move, [rows[i] for i in ids], actor=ACTOR, note=NOTE)
    return len(moves.moved)


async def expire_by_id(db: Database, order_id: UUID, *, now: dt.datetime) -> bool:
    """The delayed job's unit of work: one order, one transaction."""
    async with db.transaction() as conn:
        return await expire_order(conn, order_id, now=now)
