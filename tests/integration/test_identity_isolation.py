"""Object-level and tenant isolation, swept across the resources a customer owns: another user
of the same tenant, and a user of another tenant, get 404 for each of user A's ids (never 403),
and nothing of A's changes. Also the real checkout's financial budget."""

from __future__ import annotations

import asyncio
import uuid

from tests.conftest import Tenant
from tests.integration.conftest_identity import header_ints, probe_api, unique_prefix
from tests.integration.conftest_orders import fill_cart, make_buyer, make_product, make_shipping_method

BASE = "/api/v1"


async def _other_tenant(db, base_settings) -> Tenant:
    slug = f"t-{uuid.uuid4().hex[:10]}"
    tid = await db.fetchval("INSERT INTO tenants (slug, name) VALUES ($1, $1) RETURNING id", slug)
    return Tenant(tid, slug, db, base_settings)


async def _placed_order(api, tenant, db):
    product = await make_product(db, tenant.id, stock=10)
    method = await make_shipping_method(db, tenant.id)
    buyer = await make_buyer(tenant, db, [(product, 1)])
    r = await api.post(f"{BASE}/cart/checkout", as_=buyer.user, json=buyer.body(method))
    assert r.status == 201, r.body
    order_id = r.data.get("orderId") or r.data.get("id") or r.data["order"]["id"]
    await fill_cart(db, tenant.id, buyer.user.id, [(product, 2)])  # a fresh cart line to aim at
    item = await db.fetchval("SELECT ci.id FROM cart_items ci JOIN carts c ON c.id = ci.cart_id"
                             " WHERE c.user_id = $1", buyer.user.id)
    return buyer, order_id, item, product


async def test_other_users_and_tenants_get_404_for_each_of_a_users_resources(api, tenant, db, base_settings):
    a, order_id, item_id, product = await _placed_order(api, tenant, db)
    b = await tenant.user("customer")
    other = await _other_tenant(db, base_settings)
    c = await other.user("customer")
    c_staff = await other.user("staff")
    attempts = [
        ("GET", f"{BASE}/addresses/{a.address_id}", None),
        ("PATCH", f"{BASE}/addresses/{a.address_id}", {"city": "Elsewhere"}),
        ("DELETE", f"{BASE}/addresses/{a.address_id}", None),
        ("PATCH", f"{BASE}/cart/items/{item_id}", {"quantity": 5}),
        ("DELETE", f"{BASE}/cart/items/{item_id}", None),
        ("GET", f"{BASE}/orders/{order_id}", None),
        ("POST", f"{BASE}/orders/{order_id}/cancel", {"reason": "not mine"}),
    ]
    for who in (b, c, c_staff):
        for method, path, body in attempts:
            r = await api.call(method, path, as_=who, json=body)
            assert r.status == 404 and r.error["code"].endswith("NOT_FOUND"), (who.role, method, path, r.body)
    # Another tenant's staff cannot move the order either.
    r = await api.patch(f"{BASE}/orders/{order_id}/status", as_=c_staff, json={"status": "PROCESSING"})
    assert r.status == 404, r.body
    # Lists show nothing of A's.
    for who in (b, c):
        assert (await api.get(f"{BASE}/addresses", as_=who)).data["addresses"] == []
        assert (await api.get(f"{BASE}/orders", as_=who)).body["meta"]["pagination"]["total"] == 0
        assert (await api.get(f"{BASE}/cart", as_=who)).status == 200
    # Nothing of A's changed.
    assert (await api.get(f"{BASE}/addresses/{a.address_id}", as_=a.user)).data["city"] == "Moscow"
    assert await db.fetchval("SELECT quantity FROM cart_items WHERE id = $1", item_id) == 2
    r = await api.get(f"{BASE}/orders/{order_id}", as_=a.user)
    assert r.status == 200 and r.data["status"] == "PENDING_PAYMENT"


async def test_a_tenant_cannot_read_another_tenants_catalogue_by_id(api, tenant, db, base_settings):
    product = await make_product(db, tenant.id)
    other = await _other_tenant(db, base_settings)
    r = await api.get(f"{BASE}/products/{product}", headers={"X-Tenant": other.slug})
    assert r.status == 404 and r.error["code"] == "PRODUCT_NOT_FOUND"
    assert (await api.get(f"{BASE}/products/{product}")).status == 200


async def test_real_checkout_third_within_a_minute_is_429_and_ten_concurrent_pass_two(base_settings, tenant, db):
    async with probe_api(base_settings, tenant.slug, redis_prefix=unique_prefix(), rate_financial=2) as api:
        product = await make_product(db, tenant.id, stock=100)
        method = await make_shipping_method(db, tenant.id)
        buyer = await make_buyer(tenant, db, [(product, 1)])
        statuses = []
        for _ in range(3):
            await fill_cart(db, tenant.id, buyer.user.id, [])
            if not await db.fetchval("SELECT count(*) FROM cart_items ci JOIN carts c ON c.id = ci.cart_id"
                                     " WHERE c.user_id = $1", buyer.user.id):
                await fill_cart(db, tenant.id, buyer.user.id, [(product, 1)])
            r = await api.post(f"{BASE}/cart/checkout", as_=buyer.user, json=buyer.body(method))
            statuses.append(r.status)
        assert statuses == [201, 201, 429], statuses
        assert header_ints(r) | {"reset": 0} == {"limit": 2, "remaining": 0, "reset": 0, "policy": "financial"}
        assert r.error["code"] == "RATE_LIMIT_EXCEEDED" and int(r.headers["Retry-After"]) >= 1

        other = await make_buyer(tenant, db, [(product, 1)])
        results = await asyncio.gather(*[api.post(f"{BASE}/cart/checkout", as_=other.user, json=other.body(method))
                                         for _ in range(10)])
        refused = [r for r in results if r.status == 429]
        assert len(refused) == 8, [r.status for r in results]
        # Two got past the limiter; the per-user actor lets one of them place the order.
        assert await db.fetchval("SELECT count(*) FROM orders WHERE user_id = $1", other.user.id) == 1
