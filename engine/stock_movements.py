"""Stock movements in the caller's transaction: selling, releasing an order's reservation,
returning sold units (`commit_sale`, `release_order(s)`, `return_sold`).

Each happens at most once per order (a check-and-set of orders.stock_state, migration 0004) and
locks every stock row in id order, then the products in id order (a restock or sale updates
products through the stock triggers, migrations 0003 and 0013), so transactions touching several
rows never deadlock with each other or with the product actors, which lock one stock row.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Mapping, Sequence
from uuid import UUID

import asyncpg


async def _order_units(conn: asyncpg.Connection, order_id: UUID) -> dict[UUID, int]:
    rows = await conn.fetch(
        "SELECT stock_id, sum(quantity)::int AS q FROM order_items"
        " WHERE order_id = $1 AND stock_id IS NOT NULL GROUP BY stock_id", order_id)
    return {r["stock_id"]: r["q"] for r in rows}


async def _lock_stock(conn: asyncpg.Connection, ids: list[UUID]) -> None:
    """Lock stock rows in id order, then their products (which the stock triggers update)."""
    await conn.execute("SELECT 1 FROM stock WHERE id = ANY($1::uuid[]) ORDER BY id FOR NO KEY UPDATE", ids)
    await conn.execute(
        "SELECT 1 FROM products WHERE id IN (SELECT product_id FROM stock WHERE id = ANY($1::uuid[]))"
        " ORDER BY id FOR NO KEY UPDATE", ids)


async def _move(conn: asyncpg.Connection, units: dict[UUID, int], assignment: str, guard: str) -> None:
    """Apply `assignment` to each stock row with its units `d.q`, rows locked in id order first
    (then their products, which the stock triggers update), refusing if `guard` fails."""
    units = {sid: q for sid, q in units.items() if q > 0}
    if not units:
        return
    ids = sorted(units)
    await _lock_stock(conn, ids)
    moved = await conn.fetchval(
        f"WITH d(id, q) AS (SELECT * FROM unnest($1::uuid[], $2::int[])),"
        f" done AS (UPDATE stock s SET {assignment}, updated_at = now() FROM d"
        f"          WHERE s.id = d.id AND {guard} RETURNING 1)"
        f" SELECT count(*) FROM done", ids, [units[i] for i in ids])
    if moved != len(ids):
        # A bug, not a client error: these units were never reserved/sold. Roll back.
        raise RuntimeError(f"stock accounting mismatch: moved {moved} of {len(ids)} rows")


async def _advance(conn: asyncpg.Connection, order_id: UUID, before: str, after: str) -> bool:
    """Check-and-set orders.stock_state (migration 0004): True if this call made the move."""
    return bool(await conn.fetchval(
        "UPDATE orders SET stock_state = $3 WHERE id = $1 AND stock_state = $2 RETURNING true",
        order_id, before, after))


async def commit_sale(conn: asyncpg.Connection, order_id: UUID) -> bool:
    """Reserved -> sold for every item of the order (payment confirmed); products.units_sold
    follows through the stock triggers. At most once per order: a second call (or a call for
    an order already released) changes nothing and returns False."""
    if not await _advance(conn, order_id, "RESERVED", "SOLD"):
        return False
    await _move(conn, await _order_units(conn, order_id),
                "reserved = s.reserved - d.q, sold = s.sold + d.q", "s.reserved >= d.q")
    return True


async def release_order(conn: asyncpg.Connection, order_id: UUID) -> bool:
    """Reserved -> available for every item of an unpaid order (cancelled or expired).
    At most once per order; False if the units were already sold or released."""
    if not await _advance(conn, order_id, "RESERVED", "RELEASED"):
        return False
    await _move(conn, await _order_units(conn, order_id), "reserved = s.reserved - d.q", "s.reserved >= d.q")
    return True


async def release_orders(conn: asyncpg.Connection, order_ids: Sequence[UUID]) -> int:
    """`release_order` for many unpaid orders at once (the expiry sweep), set-based: one
    check-and-set of stock_state for all of them, then one move of their summed units, stock
    rows in id order. Each order's units go back at most once; returns how many orders'
    units this call released (orders already released or sold are skipped)."""
    row = await conn.fetchrow(
        "WITH released AS (UPDATE orders SET stock_state = 'RELEASED'"
        "                   WHERE id = ANY($1::uuid[]) AND stock_state = 'RESERVED' RETURNING id),"
        " units AS (SELECT i.stock_id, sum(i.quantity)::int AS q FROM order_items i JOIN released r"
        "           ON r.id = i.order_id WHERE i.stock_id IS NOT NULL GROUP BY i.stock_id)"
        " SELECT (SELECT count(*) FROM released)::int AS orders,"
        "        (SELECT array_agg(stock_id ORDER BY stock_id) FROM units) AS ids,"
        "        (SELECT array_agg(q ORDER BY stock_id) FROM units) AS qs",
        list(order_ids))
    await _move(conn, dict(zip(row["ids"] or (), row["qs"] or ())), "reserved = s.reserved - d.q", "s.reserved >= d.q")
    return row["orders"]


async def return_sold(conn: asyncpg.Connection, order_id: UUID,
                      quantities: Mapping[UUID, int] | None = None) -> bool:
    """Sold -> available. `quantities` maps order item id -> units to return (a refund; the
    caller keeps order_items.refunded_quantity and must not return the same units twice);
    None returns every item's full quantity (a paid order cancelled before shipping), at most
    once per order. False (nothing moved) unless the order's units are sold."""
    if quantities is None:
        if not await _advance(conn, order_id, "SOLD", "RETURNED"):
            return False
    elif await conn.fetchval("SELECT stock_state FROM orders WHERE id = $1", order_id) != "SOLD":
        return False
    rows = await conn.fetch(
        "SELECT id, stock_id, quantity FROM order_items WHERE order_id = $1 AND stock_id IS NOT NULL", order_id)
    units: dict[UUID, int] = defaultdict(int)
    for r in rows:
        q = r["quantity"] if quantities is None else quantities.get(r["id"], 0)
        if q < 0 or q > r["quantity"]:
            raise ValueError(f"cannot return {q} of {r['quantity']} units of item {r['id']}")
        units[r["stock_id"]] += q
    await _move(conn, dict(units), "sold = s.sold - d.q", "s.sold >= d.q")
    return True
