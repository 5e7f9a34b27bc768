"""What must hold in the database after any load run, whatever the load did.

- No oversell: every stock row has on_hand = available + reserved + sold with nothing negative,
  and the units in live orders of a stock row never exceed its on_hand;
  for the flash sale, the successful (2xx) checkouts the clients saw never exceed the hot stock.
- No duplicate orders: no user has more orders than checkouts it was answered 2xx for (each
  checkout carries its own Idempotency-Key, so a retry must never make a second order), and
  order numbers are unique per tenant.
Each check returns a list of violations in words (empty: it holds).
"""

from __future__ import annotations

from typing import Mapping

import asyncpg


async def oversell(conn: asyncpg.Connection, *, hot_stock_id: str | None = None, hot_stock: int | None = None,
                   checkouts_2xx: int | None = None) -> list[str]:
    bad = []
    broken = await conn.fetch(
        "SELECT id, on_hand, available, reserved, sold FROM stock"
        " WHERE on_hand <> available + reserved + sold OR available < 0 OR reserved < 0 OR sold < 0 LIMIT 5")
    bad += [f"stock {r['id']}: on_hand {r['on_hand']} != available {r['available']} + reserved {r['reserved']}"
            f" + sold {r['sold']} (or negative)" for r in broken]
    over = await conn.fetch(
        "SELECT s.id, s.on_hand, sum(i.quantity)::int AS ordered FROM order_items i"
        " JOIN orders o ON o.id = i.order_id JOIN stock s ON s.product_id = i.product_id"
        "  AND s.variant_id IS NOT DISTINCT FROM i.variant_id"
        " WHERE o.status NOT IN ('CANCELLED') GROUP BY s.id, s.on_hand HAVING sum(i.quantity) > s.on_hand LIMIT 5")
    bad += [f"stock {r['id']}: {r['ordered']} units in live orders > on_hand {r['on_hand']}" for r in over]
    if hot_stock is not None and checkouts_2xx is not None and checkouts_2xx > hot_stock:
        bad.append(f"{checkouts_2xx} successful checkouts of the hot product > its stock {hot_stock}")
    if hot_stock_id is not None and hot_stock is not None:
        row = await conn.fetchrow("SELECT on_hand, reserved, sold FROM stock WHERE id = $1::uuid", hot_stock_id)
        if row is not None and row["reserved"] + row["sold"] > hot_stock:
            bad.append(f"hot stock: reserved {row['reserved']} + sold {row['sold']} > {hot_stock}")
    return bad


async def duplicate_orders(conn: asyncpg.Connection, checkouts_2xx_by_user: Mapping[str, int] | None = None) -> list[str]:
    bad = []
    dupes = await conn.fetch(
        "SELECT tenant_id, order_number, count(*) AS n FROM orders GROUP BY 1, 2 HAVING count(*) > 1 LIMIT 5")
    bad += [f"order number {r['order_number']} used {r['n']} times" for r in dupes]
    if checkouts_2xx_by_user is not None:
        counts = await conn.fetch(
            "SELECT user_id::text AS u, count(*)::int AS n FROM orders WHERE user_id = ANY($1::uuid[]) GROUP BY 1",
            list(checkouts_2xx_by_user))
        for r in counts:
            seen = checkouts_2xx_by_user.get(r["u"], 0)
            if r["n"] > seen:
                bad.append(f"user {r['u']} has {r['n']} orders but was answered 2xx for {seen} checkout(s)")
                if len(bad) >= 5:
                    break
    return bad


async def check_all(url: str, **kw: object) -> list[str]:
    conn = await asyncpg.connect(url)
    try:
        by_user = kw.pop("checkouts_2xx_by_user", None)
        return await oversell(conn, **kw) + await duplicate_orders(conn, by_user)  # type: ignore[arg-type]
    finally:
        await conn.close()
