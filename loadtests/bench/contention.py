"""Sections 1 and 2 of the benchmark: the flash sale (actor mode vs one transaction per
reservation vs the raw single-row UPDATE rate) and checkout across many products (engine vs a
direct-asyncpg ceiling of the same transaction shape). Every run checks for oversell and
duplicate orders; any found is a failed benchmark."""

from __future__ import annotations

import statistics
import uuid
from dataclasses import dataclass

import asyncpg

from loadtests import invariants
from loadtests.bench.direct_checkout import OK, direct_checkout, init_connection
from loadtests.bench.cpu import CpuMeter, spent
from loadtests.bench.loadgen import closed_loop, post
from loadtests.bench.measure import (
    BARE_ROW_UPDATE,
    Series,
    bare_row,
    batch_sizes,
    direct_loop,
    raw_conditional_updates,
    reservations_only,
    scrape_all,
)
from loadtests.engine_run import EngineRun
from loadtests.fixtures import Buyer, Shop, add_products, fill_carts


@dataclass
class Plan:
    runs: int
    seconds: float
    concurrencies: tuple[int, ...]
    buyers: int


def _checkout(engine: EngineRun, shop: Shop, buyers: list[Buyer]):
    url = engine.base_url + "/api/v1/cart/checkout"

    async def request(session, i: int) -> int:
        b = buyers[i]
        return await post(session, url, {"shippingAddressId": b.address_id, "shippingMethodId": shop.shipping_method_id,
                                         "paymentMethod": "CARD"},
                          {"Authorization": f"Bearer {b.token}", "Idempotency-Key": uuid.uuid4().hex})
    return request


async def _product_violations(conn: asyncpg.Connection, product_id: uuid.UUID, stock: int, ok: int) -> list[str]:
    bad = await invariants.oversell(conn)
    row = await conn.fetchrow("SELECT reserved, sold FROM stock WHERE product_id = $1", product_id)
    if ok > stock or row["reserved"] + row["sold"] > stock:
        bad.append(f"oversell: {ok} checkouts answered 2xx, {row['reserved'] + row['sold']} units taken, stock {stock}")
    dupes = await conn.fetchval(
        "SELECT count(*) FROM (SELECT o.user_id FROM orders o JOIN order_items i ON i.order_id = o.id"
        " WHERE i.product_id = $1 GROUP BY o.user_id HAVING count(*) > 1) d", product_id)
    if dupes:
        bad.append(f"duplicate orders: {dupes} buyer(s) got two orders of one cart")
    return bad


def meter(engine: EngineRun) -> CpuMeter:
    return CpuMeter(engine.database_url, engine.redis_url, engine.api_cpu_seconds)


async def flash_sale(engine: EngineRun, shop: Shop, buyers: list[Buyer], plan: Plan, *, quick: bool) -> dict:
    """Series per (mode, concurrency); the engine's stock row UPDATE rate and the same UPDATE on
    a bare one-row table (the ceiling); the reservation step alone; violations."""
    cpu = meter(engine)
    conn = await asyncpg.connect(engine.database_url)
    tenant = uuid.UUID(shop.tenant_id)
    cat = [uuid.UUID(shop.category_ids["electronics"])]
    out: dict = {"series": [], "violations": [], "batches": {}}
    try:
        await conn.execute("UPDATE users SET kyc_status = 'VERIFIED' WHERE id = ANY($1::uuid[])",
                           [uuid.UUID(b.id) for b in buyers])
        for mode in ("batched", "single"):
            for c in plan.concurrencies:
                engine.restart_api(ACTOR_MODE=mode)
                s = Series(f"HTTP checkout, {mode}", c)
                for run in range(plan.runs + 1):  # run 0 warms the fresh processes up and is not counted
                    stock = len(buyers) // 2 if quick else len(buyers)
                    hot = (await add_products(conn, tenant, cat, 1, stock, name="Flash sale console"))[0]
                    await fill_carts(conn, tenant, buyers, lambda i, hot=hot: hot)
                    cpu0, snap0 = engine.api_cpu_seconds(), await cpu.snapshot()
                    r = await closed_loop(_checkout(engine, shop, buyers), concurrency=c,
                                          seconds=plan.seconds if run else 1.0, max_requests=len(buyers))
                    cpu1, snap1 = engine.api_cpu_seconds(), await cpu.snapshot()
                    ok = r.statuses.get(201, 0) + r.statuses.get(200, 0)
                    out["violations"] += await _product_violations(conn, hot, stock, ok)
                    if not run:
                        continue
                    s.add(r, ok, cpu1 - cpu0)
                    s.add_cpu(spent(snap0, snap1), ok)
                    s.extra.setdefault("statuses", {})
                    for k, v in r.statuses.items():
                        s.extra["statuses"][str(k)] = s.extra["statuses"].get(str(k), 0) + v
                msgs, batches = batch_sizes(scrape_all(engine.base_url, engine.processes))
                s.extra["mean_batch"] = msgs / batches if batches else None
                out["series"].append(s)
        raw_stock = (await add_products(conn, tenant, cat, 1, 1_000_000_000, name="Raw update row"))[0]
        raw_id = str(await conn.fetchval("SELECT id FROM stock WHERE product_id = $1", raw_stock))
        bare_id = await bare_row(conn)
        for c in plan.concurrencies:
            # The ceiling is the database's, from at most 64 connections (the brief's figure, and
            # within max_connections of a shared server); it is the same line at every concurrency.
            # The engine's own stock row (its triggers and indexes included) beside a bare one-row
            # table, runs interleaved so drift hits both alike.
            row = Series("engine stock row UPDATE (raw, asyncpg)", c)
            bare = Series("bare one-row table UPDATE (asyncpg)", c)
            for _ in range(plan.runs):
                for s, target, sql in ((row, raw_id, None), (bare, bare_id, BARE_ROW_UPDATE)):
                    backends: list[float] = []  # the loop's own connections come and go with it: measured inside
                    rate, p50, p99 = await raw_conditional_updates(
                        engine.database_url, target, connections=min(c, 64), seconds=plan.seconds,
                        backend_cpu=backends, **({"statement": sql} if sql else {}))
                    s.rates.append(rate), s.p50s.append(p50), s.p99s.append(p99)
                    s.add_cpu({"api": 0.0, "postgres": sum(backends), "redis": 0.0}, rate * plan.seconds)
            out["series"] += [row, bare]
        # The mechanism alone: the reservation step through engine.stock in this process (no
        # HTTP, no rest of checkout), batched actors against one transaction per reservation,
        # on the raw row's stock row, with the same number of callers as connections above.
        for mode in ("batched", "single"):
            for c in sorted({min(c, 64) for c in plan.concurrencies}):
                s = Series(f"reservations only, {mode} (engine.stock in-process)", c)
                for _ in range(plan.runs):
                    rate, p50, p99, batch, refused = await reservations_only(
                        engine.database_url, raw_id, mode=mode, callers=c, seconds=plan.seconds)
                    s.rates.append(rate), s.p50s.append(p50), s.p99s.append(p99)
                    if batch is not None:
                        s.extra.setdefault("batches", []).append(batch)
                    s.extra["refused"] = s.extra.get("refused", 0) + refused
                if s.extra.get("batches"):
                    s.extra["mean_batch"] = statistics.median(s.extra.pop("batches"))
                out["series"].append(s)
    finally:
        await conn.close()
    return out


