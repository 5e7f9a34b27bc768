"""Sections 1 and 2 of the benchmark: the flash sale (actor mode vs one transaction per
reservation vs the raw single-row UPDATE rate) and checkout across many products (engine vs a
direct-asyncpg ceiling of the same transaction shape). Every run checks for oversell and
duplicate orders; any found is a failed benchmark."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass

import asyncpg

from loadtests import invariants
from loadtests.bench.loadgen import closed_loop, post
from loadtests.bench.measure import Series, batch_sizes, direct_loop, raw_conditional_updates, scrape_all
from loadtests.engine_run import EngineRun
from loadtests.fixtures import Buyer, Shop, add_products, fill_carts


@dataclass
class Plan:
    runs: int
    seconds: float
    concurrencies: tuple[int, ...]
    buyers: int


def _checkout(engine: EngineRun, shop: Shop, buyers: list[Buyer]):  # noqa: ANN202
    url = engine.base_url + "/api/v1/cart/checkout"

    async def request(session, i: int) -> int:  # noqa: ANN001
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


async def flash_sale(engine: EngineRun, shop: Shop, buyers: list[Buyer], plan: Plan, *, quick: bool) -> dict:
    """Series per (mode, concurrency), plus the raw single-row update rate, plus violations."""
    conn = await asyncpg.connect(engine.database_url)
    tenant = uuid.UUID(shop.tenant_id)
    cat = [uuid.UUID(shop.category_ids["electronics"])]
    out: dict = {"series": [], "violations": [], "batches": {}}
    try:
        for mode in ("batched", "single"):
            for c in plan.concurrencies:
                engine.restart_api(ACTOR_MODE=mode)
                s = Series(f"HTTP checkout, {mode}", c)
                for _ in range(plan.runs):
                    stock = len(buyers) // 2 if quick else len(buyers)
                    hot = (await add_products(conn, tenant, cat, 1, stock, name="Flash sale console"))[0]
                    await fill_carts(conn, tenant, buyers, lambda i: hot)
                    cpu0 = engine.api_cpu_seconds()
                    r = await closed_loop(_checkout(engine, shop, buyers), concurrency=c, seconds=plan.seconds,
                                          max_requests=len(buyers))
                    ok = r.statuses.get(201, 0) + r.statuses.get(200, 0)
                    s.add(r, ok, engine.api_cpu_seconds() - cpu0)
                    s.extra.setdefault("statuses", {})
                    for k, v in r.statuses.items():
                        s.extra["statuses"][str(k)] = s.extra["statuses"].get(str(k), 0) + v
                    out["violations"] += await _product_violations(conn, hot, stock, ok)
                msgs, batches = batch_sizes(scrape_all(engine.base_url, engine.processes))
                s.extra["mean_batch"] = msgs / batches if batches else None
                out["series"].append(s)
        raw_stock = (await add_products(conn, tenant, cat, 1, 1_000_000_000, name="Raw update row"))[0]
        raw_id = str(await conn.fetchval("SELECT id FROM stock WHERE product_id = $1", raw_stock))
        for c in plan.concurrencies:
            # The ceiling is the database's, from at most 64 connections (the brief's figure, and
            # within max_connections of a shared server); it is the same line at every concurrency.
            s = Series("raw single-row UPDATE (asyncpg)", c)
            for _ in range(plan.runs):
                rate, p50, p99 = await raw_conditional_updates(engine.database_url, raw_id, connections=min(c, 64),
                                                               seconds=plan.seconds)
                s.rates.append(rate), s.p50s.append(p50), s.p99s.append(p99)
            out["series"].append(s)
    finally:
        await conn.close()
    return out


_ORDER = ("INSERT INTO orders (tenant_id, user_id, order_number, status, payment_method, currency, subtotal, tax,"
          " shipping, total, shipping_address, shipping_method, expires_at)"
          " VALUES ($1, $2, 'B-' || next_order_sequence($1), 'PENDING_PAYMENT', 'CARD', 'RUB', $3, $3::numeric * 0.2, 350,"
          " $3::numeric * 1.2 + 350, $4::jsonb, $5::jsonb, now() + interval '30 minutes') RETURNING id")


async def direct_checkout(conn: asyncpg.Connection, tenant: uuid.UUID, buyer: Buyer) -> bool:
    """The checkout's transaction shape driven directly: lock the cart, read lines with prices,
    reserve with a conditional UPDATE, write order, lines, history and outbox, empty the cart."""
    uid = uuid.UUID(buyer.id)
    async with conn.transaction():
        lines = await conn.fetch(
            "SELECT c.id AS cart_id, i.product_id, i.quantity, p.price, p.name, p.sku, s.id AS stock_id"
            " FROM carts c JOIN cart_items i ON i.cart_id = c.id JOIN products p ON p.id = i.product_id"
            " JOIN stock s ON s.product_id = p.id AND s.variant_id IS NULL"
            " WHERE c.user_id = $1 AND c.tenant_id = $2 ORDER BY s.id FOR UPDATE OF c", uid, tenant)
        if not lines:
            return False
        address = await conn.fetchrow("SELECT recipient_name, street, city, country, postal_code FROM addresses"
                                      " WHERE id = $1 AND user_id = $2", uuid.UUID(buyer.address_id), uid)
        for line in lines:
            if await conn.fetchval("UPDATE stock SET reserved = reserved + $2 WHERE id = $1 AND available >= $2"
                                   " RETURNING id", line["stock_id"], line["quantity"]) is None:
                raise asyncpg.exceptions.RaiseError("insufficient stock")
        subtotal = sum(line["price"] * line["quantity"] for line in lines)
        order = await conn.fetchval(_ORDER, tenant, uid, subtotal, json.dumps(dict(address)),
                                    json.dumps({"name": "Courier", "carrier": "sandbox"}))
        await conn.executemany(
            "INSERT INTO order_items (tenant_id, order_id, product_id, stock_id, product_name, sku, quantity,"
            " unit_price, total_price) VALUES ($1, $2, $3, $4, $5, $6, $7::int, $8::numeric, $8::numeric * $7::int)",
            [(tenant, order, ln["product_id"], ln["stock_id"], ln["name"], ln["sku"], ln["quantity"], ln["price"])
             for ln in lines])
        await conn.execute("INSERT INTO order_status_history (tenant_id, order_id, status, changed_by)"
                           " VALUES ($1, $2, 'PENDING_PAYMENT', $3)", tenant, order, f"user:{uid}")
        await conn.execute("INSERT INTO outbox (tenant_id, job, payload, not_before) VALUES"
                           " ($1, 'expire_order', $2::jsonb, now() + interval '30 minutes')",
                           tenant, json.dumps({"orderId": str(order)}))
        await conn.execute("DELETE FROM cart_items WHERE cart_id = $1", lines[0]["cart_id"])
    return True


async def many_products(engine: EngineRun, shop: Shop, buyers: list[Buyer], plan: Plan, *, products: int,
                        concurrency: int) -> dict:
    """Checkout where each buyer wants a different product among `products` (little contention)."""
    conn = await asyncpg.connect(engine.database_url)
    tenant = uuid.UUID(shop.tenant_id)
    out: dict = {"series": [], "violations": []}
    try:
        ids = await add_products(conn, tenant, [uuid.UUID(v) for v in shop.category_ids.values()], products, 1_000_000)
        engine.restart_api(ACTOR_MODE="batched")
        http, direct = Series("HTTP checkout (engine)", concurrency), Series("direct asyncpg, same transaction", concurrency)
        for run in range(plan.runs):
            await fill_carts(conn, tenant, buyers, lambda i: ids[(i * 7919 + run) % len(ids)])
            cpu0 = engine.api_cpu_seconds()
            r = await closed_loop(_checkout(engine, shop, buyers), concurrency=concurrency, seconds=plan.seconds,
                                  max_requests=len(buyers))
            http.add(r, r.statuses.get(201, 0) + r.statuses.get(200, 0), engine.api_cpu_seconds() - cpu0)
            http.extra.setdefault("errors", 0)
            http.extra["errors"] += sum(v for k, v in r.statuses.items() if k >= 300)
            await fill_carts(conn, tenant, buyers, lambda i: ids[(i * 7919 + run) % len(ids)])
            rate, p50, p99, _ = await direct_loop(
                engine.database_url, lambda c, i: direct_checkout(c, tenant, buyers[i]), connections=concurrency,
                seconds=plan.seconds, max_items=len(buyers))
            direct.rates.append(rate), direct.p50s.append(p50), direct.p99s.append(p99)
        out["series"] += [http, direct]
        out["violations"] += await invariants.oversell(conn) + await invariants.duplicate_orders(conn)
    finally:
        await conn.close()
    return out
