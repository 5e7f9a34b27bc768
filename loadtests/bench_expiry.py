"""Benchmark: expiries per second of one sweep over N overdue orders, and jobs per second of one
worker process. Prints the figures and writes them as JSON (not a timed test).

    python -m loadtests.bench_expiry --database-url postgresql://postgres@127.0.0.1/postgres \
        --redis-url redis://127.0.0.1:6379/0 --orders 100000 --jobs 2000 --out bench_expiry.json

A scratch database is created, migrated and dropped; Redis keys live under a scratch prefix.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import secrets
import time
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import dramatiq
import redis

from engine import expiry
from engine.db import Database
from engine.migrate import migrate
from engine.settings import Settings
from workers.assembly import assemble


def _with_db(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path="/" + name))


async def _overdue_orders(dsn: str, n: int) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        tenant = await conn.fetchval("SELECT id FROM tenants WHERE slug = 'default'")
        user = await conn.fetchval("INSERT INTO users (tenant_id, email, password_hash, role) VALUES"
                                   " ($1, 'bench@example.com', 'x', 'customer') RETURNING id", tenant)
        product = await conn.fetchval("INSERT INTO products (tenant_id, name, slug, price, currency, sku)"
                                      " VALUES ($1, 'B', 'b', 1, 'RUB', 'B') RETURNING id", tenant)
        stock = await conn.fetchval("INSERT INTO stock (tenant_id, product_id, on_hand, reserved)"
                                    " VALUES ($1, $2, $3, $3) RETURNING id", tenant, product, n)
        await conn.execute(
            "INSERT INTO orders (tenant_id, user_id, order_number, status, payment_method, currency, subtotal, total,"
            " shipping_address, shipping_method, expires_at)"
            " SELECT $1, $2, 'B-' || g, 'PENDING_PAYMENT', 'CARD', 'RUB', 1, 1, '{}', '{}', now() - interval '1 minute'"
            " FROM generate_series(1, $3) g", tenant, user, n)
        await conn.execute(
            "INSERT INTO order_items (tenant_id, order_id, product_id, stock_id, product_name, sku, quantity,"
            " unit_price, total_price) SELECT $1, id, $2, $3, 'B', 'B', 1, 1, 1 FROM orders WHERE user_id = $4",
            tenant, product, stock, user)
    finally:
        await conn.close()


async def bench_sweep(settings: Settings, n: int) -> dict:
    await _overdue_orders(settings.database_url, n)
    db = Database(settings)
    await db.open()
    try:
        started = time.perf_counter()
        expired = await expiry.sweep_overdue(db, now=dt.datetime.now(dt.timezone.utc), batch_size=1000)
        seconds = time.perf_counter() - started
    finally:
        await db.close()
    return {"overdue_orders": n, "expired": expired, "seconds": round(seconds, 3),
            "expiries_per_second": round(expired / seconds, 1)}


def bench_jobs(settings: Settings, jobs: int, threads: int) -> dict:
    """Jobs/second of one worker process: `order_paid` messages (a hook that touches no rows),
    so the figure is the platform's own overhead: Redis round trips, middleware, the event loop."""
    asm = assemble(settings, background=False)
    actor = asm.actors["order_paid"]
    order_id = "00000000-0000-0000-0000-000000000001"
    for _ in range(jobs):
        actor.send(order_id)
    worker = dramatiq.Worker(asm.broker, worker_threads=threads, worker_timeout=100)
    started = time.perf_counter()
    worker.start()
    asm.broker.join(actor.queue_name, timeout=600_000)
    seconds = time.perf_counter() - started
    worker.stop()
    return {"jobs": jobs, "threads": threads, "seconds": round(seconds, 3),
            "jobs_per_second": round(jobs / seconds, 1)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--database-url", required=True, help="server URL; a scratch database is made on it")
    p.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    p.add_argument("--orders", type=int, default=2000, help="overdue orders to sweep (the issue asks 100000)")
    p.add_argument("--jobs", type=int, default=1000)
    p.add_argument("--threads", type=int, default=4)
    p.add_argument("--out", default="bench_expiry.json")
    a = p.parse_args()
    name = f"bench_expiry_{secrets.token_hex(4)}"
    admin = _with_db(a.database_url, "postgres")

    async def create() -> None:
        c = await asyncpg.connect(admin)
        await c.execute(f'CREATE DATABASE "{name}"')
        await c.close()
        await migrate(_with_db(a.database_url, name))

    async def drop() -> None:
        c = await asyncpg.connect(admin)
        await c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await c.close()

    settings = Settings(database_url=_with_db(a.database_url, name), redis_url=a.redis_url,
                        redis_prefix=f"bench{secrets.token_hex(3)}", dev_mode=True)
    asyncio.run(create())
    try:
        results = {"sweep": asyncio.run(bench_sweep(settings, a.orders)),
                   "worker": bench_jobs(settings, a.jobs, a.threads)}
    finally:
        asyncio.run(drop())
        r = redis.Redis.from_url(a.redis_url)
        keys = list(r.scan_iter(f"{settings.redis_prefix}:*"))
        if keys:
            r.delete(*keys)
    print(json.dumps(results, indent=2))
    with open(a.out, "w") as f:
        json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
