"""Section 1b of the benchmark, the flash sale seen three more ways:
- mostly losing: every buyer wants the hot product, stock covers one in 30 (3 000 buyers, 100
  units): what a sold-out answer costs, in CPU per answer across API, PostgreSQL and Redis;
- 1, 2 and 4 API processes (batched mode, the same total of database connections): how batching
  behaves when one product's buyers are spread over processes, each with its own actor;
- one buyer at idle: checkouts one after another, nothing else running: the latency floor.
Every run checks for oversell and duplicate orders.
"""

from __future__ import annotations

import uuid

import asyncpg

from loadtests.bench.contention import Plan, _checkout, _product_violations, meter
from loadtests.bench.cpu import spent
from loadtests.bench.loadgen import closed_loop
from loadtests.bench.measure import Series
from loadtests.engine_run import EngineRun
from loadtests.fixtures import Buyer, Shop, add_products, fill_carts

LOSING_SHARE = 30          # buyers per unit in the mostly-losing sale
PROCESS_COUNTS = (1, 2, 4)
IDLE_CHECKOUTS = 60        # sequential checkouts of the idle row (quick: 15)


async def _sale(engine: EngineRun, conn: asyncpg.Connection, shop: Shop, buyers: list[Buyer], s: Series, *,
                stock: int, concurrency: int, seconds: float, count: bool, out: dict) -> None:
    """One run: a fresh hot product with `stock` units in every buyer's cart, then checkouts."""
    tenant = uuid.UUID(shop.tenant_id)
    hot = (await add_products(conn, tenant, [uuid.UUID(shop.category_ids["electronics"])], 1, stock,
                              name="Flash sale console"))[0]
    await fill_carts(conn, tenant, buyers, lambda i: hot)
    cpu = meter(engine)
    cpu0, snap0 = engine.api_cpu_seconds(), await cpu.snapshot()
    r = await closed_loop(_checkout(engine, shop, buyers), concurrency=concurrency, seconds=seconds,
                          max_requests=len(buyers))
    cpu1, snap1 = engine.api_cpu_seconds(), await cpu.snapshot()
    sold = r.statuses.get(201, 0) + r.statuses.get(200, 0)
    out["violations"] += await _product_violations(conn, hot, stock, sold)
    if not count:
        return
    answered = sold + r.statuses.get(400, 0) + r.statuses.get(409, 0)
    per = answered if s.extra.get("per") == "answer" else sold
    s.add(r, per, cpu1 - cpu0)
    s.add_cpu(spent(snap0, snap1), per)
    seen = s.extra.setdefault("statuses", {})
    for k, v in r.statuses.items():
        seen[str(k)] = seen.get(str(k), 0) + v
    s.extra["sold"] = s.extra.get("sold", 0) + sold


async def flash_variants(engine: EngineRun, shop: Shop, buyers: list[Buyer], plan: Plan, *, quick: bool) -> dict:
    c0 = plan.concurrencies[0]
    first = 1 if quick else 0  # run 0 warms up and is not counted; the quick (smoke) run skips it
    out: dict = {"series": [], "violations": [], "losing_share": LOSING_SHARE}
    processes, pool = engine.processes, engine.extra_env.get("DB_POOL_MAX")
    conn = await asyncpg.connect(engine.database_url)
    try:
        await conn.execute("UPDATE users SET kyc_status = 'VERIFIED' WHERE id = ANY($1::uuid[])",
                           [uuid.UUID(b.id) for b in buyers])
        # The configured process count last, so the API is left as the other sections expect
        # it (the same processes and pool size) without another restart.
        for n in sorted(PROCESS_COUNTS, key=lambda n: n == processes):
            engine.processes = n
            engine.restart_api(ACTOR_MODE="batched", DB_POOL_MAX=str(max(2, 64 // n)))
            s = Series(f"HTTP checkout, batched, {n} API process{'es' if n > 1 else ''}", c0, extra={"processes": n})
            for run in range(first, plan.runs + 1):  # run 0 warms the fresh processes up and is not counted
                await _sale(engine, conn, shop, buyers, s, stock=len(buyers), concurrency=c0,
                            seconds=plan.seconds if run else 1.0, count=bool(run), out=out)
            out["series"].append(s)
        out["series"].sort(key=lambda x: x.extra["processes"])
        if processes not in PROCESS_COUNTS:
            engine.processes = processes
            engine.restart_api(ACTOR_MODE="batched", **({"DB_POOL_MAX": pool} if pool else {}))

        units = max(1, len(buyers) // LOSING_SHARE)
        losing = Series(f"mostly losing: {len(buyers)} buyers, {units} units (batched)", c0,
                        extra={"per": "answer", "units": units, "buyers": len(buyers)})
        for run in range(first, plan.runs + 1):
            # Long enough for every buyer to get an answer: the figure is the cost of each answer.
            await _sale(engine, conn, shop, buyers, losing, stock=units, concurrency=c0,
                        seconds=max(plan.seconds, 30.0) if run else 1.0, count=bool(run), out=out)
        out["series"].insert(0, losing)

        idle = Series("one buyer at idle (checkouts one at a time)", 1)
        few = buyers[: 15 if quick else IDLE_CHECKOUTS]
        for run in range(first, plan.runs + 1):
            await _sale(engine, conn, shop, few, idle, stock=len(few), concurrency=1,
                        seconds=60.0 if run else 0.5, count=bool(run), out=out)
        out["series"].append(idle)
    finally:
        engine.processes = processes
        await conn.close()
    return out
