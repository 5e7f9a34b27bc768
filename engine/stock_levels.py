"""Stock levels set by the catalogue: how many units a stock row has on hand.

Invariant: on_hand = available + reserved + sold, and reserved / sold belong to the order
engine (reservations). The catalogue only ever changes on_hand, with a conditional UPDATE that
cannot take it below reserved + sold, so a staff edit can never erase a reservation, whatever
races with it. products.stock_available follows through the stock triggers of migration 0003.
"""

from __future__ import annotations

from uuid import UUID

import asyncpg

from engine.domain.errors import Conflict, NotFound


async def create_stock(conn: asyncpg.Connection, *, tenant_id: UUID, product_id: UUID,
                       variant_id: UUID | None, on_hand: int) -> UUID:
    """The stock row of a new product (variant_id NULL) or of one of its variants."""
    return await conn.fetchval(
        "INSERT INTO stock (tenant_id, product_id, variant_id, on_hand) VALUES ($1, $2, $3, $4) RETURNING id",
        tenant_id, product_id, variant_id, on_hand)


async def set_available(conn: asyncpg.Connection, stock_id: UUID, available: int, *,
                        tenant_id: UUID | None = None) -> int:
    """Make `available` units sellable: on_hand = available + reserved + sold, computed inside
    the UPDATE so a reservation committed a moment earlier is kept, not overwritten."""
    if available < 0:
        raise Conflict("Available stock cannot be negative.")
    got = await conn.fetchval(
        "UPDATE stock SET on_hand = $2 + reserved + sold, updated_at = now()"
        " WHERE id = $1 AND ($3::uuid IS NULL OR tenant_id = $3) RETURNING available",
        stock_id, available, tenant_id)
    if got is None:
        raise NotFound("Stock row not found.")
    return got


async def _explain_refusal(conn: asyncpg.Connection, stock_id: UUID, tenant_id: UUID | None) -> None:
    row = await conn.fetchrow(
        "SELECT reserved, sold FROM stock WHERE id = $1 AND ($2::uuid IS NULL OR tenant_id = $2)",
        stock_id, tenant_id)
    if row is None:
        raise NotFound("Stock row not found.")
    raise Conflict("On-hand stock cannot go below the reserved and sold units.",
                   extra={"reserved": row["reserved"], "sold": row["sold"]})
