"""products.stock_available for reservations and releases, folded in off the hot path.

A change of stock.reserved alone (reserve, release, expiry, reclaim) only marks its product
in `stock_summary_dirty` (migration 0013); `refresh` recomputes the marked products' sums from
their stock rows. Every API process runs `SummaryRefresher`, so listing by stock and the
out-of-stock filter lag the truth by at most about STOCK_SUMMARY_INTERVAL_MS (plus one
refresh). Restocks, sales and returns still move products in their own transaction.

Why `refresh` takes its steps in this order (each its own statement, one transaction):
1. lock the marked products (id order, SKIP LOCKED: a product a writer holds waits for the
   next tick). Writers that lock products take them before their stock marks, so taking the
   products before the marks never deadlocks with them;
2. delete the marks. A transaction that marked the product holds its mark's row lock until it
   commits, so the delete waits for it, and anything marking later re-inserts the mark;
3. recompute, with a snapshot taken after 2, so it sees every change whose mark it deleted.
   A restock/sale still running waits for our product lock and then adds its delta to the
   fresh sum, so nothing is counted twice or lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from engine.db import Database

log = logging.getLogger(__name__)

_LOCK = """
SELECT p.id FROM products p
 WHERE p.id IN (SELECT product_id FROM stock_summary_dirty LIMIT $1)
 ORDER BY p.id FOR NO KEY UPDATE SKIP LOCKED
"""
_UNMARK = "DELETE FROM stock_summary_dirty WHERE product_id = ANY($1::uuid[]) RETURNING product_id"
_RECOMPUTE = """
WITH sums AS (SELECT p.id, coalesce((SELECT sum(s.available) FROM stock s WHERE s.product_id = p.id), 0)::int AS a
                FROM products p WHERE p.id = ANY($1::uuid[]))
UPDATE products p SET stock_available = sums.a FROM sums
 WHERE p.id = sums.id AND p.stock_available <> sums.a
"""
# Marks whose product is gone (none should exist: products are soft-deleted) never block the rest.
_ORPHANS = "DELETE FROM stock_summary_dirty d WHERE NOT EXISTS (SELECT 1 FROM products p WHERE p.id = d.product_id)"


async def refresh(db: Database, *, limit: int = 1000) -> int:
    """Fold the marked products' reservations into products.stock_available; returns how
    many products were refreshed (at most `limit` per call)."""
    async with db.transaction() as conn:
        locked = [r["id"] for r in await conn.fetch(_LOCK, limit)]
        if not locked:
            return 0
        gone = [r["product_id"] for r in await conn.fetch(_UNMARK, locked)]
        if gone:
            await conn.execute(_RECOMPUTE, gone)
        return len(gone)


class SummaryRefresher:
    """Runs `refresh` every `interval` seconds in the background of one process."""

    def __init__(self, db: Database, interval: float) -> None:
        self._db = db
        self._interval = interval
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None and self._interval > 0:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="stock-summary")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        orphans_checked = False
        while True:
            await asyncio.sleep(self._interval)
            try:
                if not orphans_checked:
                    async with self._db.connection() as conn:
                        await conn.execute(_ORPHANS)
                    orphans_checked = True
                while await refresh(self._db) >= 1000:
                    pass
            except asyncio.CancelledError:
                raise
            except Exception:  # the database is away: the marks wait in the table for the next tick
                log.warning("stock summary refresh failed; retrying next tick", exc_info=True)
