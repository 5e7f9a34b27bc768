"""Object-level authorization, generated from the route tables: another user or tenant gets 404.

Every route with an id in its path (web.app.route_tables()) is tried, with every method it has,
on user A's (or tenant A's) resource by: user B of the same tenant (customer-owned things only),
a customer of tenant B, and a staff member of tenant B holding every permission. Each answer is
404 (403 where the caller lacks the route's permission outright: that reveals nothing), and a
digest of tenant A's rows is the same afterwards. A new route with an id fails this test until
it is mapped to a resource below.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import uuid

import pytest

from tests.conftest import Api
from web.app import route_tables

# Path template -> which of A's resources each path parameter names.
RESOURCES: dict[str, dict[str, str]] = {
    "/api/v1/api-keys/{id}": {"id": "api_key"},
    "/api/v1/admin/users/{id}/kyc": {"id": "user"},
    "/api/v1/admin/users/{id}/access": {"id": "user"},
    "/api/v1/products/{id}": {"id": "product"},
    "/api/v1/products/{id}/reviews": {"id": "product"},
    "/api/v1/products/{id}/reviews/{reviewId}/helpful": {"id": "product", "reviewId": "review"},
    "/api/v1/categories/{id}": {"id": "category"},
    "/api/v1/reviews/{id}": {"id": "review"},
    "/api/v1/addresses/{id}": {"id": "address"},
    "/api/v1/cart/items/{id}": {"id": "cart_item"},
    "/api/v1/coupons/{id}": {"id": "coupon"},
    "/api/v1/orders/{id}": {"id": "order"},
    "/api/v1/orders/{id}/status": {"id": "order"},
    "/api/v1/orders/{id}/cancel": {"id": "order"},
    "/api/v1/orders/{id}/refund": {"id": "order"},
    "/api/v1/orders/{id}/tracking": {"id": "order"},
    "/api/v1/admin/orders/{id}/confirm-payment": {"id": "order"},
    "/api/v1/admin/orders/{id}/ship": {"id": "order"},
    "/api/v1/shipping/methods/{id}": {"id": "shipping_method"},
    "/api/v1/admin/refunds/{id}/approve": {"id": "refund_request"},
    "/api/v1/admin/refunds/{id}/reject": {"id": "refund_request"},
    "/api/v1/admin/price-lists/{id}": {"id": "price_list"},
    "/api/v1/admin/users/{id}/customer-groups": {"id": "user"},
    "/api/v1/webhooks/subscriptions/{id}": {"id": "webhook_subscription"},
    "/api/v1/webhooks/subscriptions/{id}/deliveries": {"id": "webhook_subscription"},
    "/api/v1/webhooks/subscriptions/{id}/ping": {"id": "webhook_subscription"},
    "/api/v1/webhooks/subscriptions/{id}/deliveries/{deliveryId}/resend": {"id": "webhook_subscription",
                                                                          "deliveryId": "webhook_delivery"},
}
# Routes whose path parameter is not another party's object, with the reason.
NOT_OBJECTS = {
    "/api/v1/cart/coupons/{code}": "a coupon code on the caller's own cart: no foreign object is addressable",
    "/pay/{token}": "sandbox hosted payment page: the path is a signed token bound to one order and tenant",
    "/pay/{token}/complete": "sandbox hosted payment page (signed token + form token)",
    "/pay/{token}/fail": "sandbox hosted payment page (signed token + form token)",
}
USER_OWNED = {"address", "cart_item", "order", "refund_request"}
BODIES: dict[tuple[str, str], dict] = {
    ("PATCH", "/api/v1/products/{id}"): {"name": "pwned"},
    ("PATCH", "/api/v1/categories/{id}"): {"name": "pwned"},
    ("PATCH", "/api/v1/admin/users/{id}/kyc"): {"kycStatus": "VERIFIED"},
    ("PATCH", "/api/v1/admin/users/{id}/access"): {"role": "staff", "permissions": ["*"]},
    ("POST", "/api/v1/products/{id}/reviews"): {"rating": 1, "content": "pwned pwned pwned"},
    ("PATCH", "/api/v1/reviews/{id}"): {"status": "REJECTED"},
    ("PATCH", "/api/v1/addresses/{id}"): {"city": "Pwned"},
    ("PATCH", "/api/v1/cart/items/{id}"): {"quantity": 2},
    ("PATCH", "/api/v1/coupons/{id}"): {"active": False},
    ("PATCH", "/api/v1/orders/{id}/status"): {"status": "CANCELLED"},
    ("POST", "/api/v1/orders/{id}/cancel"): {"reason": "pwned"},
    ("POST", "/api/v1/orders/{id}/refund"): {"reason": "pwned"},
    ("POST", "/api/v1/admin/orders/{id}/ship"): {"trackingNumber": "PWNED"},
    ("PATCH", "/api/v1/shipping/methods/{id}"): {"name": "pwned"},
    ("POST", "/api/v1/admin/refunds/{id}/approve"): {},
    ("POST", "/api/v1/admin/refunds/{id}/reject"): {"reason": "pwned"},
    ("PUT", "/api/v1/admin/price-lists/{id}"): {"name": "pwned", "customerGroup": "pwned"},
    ("PUT", "/api/v1/admin/users/{id}/customer-groups"): {"groups": ["pwned"]},
    ("PATCH", "/api/v1/webhooks/subscriptions/{id}"): {"url": "http://127.0.0.1:9/pwned"},
}
TABLES = ("users", "products", "stock", "categories", "reviews", "addresses", "carts", "cart_items", "coupons",
          "orders", "order_items", "api_keys", "payments", "shipping_methods", "refund_requests",
          "price_lists", "price_list_items", "customer_group_members", "webhook_subscriptions", "webhook_deliveries")


def id_routes() -> list:
    return [s for t in route_tables() for s in t.specs if "{" in s.full_path]


def test_every_id_route_is_mapped() -> None:
    unmapped = sorted({s.full_path for s in id_routes()} - set(RESOURCES) - set(NOT_OBJECTS))
    assert not unmapped, f"map these routes to a resource in RESOURCES (or explain in NOT_OBJECTS): {unmapped}"


async def _summary_settled(db, tenant_id, within: float = 3.0) -> None:
    """The checkout's reservation reaches products.stock_available within the summary's bound
    (engine.stock_summary); wait for it, so the digest sees only what the attackers change."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while await db.fetchval("SELECT count(*) FROM stock_summary_dirty d JOIN products p ON p.id = d.product_id"
                            " WHERE p.tenant_id = $1", tenant_id):
        assert loop.time() < deadline, "the stock summary did not settle"
        await asyncio.sleep(0.05)


