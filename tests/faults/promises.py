"""The engine's promises 1-3, checked against the database after a scenario.

Each check returns a list of violations (human-readable strings); empty means the promise held.
They read PostgreSQL directly (never through the API under test, never through the proxy).

1. Never oversell: per stock row on_hand = available + reserved + sold, nothing negative;
   reserved + sold equals the units of the orders still holding stock plus the stock holds of
   checkouts that reserved but never ordered (a crash between the two; the housekeeping job gives
   those back after their grace period): nothing leaked, nothing lost; units in live orders never
   exceed what was on hand.
2. One order per Idempotency-Key: no key answered two different orders, every order a client
   was told about exists, and the shop holds no order no key accounts for.
3. Jobs exactly once: no order went through the same status twice; the outbox is drained;
   no PENDING_PAYMENT order outlived its expiry plus a bounded delay.
4. (flash sale) Every buyer's orders are exactly the checkouts they were told succeeded: a
   buyer with a 201 has that one order, a buyer with an error has none; a key left undecided
   by the fault is asked again and must get its stored answer.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from typing import Sequence
from uuid import UUID

import asyncpg

from tests.faults.load import Buyer, LoadReport

HOLDING = ("PENDING_PAYMENT", "PAID", "PROCESSING", "SHIPPED", "DELIVERED")


async def stock_promise(conn: asyncpg.Connection, tenant_id: UUID) -> list[str]:
    bad: list[str] = []
    rows = await conn.fetch(
        "SELECT s.id, s.product_id, s.on_hand, s.available, s.reserved, s.sold,"
        "       coalesce((SELECT sum(oi.quantity) FROM order_items oi JOIN orders o ON o.id = oi.order_id"
        "                  WHERE oi.product_id = s.product_id AND oi.variant_id IS NOT DISTINCT FROM s.variant_id"
        "                    AND o.status = ANY($2::text[])), 0) AS held,"
        "       coalesce((SELECT sum(h.quantity) FROM stock_holds h WHERE h.stock_id = s.id), 0) AS on_hold"
        "  FROM stock s WHERE s.tenant_id = $1", tenant_id, list(HOLDING))
    for r in rows:
        if r["on_hand"] != r["available"] + r["reserved"] + r["sold"]:
            bad.append(f"stock {r['id']}: on_hand {r['on_hand']} != available+reserved+sold "
                       f"{r['available']}+{r['reserved']}+{r['sold']}")
        if min(r["on_hand"], r["available"], r["reserved"], r["sold"]) < 0:
            bad.append(f"stock {r['id']}: negative count {dict(r)}")
        if r["reserved"] + r["sold"] != r["held"] + r["on_hold"]:
            bad.append(f"stock {r['id']}: reserved+sold {r['reserved'] + r['sold']} != units in live orders "
                       f"{r['held']} + units on hold {r['on_hold']}")
        if r["held"] > r["on_hand"]:
            bad.append(f"stock {r['id']}: {r['held']} units sold/reserved but only {r['on_hand']} on hand (oversold)")
    return bad


async def idempotency_promise(conn: asyncpg.Connection, tenant_id: UUID, report: LoadReport) -> list[str]:
    bad: list[str] = []
    told: set[str] = set()
    for key, ids in report.orders_by_key.items():
        if len(ids) > 1:
            bad.append(f"key {key} answered {len(ids)} different orders: {sorted(ids)}")
        told |= ids
    in_db = {str(r["id"]) for r in await conn.fetch("SELECT id FROM orders WHERE tenant_id = $1", tenant_id)}
    missing = told - in_db
    if missing:
        bad.append(f"{len(missing)} order(s) confirmed to clients are not in the database: {sorted(missing)[:3]}")
    undecided = sum(1 for v in report.keys.values() if v == "undecided")
    unexplained = len(in_db - told)
    if unexplained > undecided:
        bad.append(f"{unexplained} order(s) no client was told about, but only {undecided} key(s) were left undecided"
                   " (a retry created a second order)")
    return bad


async def jobs_promise(conn: asyncpg.Connection, tenant_id: UUID, *, expiry_bound: dt.timedelta | None = None,
                       outbox_drained: bool = False) -> list[str]:
    bad: list[str] = []
    dupes = await conn.fetch(
        "SELECT order_id, status, count(*) AS n FROM order_status_history WHERE tenant_id = $1"
        " GROUP BY order_id, status HAVING count(*) > 1", tenant_id)
    bad += [f"order {r['order_id']} entered {r['status']} {r['n']} times" for r in dupes]
    if outbox_drained:
        left = await conn.fetchval("SELECT count(*) FROM outbox WHERE tenant_id = $1 AND sent_at IS NULL"
                                   " AND not_before < now() - interval '5 seconds'", tenant_id)
        if left:
            bad.append(f"{left} outbox row(s) due but never sent")
        # Sent is not done: a row whose job never finished long past its resend time was lost.
        lost = await conn.fetchval("SELECT count(*) FROM outbox WHERE tenant_id = $1 AND done_at IS NULL"
                                   " AND resend_at < now() - interval '20 seconds'", tenant_id)
        if lost:
            bad.append(f"{lost} outbox row(s) sent but never done, 20 s past their resend time")
    if expiry_bound is not None:
        stale = await conn.fetchval(
            "SELECT count(*) FROM orders WHERE tenant_id = $1 AND status = 'PENDING_PAYMENT'"
            " AND expires_at < now() - $2::interval", tenant_id, expiry_bound)
        if stale:
            bad.append(f"{stale} PENDING_PAYMENT order(s) outlived expiry + {expiry_bound.total_seconds():.0f}s")
    return bad


async def buyers_promise(conn: asyncpg.Connection, tenant_id: UUID, report: LoadReport,
                         buyers: Sequence[Buyer]) -> list[str]:
    bad: list[str] = []
    rows = await conn.fetch("SELECT user_id, count(*) AS n FROM orders WHERE tenant_id = $1 GROUP BY user_id", tenant_id)
    in_db = {r["user_id"]: r["n"] for r in rows}
    told_ok: Counter[int] = Counter()
    for key, outcome in report.keys.items():
        owner = report.key_owner.get(key)
        if outcome == "ok" and owner is not None:
            told_ok[owner] += 1
        elif outcome == "undecided":
            bad.append(f"key {key} of buyer {owner} still undecided after asking again")
    for i, buyer in enumerate(buyers):
        if in_db.get(buyer.user_id, 0) != told_ok[i]:
            bad.append(f"buyer {i} was told {told_ok[i]} checkout(s) succeeded but has {in_db.get(buyer.user_id, 0)} order(s)")
    return bad


async def order_count(conn: asyncpg.Connection, tenant_id: UUID) -> int:
    return await conn.fetchval("SELECT count(*) FROM orders WHERE tenant_id = $1", tenant_id)
