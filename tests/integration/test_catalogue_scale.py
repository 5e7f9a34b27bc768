"""At scale every list / search / filter / sort combination is served from indexes: the plan of
each page query and each count query has no sequential scan of `products`.

A few thousand products are bulk-loaded into one tenant by the seeder (COPY), the table is
vacuumed and analysed as autovacuum would, and `enable_seqscan` stays ON: the planner is free
to choose a sequential scan, and must not find it cheaper.
"""

from __future__ import annotations

import itertools
import json
import secrets
from decimal import Decimal

import pytest

from engine.catalogue.categories import subtree_ids
from engine.catalogue.listing import ProductListing, count_query, page_query, search_query
from ops.seed import seed

PRODUCTS = 4000


def seq_scans(plan: dict) -> list[str]:
    found = []
    if plan.get("Node Type") == "Seq Scan" and plan.get("Relation Name") == "products":
        found.append(plan["Node Type"])
    for child in plan.get("Plans", ()):
        found += seq_scans(child)
    return found


@pytest.fixture
async def big_tenant(database_url, db):
    slug = f"scale-{secrets.token_hex(4)}"
    await seed(database_url, products=PRODUCTS, tenant_slug=slug, demo_accounts=False)
    async with db.acquire() as conn:
        await conn.execute("VACUUM ANALYZE products")
        await conn.execute("ANALYZE categories")
    tenant_id = await db.fetchval("SELECT id FROM tenants WHERE slug = $1", slug)
    return tenant_id


FILTERS = {
    "none": {},
    "category": "category",
    "price": {"min_price": Decimal(1000), "max_price": Decimal(3000)},
    "tags": {"tags": ("audio",)},
    "two-tags": {"tags": ("health", "bestseller")},
    "search": {"search": search_query("headphones")},
    "status-active": {"status": "ACTIVE"},
    "status-out-of-stock": {"status": "OUT_OF_STOCK"},
    "active-false": {"active": False},
    "search+price": {"search": search_query("vitamin"), "min_price": Decimal(500)},
}
SORTS = [None, "price", "name", "createdAt", "popularity", "stock"]


async def test_no_sequential_scan_of_products(big_tenant, db):
    tenant_id = big_tenant
    async with db.acquire() as conn:
        category = await subtree_ids(conn, tenant_id, slug="health-wellness")
        offenders = []
        cases = list(itertools.product(FILTERS.items(), SORTS, ("asc", "desc"), (1, 50)))
        cases += [((f"staff-{s}", {"status": s}), None, "desc", 1) for s in ("DRAFT", "ARCHIVED")]
        for (name, spec), sort, order, page in cases:
            if spec == "category":
                spec = {"category_ids": category}
            staff = name.startswith("staff")
            listing = ProductListing(tenant_id=tenant_id, page=page, page_size=20, sort=sort, order=order,
                                     staff=staff, **spec)
            for build in (page_query, count_query):
                sql, args = build(listing)
                plan = json.loads(await conn.fetchval(f"EXPLAIN (FORMAT JSON) {sql}", *args))[0]["Plan"]
                if seq_scans(plan):
                    offenders.append((name, sort, order, page, build.__name__))
        assert await conn.fetchval("SHOW enable_seqscan") == "on"
    assert offenders == [], "\n".join(map(str, offenders))


async def test_the_listing_answers_correctly_at_scale(big_tenant, client, db):
    from tests.conftest import Api

    slug = await db.fetchval("SELECT slug FROM tenants WHERE id = $1", big_tenant)
    api = Api(client, slug)
    r = await api.get("/api/v1/products", params={"pageSize": "100", "page": "40", "sortBy": "price"})
    assert r.body["meta"]["pagination"]["total"] == PRODUCTS and len(r.data["products"]) == 100
    prices = [p["price"] for p in r.data["products"]]
    assert prices == sorted(prices)
    r = await api.get("/api/v1/products", params={"search": "headphones", "tags": "audio"})
    assert r.body["meta"]["pagination"]["total"] > 0
    assert all("Headphones" in p["name"] for p in r.data["products"])