async def _digest(db, tenant_id) -> str:
    h = hashlib.sha256()
    async with db.acquire() as conn:
        existing = {r["tablename"] for r in await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
        for table in TABLES:
            if table in existing:
                rows = await conn.fetch(f"SELECT t::text AS r FROM {table} t WHERE tenant_id = $1 ORDER BY 1", tenant_id)
                h.update("".join(r["r"] for r in rows).encode())
    return h.hexdigest()


async def _resources(api: Api, db, tenant, owner, staff) -> dict[str, str]:
    """A's things: made through the API where it has an endpoint, by SQL otherwise."""
    out: dict[str, str] = {"user": str(owner.id)}
    product = (await api.post("/api/v1/products", as_=staff, json={
        "name": "Owned", "sku": f"OWN-{uuid.uuid4().hex[:6]}", "price": 100, "stockQuantity": 20})).data
    out["product"] = str(product["id"])
    out["category"] = str((await api.post("/api/v1/categories", as_=staff, json={
        "name": "Owned", "slug": f"owned-{uuid.uuid4().hex[:6]}"})).data["id"])
    out["api_key"] = str((await api.post("/api/v1/api-keys", as_=staff, json={"name": "owned"})).data["id"])
    out["address"] = str((await api.post("/api/v1/addresses", as_=owner, json={
        "recipientName": "A", "street": "S 1", "city": "Moscow", "region": "Moscow", "country": "RU",
        "postalCode": "101000"})).data["id"])
    out["cart_item"] = str((await api.post("/api/v1/cart/items", as_=owner, json={
        "productId": out["product"], "quantity": 1})).data["cartItemId"])
    out["review"] = str(await db.fetchval(
        "INSERT INTO reviews (tenant_id, product_id, user_id, rating, content) VALUES ($1, $2, $3, 5, 'mine, all mine')"
        " RETURNING id", tenant.id, uuid.UUID(out["product"]), owner.id))
    coupon = await api.post("/api/v1/coupons", as_=staff, json={"code": f"OWN{uuid.uuid4().hex[:6].upper()}",
                                                               "type": "PERCENTAGE", "value": 10})
    if coupon.status == 201:
        out["coupon"] = str(coupon.data["id"])
    method = await db.fetchval(
        "INSERT INTO shipping_methods (tenant_id, name, carrier, min_days, max_days, currency, zones, weight_bands)"
        " VALUES ($1, 'Courier', 'sandbox', 1, 3, 'RUB', '[{\"countries\": [\"RU\"]}]'::jsonb,"
        " '[{\"maxGrams\": null, \"price\": \"300\"}]'::jsonb) RETURNING id", tenant.id)
    out["shipping_method"] = str(method)
    out["price_list"] = str((await api.post("/api/v1/admin/price-lists", as_=staff, json={
        "name": "Owned", "customerGroup": "owned", "items": [{"productId": out["product"], "price": 90}]})).data["id"])
    await api.put(f"/api/v1/admin/users/{owner.id}/customer-groups", as_=staff, json={"groups": ["owned"]})
    hook = await api.post("/api/v1/webhooks/subscriptions", as_=staff, json={
        "url": "http://127.0.0.1:9/hook", "events": ["order.paid"]})
    if hook.status == 201:
        out["webhook_subscription"] = hook.data["id"]
        out["webhook_delivery"] = str((await api.post(f"/api/v1/webhooks/subscriptions/{hook.data['id']}/ping",
                                                      as_=staff)).data["id"])
    order = await api.post("/api/v1/cart/checkout", as_=owner, json={
        "shippingAddressId": out["address"], "shippingMethodId": str(method), "paymentMethod": "CARD"})
    if order.status == 201:
        out["order"] = order.data["orderId"]
        out["refund_request"] = str(await db.fetchval(
            "INSERT INTO refund_requests (tenant_id, order_id, user_id, reason, requested_amount)"
            " VALUES ($1, $2, $3, 'mine', 1) RETURNING id", tenant.id, uuid.UUID(out["order"]), owner.id))
        # The checkout consumed the cart: put a line back so cart items stay addressable.
        out["cart_item"] = str((await api.post("/api/v1/cart/items", as_=owner, json={
            "productId": out["product"], "quantity": 1})).data["cartItemId"])
    return out


def _path(template: str, ids: dict[str, str], names: dict[str, str]) -> str | None:
    path = template
    for param, kind in names.items():
        if kind not in ids:
            return None
        path = path.replace("{" + param + "}", ids[kind])
    return path


async def test_nobody_else_reaches_anothers_objects(api, db, tenant, db_tenant_b) -> None:
    owner = await tenant.user("customer")
    staff = await tenant.user("staff")
    same_tenant_user = await tenant.user("customer")
    other_customer = await db_tenant_b.user("customer")
    other_staff = await db_tenant_b.user("staff")
    ids = await _resources(api, db, tenant, owner, staff)
    await _summary_settled(db, tenant.id)
    before = await _digest(db, tenant.id)
    untested, wrong = [], []
    for spec in id_routes():
        if spec.full_path in NOT_OBJECTS:
            continue
        names = RESOURCES[spec.full_path]
        path = _path(spec.full_path, ids, names)
        if path is None:
            untested.append(f"{spec.method} {spec.full_path}")
            continue
        attackers = [("tenant-B customer", other_customer), ("tenant-B staff", other_staff)]
        if set(names.values()) & USER_OWNED:
            attackers.append(("same-tenant user B", same_tenant_user))
        for label, who in attackers:
            body = BODIES.get((spec.method, spec.full_path), {} if spec.body is not None else None)
            r = await api.call(spec.method, path, as_=who, json=body)
            lacks_permission = spec.permission is not None and who.role != "staff"
            ok = r.status == 404 or (r.status == 403 and lacks_permission)
            if not ok:
                wrong.append(f"{label}: {spec.method} {spec.full_path} -> {r.status} {r.body}")
    assert not wrong, "\n".join(wrong)
    assert await _digest(db, tenant.id) == before, "tenant A's rows changed"
    if untested:
        pytest.fail(f"no resource could be made for: {untested}")


@pytest.fixture
async def db_tenant_b(db, base_settings):
    from tests.conftest import Tenant
    import secrets

    slug = f"t-b-{secrets.token_hex(5)}"
    tid = await db.fetchval("INSERT INTO tenants (slug, name) VALUES ($1, $1) RETURNING id", slug)
    return Tenant(tid, slug, db, base_settings)


def test_route_templates_use_known_parameters() -> None:
    for template, names in RESOURCES.items():
        assert set(re.findall(r"\{(\w+)\}", template)) == set(names), template
