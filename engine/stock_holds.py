"""Stock holds (migration 0007): the units a checkout reserved, until its order consumes them.

Every granted reservation is a `stock_holds` row, inserted by the statement that raises
stock.reserved. The order statement deletes its holds (engine.checkout), a failed checkout
deletes them while giving the units back (`release_holds`), and `reclaim_orphaned_holds` gives
back the units of holds older than `hold_grace` (their process is gone). Deleting a hold is
what gives its units back, so they go back exactly once, whoever gets there first.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from typing import Sequence
from uuid import UUID

import asyncpg

from engine.db import Database
from engine.settings import Settings
from engine.stock_movements import _lock_stock, _move

# A batch of reservations of one stock row, one statement (migration 0010): row lock, first come
# first served admission, stock.reserved raised by the admitted sum, one hold per admission.
_RESERVE = "SELECT granted, left_over FROM reserve_stock($1, $2::uuid[], $3::int[])"


# Slack on top of the waits a live checkout can spend between its reservation and its order
# transaction (see `hold_grace`), so a slow but living checkout is never reclaimed.
HOLD_MARGIN_SECONDS = 30.0


def hold_grace(settings: Settings) -> dt.timedelta:
    """How old an unconsumed hold must be before its process is presumed dead: the actor's
    answer (ask timeout), then the order sequence and the order transaction's first statement
    (a pool wait and a statement each, at most db_command_timeout), plus a margin."""
    return dt.timedelta(seconds=settings.actor_ask_timeout + 3 * settings.db_command_timeout
                        + HOLD_MARGIN_SECONDS)


async def _give_back(conn: asyncpg.Connection, holds: Sequence[UUID]) -> int:
    """Delete these holds and return their units to available; returns the holds deleted.
    Holds already gone (consumed by an order, released, reclaimed) give nothing back."""
    gone = await conn.fetch("DELETE FROM stock_holds WHERE id = ANY($1::uuid[]) RETURNING stock_id, quantity",
                            list(holds))
    units: dict[UUID, int] = defaultdict(int)
    for r in gone:
        units[r["stock_id"]] += r["quantity"]
    await _move(conn, units, "reserved = s.reserved - d.q", "s.reserved >= d.q")
    return len(gone)


async def release_holds(db: Database, holds: Sequence[UUID]) -> int:
    """Give back the units of these holds, one short transaction, stock rows in id order;
    returns how many holds were still there to release."""
    if not holds:
        return 0
    async with db.transaction() as conn:
        return await _give_back(conn, holds)


async def reclaim_orphaned_holds(db: Database, *, older_than: dt.timedelta, limit: int = 1000) -> int:
    """Give back the units of holds older than `older_than` (their checkout's process died
    between reserving and writing the order); returns how many holds were reclaimed.

    One transaction per `limit` holds: hold rows locked with SKIP LOCKED (a hold an order
    transaction is consuming right now is that order's), then the stock rows in id order and
    their products, as every multi-row stock move does. Ages are measured on the database's
    clock, which also stamped the holds. A stock row whose reserved units no longer cover its
    old holds means an accounting bug elsewhere: its holds are left for a human to look at
    (giving them back would take units other orders own), the other rows are reclaimed."""
    total, left_alone = 0, []
    while True:
        async with db.transaction() as conn:
            taken, reclaimed = await _reclaim_batch(conn, older_than, limit, left_alone)
        total += reclaimed
        if taken < limit:
            return total


async def _reclaim_batch(conn: asyncpg.Connection, older_than: dt.timedelta, limit: int,
                         left_alone: list[UUID]) -> tuple[int, int]:
    """One transaction's worth: (holds looked at, holds reclaimed); adds the holds it had to
    leave alone to `left_alone`, so the next batch of this run does not look at them again."""
    # A hold whose stock row is gone has nothing to give back (and no FK to clean it).
    holds = await conn.fetch(
        "SELECT h.id, h.stock_id, h.quantity FROM stock_holds h"
        " WHERE h.created_at < clock_timestamp() - $1::interval AND h.id <> ALL($3::uuid[])"
        " AND EXISTS (SELECT 1 FROM stock s WHERE s.id = h.stock_id)"
        " LIMIT $2 FOR UPDATE OF h SKIP LOCKED", older_than, limit, left_alone)
    units: dict[UUID, int] = defaultdict(int)
    for h in holds:
        units[h["stock_id"]] += h["quantity"]
    if not units:
        return 0, 0
    ids = sorted(units)
    await _lock_stock(conn, ids)
    covered = {r["id"] for r in await conn.fetch(
        "SELECT s.id FROM stock s JOIN unnest($1::uuid[], $2::int[]) AS d(id, q) ON d.id = s.id"
        " WHERE s.reserved >= d.q", ids, [units[i] for i in ids])}
    mine = [h["id"] for h in holds if h["stock_id"] in covered]
    left_alone.extend(h["id"] for h in holds if h["stock_id"] not in covered)
    return len(holds), await _give_back(conn, mine) if mine else 0