def cart_lines(ids: list[uuid.UUID], lines: int, run: int):
    """Buyer i's cart in run `run`: `lines` distinct products, spread over the catalogue."""
    n = len(ids)

    def pick(i: int) -> list[uuid.UUID]:
        base = (i * lines * 7919 + run * 104_729) % n
        return [ids[(base + j) % n] for j in range(min(lines, n))]
    return pick


async def many_products(engine: EngineRun, shop: Shop, buyers: list[Buyer], plan: Plan, *, products: int,
                        concurrency: int, lines: int) -> dict:
    """Checkout where each buyer's cart holds `lines` products among `products` (little
    contention): the engine over HTTP, then the engine's statements driven directly
    (loadtests.bench.direct_checkout), each from `concurrency` connections. Before every run
    of either side, every buyer's cart is refilled the same way, so both sides check out the
    same carts of the same buyers in the same order."""
    conn = await asyncpg.connect(engine.database_url)
    tenant = uuid.UUID(shop.tenant_id)
    method = uuid.UUID(shop.shipping_method_id)
    out: dict = {"series": [], "violations": [], "lines": lines, "buyers": len(buyers)}
    try:
        ids = await add_products(conn, tenant, [uuid.UUID(v) for v in shop.category_ids.values()], products, 1_000_000)
        engine.restart_api(ACTOR_MODE="batched")
        http, direct = Series("HTTP checkout (engine)", concurrency), Series("direct asyncpg, same statements", concurrency)
        for s in (http, direct):
            s.extra["outcomes"] = {}
        people = [(uuid.UUID(b.id), uuid.UUID(b.address_id)) for b in buyers]
        # Verified buyers: a cart above the KYC limit must not turn into a refusal on one side only.
        await conn.execute("UPDATE users SET kyc_status = 'VERIFIED' WHERE id = ANY($1::uuid[])", [p[0] for p in people])

        async def direct_one(c: asyncpg.Connection, i: int) -> str:
            return await direct_checkout(c, tenant, people[i][0], people[i][1], method)

        cpu = meter(engine)
        for run in range(plan.runs + 1):  # run 0 warms both sides up and is not counted
            await fill_carts(conn, tenant, buyers, cart_lines(ids, lines, run))
            cpu0, snap0 = engine.api_cpu_seconds(), await cpu.snapshot()
            r = await closed_loop(_checkout(engine, shop, buyers), concurrency=concurrency,
                                  seconds=plan.seconds if run else 1.0, max_requests=len(buyers))
            if run:
                snap1 = await cpu.snapshot()
                http.add(r, r.statuses.get(201, 0), engine.api_cpu_seconds() - cpu0)
                http.add_cpu(spent(snap0, snap1), r.statuses.get(201, 0))
                _count(http, r.statuses)
            await fill_carts(conn, tenant, buyers, cart_lines(ids, lines, run))
            snap0 = await cpu.snapshot()
            r = await direct_loop(engine.database_url, direct_one, connections=concurrency,
                                  seconds=plan.seconds if run else 1.0, max_items=len(buyers), init=init_connection)
            if run:
                used = spent(snap0, await cpu.snapshot())
                used["api"] = r.cpu  # the "API" of the direct side is the driver in this process
                direct.add(r, r.statuses.get(OK, 0))
                direct.add_cpu(used, r.statuses.get(OK, 0))
                _count(direct, r.statuses)
        for s in (http, direct):
            s.extra["ran_out"] = s.extra["outcomes"].get("total", 0) >= plan.runs * len(buyers)
        out["series"] += [http, direct]
        out["violations"] += await invariants.oversell(conn) + await invariants.duplicate_orders(conn)
    finally:
        await conn.close()
    return out


def _count(series: Series, statuses: dict) -> None:
    seen = series.extra["outcomes"]
    for k, v in statuses.items():
        seen[str(k)] = seen.get(str(k), 0) + v
        seen["total"] = seen.get("total", 0) + v
