"""Product reads from memory: ETag / 304 without the database, Cache-Control, the cache kept
honest across processes (LISTEN/NOTIFY) and within its TTL, gzip for large lists.

Two apps made by `make_client` are two "processes": each has its own cache, pool and listener.
"""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest

from engine.catalogue.changes import APPLICATION_NAME
from tests.conftest import Api
from tests.integration.conftest_catalogue import make_product
from web import keys
from web.product_reads import PRODUCT_CACHE


@pytest.fixture
async def staff(tenant):
    return await tenant.user("staff")


async def _wait_connected(client) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        tasks = [t for t in asyncio.all_tasks() if t.get_name() == "product-change-listener"]
        if tasks:
            break
        await asyncio.sleep(0.05)
    # The listener clears the cache when it (re)connects; give it that moment before caching.
    await asyncio.sleep(0.3)


def _header(r, name: str) -> str | None:
    return {k.lower(): v for k, v in r.headers.items()}.get(name.lower())


async def _price_seen(api: Api, pid: str, want: float, within: float) -> float | None:
    """Seconds until an anonymous read shows `want`, or None when it does not within `within`."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < within:
        if (await api.get(f"/api/v1/products/{pid}")).data["price"] == want:
            return time.monotonic() - t0
        await asyncio.sleep(0.02)
    return None


async def test_etag_then_304_without_touching_the_database(make_client, tenant, staff):
    client = await make_client(catalogue_cache_seconds=30.0)  # fresh for the whole test, however slow the machine
    api = Api(client, tenant.slug)
    pid = (await make_product(api, staff, price=120))["id"]
    first = await api.get(f"/api/v1/products/{pid}")
    assert first.status == 200 and first.data["price"] == 120
    etag = _header(first, "ETag")
    assert etag.startswith('"') and first.headers["Cache-Control"] == "public, no-cache"
    again = await api.get(f"/api/v1/products/{pid}", headers={"If-None-Match": etag})
    assert again.status == 304 and again.raw == b"" and _header(again, "ETag") == etag

    # Take the database away from the app: a cached document still answers, and a matching
    # If-None-Match is 304 (any database trip would now fail with an error status).
    db = client.app[keys.DB]
    await db.close()
    try:
        r = await api.get(f"/api/v1/products/{pid}", headers={"If-None-Match": f'"stale", W/{etag}'})
        assert r.status == 304, r.body
        r = await api.get(f"/api/v1/products/{pid}")
        assert r.status == 200 and r.raw == first.raw
        r = await api.get(f"/api/v1/products/{pid}", headers={"If-None-Match": '"another"'})
        assert r.status == 200 and r.raw == first.raw
    finally:
        await db.open()


async def test_signed_in_reads_bypass_the_shared_cache(api, staff, tenant, db):
    customer = await tenant.user("customer")
    pid = (await make_product(api, staff, price=100))["id"]
    anon = await api.get(f"/api/v1/products/{pid}")
    await db.execute("UPDATE products SET price = 150 WHERE id = $1", uuid.UUID(pid))  # no notification
    mine = await api.get(f"/api/v1/products/{pid}", as_=customer)
    assert mine.data["price"] == 150 and mine.headers["Cache-Control"] == "private, no-store"
    assert _header(mine, "ETag")
    assert (await api.get(f"/api/v1/products/{pid}")).data["price"] == anon.data["price"] == 100  # still cached


async def test_an_edit_in_one_process_reaches_the_others_cache_at_once(make_client, tenant, staff):
    # A TTL of a minute: only the notification can make the change visible within the test.
    long = {"catalogue_cache_seconds": 60.0, "catalogue_cache_max_seconds": 60.0}
    a, b = await make_client(**long), await make_client(**long)
    api_a, api_b = Api(a, tenant.slug), Api(b, tenant.slug)
    await _wait_connected(b)
    pid = (await make_product(api_a, staff, price=100))["id"]
    assert (await api_b.get(f"/api/v1/products/{pid}")).data["price"] == 100  # cached in b
    r = await api_a.patch(f"/api/v1/products/{pid}", as_=staff, json={"price": 175})
    assert r.status == 200, r.body
    seen = await _price_seen(api_b, pid, 175, within=2.0)
    assert seen is not None and seen < 2.0
    assert (await api_a.get(f"/api/v1/products/{pid}")).data["price"] == 175  # the writer reads its write

    r = await api_a.delete(f"/api/v1/products/{pid}", as_=staff)
    assert r.status == 200
    deadline = time.monotonic() + 2.0
    while (await api_b.get(f"/api/v1/products/{pid}")).status != 404:
        assert time.monotonic() < deadline, "the delete did not reach the other process"
        await asyncio.sleep(0.02)


async def _listeners(db) -> list[int]:
    return [r["pid"] for r in await db.fetch(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND application_name = $1",
        APPLICATION_NAME)]


async def test_a_listener_that_lost_its_connection_reconnects_and_invalidates_again(make_client, tenant, staff, db):
    long = {"catalogue_cache_seconds": 60.0, "catalogue_cache_max_seconds": 60.0}
    a, b = await make_client(**long), await make_client(**long)
    api_a, api_b = Api(a, tenant.slug), Api(b, tenant.slug)
    deadline = time.monotonic() + 10
    while len(await _listeners(db)) < 2:
        assert time.monotonic() < deadline, "listeners did not connect"
        await asyncio.sleep(0.05)
    before = await _listeners(db)
    await db.execute("SELECT pg_terminate_backend(pid) FROM unnest($1::int[]) pid", before)
    deadline = time.monotonic() + 10
    while len(set(await _listeners(db)) - set(before)) < 2:
        assert time.monotonic() < deadline, "listeners did not reconnect"
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.2)  # the reconnect empties the cache once; let that pass before caching
    pid = (await make_product(api_a, staff, price=100))["id"]
    assert (await api_b.get(f"/api/v1/products/{pid}")).data["price"] == 100
    assert (await api_a.patch(f"/api/v1/products/{pid}", as_=staff, json={"price": 120})).status == 200
    assert await _price_seen(api_b, pid, 120, within=2.0) is not None


async def test_unnotified_changes_like_stock_show_within_the_fresh_window(make_client, tenant, staff, db):
    # Reservations reach the product's figure through the stock summary (folded every
    # STOCK_SUMMARY_INTERVAL_MS), then the cached document within its fresh window.
    ttl, summary = 0.5, 0.2
    c = await make_client(catalogue_cache_seconds=ttl, catalogue_cache_max_seconds=60.0,
                          stock_summary_interval_ms=int(summary * 1000))
    api = Api(c, tenant.slug)
    pid = (await make_product(api, staff, price=100, stockQuantity=10))["id"]
    assert (await api.get(f"/api/v1/products/{pid}")).data["stockQuantity"] == 10
    # A sale moves stock without notifying the cache (that would be one notification per sale).
    await db.execute("UPDATE stock SET reserved = reserved + 3 WHERE product_id = $1", uuid.UUID(pid))
    t0 = time.monotonic()
    while (await api.get(f"/api/v1/products/{pid}")).data["stockQuantity"] != 7:
        assert time.monotonic() - t0 < summary + ttl + 0.5, "stock stale beyond the documented bound"
        await asyncio.sleep(0.02)


async def test_a_stale_document_is_confirmed_by_its_probe_and_dropped_at_the_ttl(make_client, tenant, staff, db):
    c = await make_client(catalogue_cache_seconds=0.2, catalogue_cache_max_seconds=1.5)
    api = Api(c, tenant.slug)
    pid = (await make_product(api, staff, description="first words"))["id"]
    first = await api.get(f"/api/v1/products/{pid}")
    # A change the probe does not look at (no edit stamp, no stock, no rating): the document is
    # confirmed by its probe after the fresh window and served as cached until the TTL ...
    await db.execute("UPDATE products SET description = 'second words' WHERE id = $1", uuid.UUID(pid))
    await asyncio.sleep(0.4)
    again = await api.get(f"/api/v1/products/{pid}")
    assert again.data["description"] == "first words" and _header(again, "ETag") == _header(first, "ETag")
    assert c.app[PRODUCT_CACHE].confirmed >= 1
    # ... and no longer: after CATALOGUE_CACHE_MAX_SECONDS it is read again in full.
    t0 = time.monotonic()
    while (await api.get(f"/api/v1/products/{pid}")).data["description"] != "second words":
        assert time.monotonic() - t0 < 1.5 + 0.5, "served past the cache's TTL"
        await asyncio.sleep(0.05)


async def test_large_lists_are_gzipped_for_clients_that_accept_it(make_client, tenant, staff):
    c = await make_client(compress_min_bytes=2000)
    api = Api(c, tenant.slug)
    for _ in range(6):
        await make_product(api, staff, description="long words " * 40)
    r = await api.get("/api/v1/products", params={"pageSize": "50"}, headers={"Accept-Encoding": "gzip, deflate"})
    assert r.status == 200 and len(r.data["products"]) == 6
    assert r.headers.get("Content-Encoding") == "gzip" and "Accept-Encoding" in r.headers.get("Vary", "")
    plain = await api.get("/api/v1/products", params={"pageSize": "50"}, headers={"Accept-Encoding": "identity"})
    assert plain.status == 200 and "Content-Encoding" not in plain.headers
    small = await api.get("/api/v1/categories", headers={"Accept-Encoding": "gzip"})
    assert "Content-Encoding" not in small.headers
