"""The demo seeder: what it creates, that a second run adds nothing, and that the API serves it."""

from __future__ import annotations

import secrets

from argon2 import PasswordHasher

from ops.seed import seed
from tests.conftest import Api


async def test_seed_is_complete_and_idempotent(database_url, db, client):
    slug = f"seed-{secrets.token_hex(4)}"
    ticks: list[tuple[int, int]] = []
    first = await seed(database_url, products=30, tenant_slug=slug, progress=lambda d, t: ticks.append((d, t)))
    assert (first["categories"], first["products"], first["shipping_methods"], first["coupons"], first["accounts"]) \
        == (20, 30, 3, 2, 3)
    assert ticks[-1] == (30, 30)
    again = await seed(database_url, products=30, tenant_slug=slug)
    assert (again["categories"], again["products"], again["shipping_methods"], again["coupons"], again["accounts"]) \
        == (0, 0, 0, 0, 0)
    more = await seed(database_url, products=35, tenant_slug=slug)
    assert more["products"] == 5

    tid = await db.fetchval("SELECT id FROM tenants WHERE slug = $1", slug)
    count = lambda sql: db.fetchval(sql, tid)  # noqa: E731
    assert await count("SELECT count(*) FROM products WHERE tenant_id = $1") == 35
    assert await count("SELECT count(*) FROM product_variants WHERE tenant_id = $1") == 7 * 3
    assert await count("SELECT count(*) FROM product_images WHERE tenant_id = $1") > 35
    assert await count("SELECT count(*) FROM addresses WHERE tenant_id = $1") == 3
    assert await count("SELECT count(*) FROM shipping_methods WHERE tenant_id = $1") == 3
    # The denormalised summaries match the rows they summarise.
    assert await count("SELECT count(*) FROM products p WHERE tenant_id = $1 AND stock_available <>"
                       " (SELECT sum(available) FROM stock s WHERE s.product_id = p.id)") == 0
    assert await count("SELECT sum(product_count) FROM categories WHERE tenant_id = $1") == 35
    slugs = {r["slug"] for r in await db.fetch("SELECT slug FROM categories WHERE tenant_id = $1", tid)}
    assert {"footwear", "apparel", "accessories", "electronics", "home", "health-wellness",
            "health-supplements", "vitamins"} <= slugs
    coupons = {r["code"]: r for r in await db.fetch("SELECT * FROM coupons WHERE tenant_id = $1", tid)}
    assert (coupons["WELCOME10"]["kind"], coupons["WELCOME10"]["value"]) == ("PERCENTAGE", 10)
    assert (coupons["FIXED500"]["kind"], coupons["FIXED500"]["value"], coupons["FIXED500"]["min_order"]) == ("FIXED", 500, 3000)
    users = {r["email"]: r for r in await db.fetch("SELECT * FROM users WHERE tenant_id = $1", tid)}
    assert PasswordHasher().verify(users["demo@example.com"]["password_hash"], "demo-password-1")
    assert users["admin@example.com"]["role"] == "staff" and users["admin@example.com"]["permissions"] == ["*"]
    partner = users["partner@example.com"]
    assert partner["kyc_status"] == "VERIFIED"
    assert await db.fetchval("SELECT balance FROM partner_balances WHERE user_id = $1", partner["id"]) > 0

    api = Api(client, slug)
    r = await api.get("/api/v1/products", params={"category": "health-wellness", "pageSize": "100"})
    assert r.body["meta"]["pagination"]["total"] > 0
    detail = (await api.get(f"/api/v1/products/{r.data['products'][0]['id']}")).data
    assert detail["category"]["breadcrumb"][0]["slug"] == "health-wellness" and detail["images"]
