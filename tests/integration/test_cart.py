"""The cart over HTTP: every endpoint, every documented error, the storefront shapes."""

from __future__ import annotations

import asyncio
import re
import uuid

import pytest

from tests.conftest import Api
from tests.integration.conftest_cart import make_product, make_variant
from web.resources import USER_ACTORS

ISO_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")
NUMBER = (int, float)


def assert_cart_shape(cart: dict) -> None:
    """CartResponse of the storefront document, field by field."""
    assert set(cart) >= {"id", "items", "summary", "appliedCoupons", "estimatedCommission",
                         "estimatedCareerPoints", "updatedAt"}
    uuid.UUID(cart["id"])
    assert ISO_Z.match(cart["updatedAt"])
    s = cart["summary"]
    assert set(s) >= {"subtotal", "discount", "shipping", "tax", "total", "currency", "itemCount", "totalQuantity"}
    for name in ("subtotal", "discount", "tax", "total"):
        assert isinstance(s[name], NUMBER) and not isinstance(s[name], bool), name
    assert s["shipping"] is None
    assert isinstance(s["currency"], str)
    assert isinstance(s["itemCount"], int) and isinstance(s["totalQuantity"], int)
    for c in cart["appliedCoupons"]:
        assert set(c) >= {"code", "discount", "type"} and c["type"] in ("PERCENTAGE", "FIXED")
        assert isinstance(c["code"], str) and isinstance(c["discount"], NUMBER)
    for name in ("estimatedCommission", "estimatedCareerPoints"):
        assert cart[name] is None or isinstance(cart[name], NUMBER)
    for item in cart["items"]:
        assert set(item) >= {"id", "product", "variantId", "variantAttributes", "quantity", "unitPrice",
                             "totalPrice", "addedAt"}
        uuid.UUID(item["id"])
        p = item["product"]
        assert set(p) >= {"id", "name", "slug", "sku", "price", "compareAtPrice", "thumbnailUrl", "status",
                          "stockQuantity"}
        uuid.UUID(p["id"])
        for name in ("name", "slug", "sku", "status"):
            assert isinstance(p[name], str)
        assert isinstance(p["price"], NUMBER)
        assert p["compareAtPrice"] is None or isinstance(p["compareAtPrice"], NUMBER)
        assert p["thumbnailUrl"] is None or isinstance(p["thumbnailUrl"], str)
        assert p["stockQuantity"] is None or isinstance(p["stockQuantity"], int)
        assert item["variantId"] is None or uuid.UUID(item["variantId"])
        va = item["variantAttributes"]
        assert va is None or all(isinstance(k, str) and isinstance(v, str) for k, v in va.items())
        assert isinstance(item["quantity"], int)
        assert isinstance(item["unitPrice"], NUMBER) and isinstance(item["totalPrice"], NUMBER)
        assert ISO_Z.match(item["addedAt"])


def assert_short_summary(s: dict) -> None:
    assert set(s) == {"total", "itemCount", "totalQuantity"}
    assert isinstance(s["total"], NUMBER) and isinstance(s["itemCount"], int) and isinstance(s["totalQuantity"], int)


async def add(api: Api, user, product_id, quantity=1, variant_id=None):
    body = {"productId": str(product_id), "quantity": quantity}
    if variant_id is not None:
        body["variantId"] = str(variant_id)
    return await api.post("/api/v1/cart/items", as_=user, json=body)


async def test_empty_cart(api, tenant):
    me = await tenant.user("customer")
    r = await api.get("/api/v1/cart", as_=me)
    assert r.status == 200
    assert_cart_shape(r.data)
    assert r.data["items"] == [] and r.data["appliedCoupons"] == []
    assert r.data["summary"] == {"subtotal": 0, "discount": 0, "shipping": None, "tax": 0, "total": 0,
                                 "currency": "RUB", "itemCount": 0, "totalQuantity": 0}
    assert r.data["estimatedCommission"] is None and r.data["estimatedCareerPoints"] is None
    again = await api.get("/api/v1/cart", as_=me)
    assert again.data["id"] == r.data["id"]  # one cart per user


async def test_add_then_get_matches_the_document_example(api, tenant, db):
    me = await tenant.user("customer")
    pid = await make_product(db, tenant.id, price="2500", compare_at="3000", stock=150, name="Premium Health Supplement")
    r = await add(api, me, pid, 2)
    assert r.status == 201
    d = r.data
    assert set(d) == {"cartItemId", "product", "quantity", "unitPrice", "totalPrice", "cartSummary"}
    uuid.UUID(d["cartItemId"])
    assert d["product"] == {"id": str(pid), "name": "Premium Health Supplement"}
    assert (d["quantity"], d["unitPrice"], d["totalPrice"]) == (2, 2500, 5000)
    assert_short_summary(d["cartSummary"])
    assert d["cartSummary"] == {"total": 6000, "itemCount": 1, "totalQuantity": 2}

    r = await api.get("/api/v1/cart", as_=me)
    cart = r.data
    assert_cart_shape(cart)
    assert cart["summary"] == {"subtotal": 5000, "discount": 0, "shipping": None, "tax": 1000, "total": 6000,
                               "currency": "RUB", "itemCount": 1, "totalQuantity": 2}
    (item,) = cart["items"]
    assert item["id"] == d["cartItemId"]
    assert item["product"]["price"] == 2500 and item["product"]["compareAtPrice"] == 3000
    assert item["product"]["status"] == "ACTIVE" and item["product"]["stockQuantity"] == 150
    assert item["product"]["thumbnailUrl"].endswith("-thumb.jpg")
    assert item["variantId"] is None and item["variantAttributes"] is None
    assert (item["quantity"], item["unitPrice"], item["totalPrice"]) == (2, 2500, 5000)


async def test_adding_the_same_product_again_adds_to_its_line(api, tenant, db):
    me = await tenant.user("customer")
    pid = await make_product(db, tenant.id, price="10.50")
    first = (await add(api, me, pid, 2)).data
    second = await add(api, me, pid, 3)
    assert second.status == 201
    assert second.data["cartItemId"] == first["cartItemId"]
    assert second.data["quantity"] == 5 and second.data["totalPrice"] == 52.5
    assert second.data["cartSummary"]["itemCount"] == 1 and second.data["cartSummary"]["totalQuantity"] == 5
    cart = (await api.get("/api/v1/cart", as_=me)).data
    assert cart["summary"]["subtotal"] == 52.5 and cart["summary"]["tax"] == 10.5 and cart["summary"]["total"] == 63


async def test_variants(api, tenant, db):
    me = await tenant.user("customer")
    pid = await make_product(db, tenant.id, price="1000", stock=None)
    vid = await make_variant(db, tenant.id, pid, price="1200", stock=4, attributes={"size": "L", "pack": 3})
    other = await make_product(db, tenant.id)
    other_variant = await make_variant(db, tenant.id, other)

    r = await add(api, me, pid, 1)
    assert r.status == 400 and r.error["code"] == "VALIDATION_ERROR" and "variantId" in r.error["details"]
    r = await add(api, me, pid, 1, uuid.uuid4())
    assert r.status == 404 and r.error["code"] == "VARIANT_NOT_FOUND"
    r = await add(api, me, pid, 1, other_variant)
    assert r.status == 404 and r.error["code"] == "VARIANT_NOT_FOUND"
    plain = await make_product(db, tenant.id)
    r = await add(api, me, plain, 1, vid)
    assert r.status == 404 and r.error["code"] == "VARIANT_NOT_FOUND"
    r = await add(api, me, pid, 5, vid)
    assert r.status == 400 and r.error["code"] == "INSUFFICIENT_STOCK" and r.error["available"] == 4

    r = await add(api, me, pid, 2, vid)
    assert r.status == 201 and r.data["unitPrice"] == 1200 and r.data["totalPrice"] == 2400
    (item,) = (await api.get("/api/v1/cart", as_=me)).data["items"]
    assert item["variantId"] == str(vid)
    assert item["variantAttributes"] == {"size": "L", "pack": "3"}
    assert item["product"]["sku"].startswith("VAR-") and item["product"]["price"] == 1000
    assert item["product"]["stockQuantity"] == 4


async def test_product_not_found_and_unavailable(api, tenant, db):
    me = await tenant.user("customer")
    r = await add(api, me, uuid.uuid4())
    assert r.status == 404 and r.error["code"] == "PRODUCT_NOT_FOUND"
    other_tenant = await db.fetchval("INSERT INTO tenants (slug, name) VALUES ($1, $1) RETURNING id",
                                     f"t-{uuid.uuid4().hex[:10]}")
    foreign = await make_product(db, other_tenant)
    r = await add(api, me, foreign)
    assert r.status == 404 and r.error["code"] == "PRODUCT_NOT_FOUND"
    for kw in ({"status": "DRAFT"}, {"status": "ARCHIVED"}, {"deleted": True}):
        pid = await make_product(db, tenant.id, **kw)
        r = await add(api, me, pid)
        assert r.status == 400 and r.error["code"] == "PRODUCT_UNAVAILABLE", kw
    assert (await api.get("/api/v1/cart", as_=me)).data["items"] == []


async def test_stock_is_checked_not_reserved(api, tenant, db):
    me, other = await tenant.user("customer"), await tenant.user("customer")
    pid = await make_product(db, tenant.id, stock=3)
    r = await add(api, me, pid, 4)
    assert r.status == 400 and r.error["code"] == "INSUFFICIENT_STOCK" and r.error["available"] == 3
    assert (await add(api, me, pid, 2)).status == 201
    r = await add(api, me, pid, 2)  # 2 + 2 > 3: the line's resulting quantity counts
    assert r.status == 400 and r.error["code"] == "INSUFFICIENT_STOCK" and r.error["available"] == 3
    # Nothing is reserved by a cart: another customer can still put all 3 in theirs.
    assert (await add(api, other, pid, 3)).status == 201
    assert await db.fetchval("SELECT reserved FROM stock WHERE product_id = $1", pid) == 0
    no_row = await make_product(db, tenant.id, stock=None)
    r = await add(api, me, no_row, 1)
    assert r.status == 400 and r.error["code"] == "INSUFFICIENT_STOCK" and r.error["available"] == 0
    untracked = await make_product(db, tenant.id, stock=None, track_inventory=False)
    assert (await add(api, me, untracked, 50)).status == 201
    items = {i["product"]["id"]: i for i in (await api.get("/api/v1/cart", as_=me)).data["items"]}
    assert items[str(untracked)]["product"]["stockQuantity"] is None


async def test_max_quantity_setting_and_per_product(make_client, tenant, db):
    api = Api(await make_client(max_item_quantity=5), tenant.slug)
    me = await tenant.user("customer")
    pid = await make_product(db, tenant.id)
    r = await add(api, me, pid, 6)
    assert r.status == 400 and r.error["code"] == "MAX_QUANTITY_EXCEEDED" and r.error["maxQuantity"] == 5
    assert (await add(api, me, pid, 5)).status == 201
    r = await add(api, me, pid, 1)
    assert r.status == 400 and r.error["code"] == "MAX_QUANTITY_EXCEEDED"
    limited = await make_product(db, tenant.id, max_per_order=2)
    r = await add(api, me, limited, 3)
    assert r.status == 400 and r.error["code"] == "MAX_QUANTITY_EXCEEDED" and r.error["maxQuantity"] == 2
    line = (await add(api, me, limited, 2)).data["cartItemId"]
    r = await api.patch(f"/api/v1/cart/items/{line}", as_=me, json={"quantity": 3})
    assert r.status == 400 and r.error["code"] == "MAX_QUANTITY_EXCEEDED"


async def test_update_item(api, tenant, db):
    me = await tenant.user("customer")
    pid = await make_product(db, tenant.id, price="2500", stock=4)
    line = (await add(api, me, pid, 2)).data["cartItemId"]
    r = await api.patch(f"/api/v1/cart/items/{line}", as_=me, json={"quantity": 3})
    assert r.status == 200
    assert set(r.data) == {"cartItemId", "quantity", "unitPrice", "totalPrice", "cartSummary"}
    assert r.data == {"cartItemId": line, "quantity": 3, "unitPrice": 2500, "totalPrice": 7500,
                      "cartSummary": {"total": 9000, "itemCount": 1, "totalQuantity": 3}}
    r = await api.patch(f"/api/v1/cart/items/{line}", as_=me, json={"quantity": 5})
    assert r.status == 400 and r.error["code"] == "INSUFFICIENT_STOCK" and r.error["available"] == 4
    # Stock fell below the line: lowering is still allowed, raising is not.
    await db.execute("UPDATE stock SET on_hand = 1 WHERE product_id = $1", pid)
    r = await api.patch(f"/api/v1/cart/items/{line}", as_=me, json={"quantity": 2})
    assert r.status == 200 and r.data["quantity"] == 2
    # A product archived after it was added: visible in the cart, cannot grow.
    await db.execute("UPDATE products SET status = 'ARCHIVED' WHERE id = $1", pid)
    r = await api.patch(f"/api/v1/cart/items/{line}", as_=me, json={"quantity": 3})
    assert r.status == 400 and r.error["code"] == "PRODUCT_UNAVAILABLE"
    (item,) = (await api.get("/api/v1/cart", as_=me)).data["items"]
    assert item["product"]["status"] == "ARCHIVED"


async def test_remove_item_and_clear(api, tenant, db):
    me = await tenant.user("customer")
    a, b = await make_product(db, tenant.id, price="100"), await make_product(db, tenant.id, price="50")
    la = (await add(api, me, a, 1)).data["cartItemId"]
    await add(api, me, b, 2)
    r = await api.delete(f"/api/v1/cart/items/{la}", as_=me)
    assert r.status == 200
    assert r.data == {"message": "Item removed from cart", "cartItemId": la,
                      "cartSummary": {"total": 120, "itemCount": 1, "totalQuantity": 2}}
    r = await api.delete(f"/api/v1/cart/items/{la}", as_=me)
    assert r.status == 404 and r.error["code"] == "CART_ITEM_NOT_FOUND"
    await add(api, me, a, 1)
    r = await api.delete("/api/v1/cart", as_=me)
    assert r.status == 200 and r.data == {"message": "Cart cleared successfully", "itemsRemoved": 2}
    assert (await api.get("/api/v1/cart", as_=me)).data["items"] == []
    r = await api.delete("/api/v1/cart", as_=me)
    assert r.data["itemsRemoved"] == 0


async def test_another_users_item_is_not_found(api, tenant, db):
    owner, other = await tenant.user("customer"), await tenant.user("customer")
    pid = await make_product(db, tenant.id)
    line = (await add(api, owner, pid, 1)).data["cartItemId"]
    for r in (await api.patch(f"/api/v1/cart/items/{line}", as_=other, json={"quantity": 2}),
              await api.delete(f"/api/v1/cart/items/{line}", as_=other),
              await api.patch(f"/api/v1/cart/items/{uuid.uuid4()}", as_=owner, json={"quantity": 2})):
        assert r.status == 404 and r.error["code"] == "CART_ITEM_NOT_FOUND"
    assert (await api.delete("/api/v1/cart", as_=other)).data["itemsRemoved"] == 0
    (item,) = (await api.get("/api/v1/cart", as_=owner)).data["items"]
    assert item["quantity"] == 1


async def test_partner_sees_estimates(api, tenant, db):
    partner, customer = await tenant.user("partner"), await tenant.user("customer")
    pid = await make_product(db, tenant.id, price="2500", commission="10", points="4")
    await add(api, partner, pid, 2)
    await add(api, customer, pid, 2)
    cart = (await api.get("/api/v1/cart", as_=partner)).data
    assert_cart_shape(cart)
    assert cart["estimatedCommission"] == 500 and cart["estimatedCareerPoints"] == 200
    cart = (await api.get("/api/v1/cart", as_=customer)).data
    assert cart["estimatedCommission"] is None and cart["estimatedCareerPoints"] is None


@pytest.mark.parametrize("body", [
    {"productId": "not-a-uuid", "quantity": 1},
    {"quantity": 1},
    {"productId": str(uuid.uuid4())},
    {"productId": str(uuid.uuid4()), "quantity": 0},
    {"productId": str(uuid.uuid4()), "quantity": -3},
    {"productId": str(uuid.uuid4()), "quantity": 1.5},
    {"productId": str(uuid.uuid4()), "quantity": "2"},
    {"productId": str(uuid.uuid4()), "quantity": 10 ** 12},
    {"productId": str(uuid.uuid4()), "quantity": 1, "price": 1},
    {"productId": str(uuid.uuid4()), "quantity": 1, "variantId": 7},
    [],
])
async def test_add_rejects_bad_input(api, tenant, body):
    me = await tenant.user("customer")
    r = await api.post("/api/v1/cart/items", as_=me, json=body)
    assert r.status == 400 and r.error["code"] == "VALIDATION_ERROR", body


async def test_update_rejects_bad_input(api, tenant, db):
    me = await tenant.user("customer")
    line = (await add(api, me, await make_product(db, tenant.id), 1)).data["cartItemId"]
    for body in ({"quantity": 0}, {"quantity": 10 ** 9}, {}, {"quantity": 2, "unitPrice": 1}, {"quantity": None}):
        r = await api.patch(f"/api/v1/cart/items/{line}", as_=me, json=body)
        assert r.status == 400 and r.error["code"] == "VALIDATION_ERROR", body
    r = await api.patch("/api/v1/cart/items/123", as_=me, json={"quantity": 1})
    assert r.status == 400 and r.error["code"] == "VALIDATION_ERROR"
    r = await api.delete("/api/v1/cart/items/abc", as_=me)
    assert r.status == 400


async def test_requires_authentication(api):
    for method, path in (("GET", "/api/v1/cart"), ("POST", "/api/v1/cart/items"), ("DELETE", "/api/v1/cart"),
                         ("PATCH", f"/api/v1/cart/items/{uuid.uuid4()}"), ("POST", "/api/v1/cart/coupons")):
        r = await api.call(method, path, json={})
        assert r.status == 401 and r.error["code"] == "UNAUTHORIZED", path


async def test_cart_endpoints_share_the_cart_rate_limit(make_client, tenant, db):
    api = Api(await make_client(rate_cart=3), tenant.slug)
    me = await tenant.user("customer")
    pid = await make_product(db, tenant.id)
    r = await api.get("/api/v1/cart", as_=me)
    assert r.status == 200 and r.headers.get("X-RateLimit-Policy") == "cart"
    assert (await add(api, me, pid)).status == 201
    assert (await api.delete("/api/v1/cart", as_=me)).status == 200
    r = await api.get("/api/v1/cart", as_=me)
    assert r.status == 429 and r.error["code"] == "RATE_LIMIT_EXCEEDED" and "Retry-After" in r.headers


async def test_concurrent_patches_of_one_item_are_serialised(api, tenant, db):
    """Many PATCHes of one line at once: each answer is a state that really existed (its
    quantity is the one it asked for), and the final quantity is one of them."""
    me = await tenant.user("customer")
    pid = await make_product(db, tenant.id, stock=100)
    line = (await add(api, me, pid, 1)).data["cartItemId"]
    wanted = list(range(2, 22))
    answers = await asyncio.gather(*(api.patch(f"/api/v1/cart/items/{line}", as_=me, json={"quantity": q})
                                     for q in wanted))
    assert all(r.status == 200 for r in answers)
    for q, r in zip(wanted, answers):
        assert r.data["quantity"] == q and r.data["cartSummary"]["totalQuantity"] == q
    final = (await api.get("/api/v1/cart", as_=me)).data["items"][0]["quantity"]
    assert final in wanted
    # They went through this user's actor, one at a time.
    stats = api.client.app[USER_ACTORS].stats()
    assert stats.messages >= len(wanted) + 2 and stats.crashed == 0
    assert await db.fetchval("SELECT count(*) FROM cart_items WHERE product_id = $1", pid) == 1


async def test_concurrent_adds_of_one_product_sum_up(api, tenant, db):
    me = await tenant.user("customer")
    pid = await make_product(db, tenant.id, stock=100)
    answers = await asyncio.gather(*(add(api, me, pid, 1) for _ in range(15)))
    assert all(r.status == 201 for r in answers)
    assert len({r.data["cartItemId"] for r in answers}) == 1
    assert sorted(r.data["quantity"] for r in answers) == list(range(1, 16))
    assert (await api.get("/api/v1/cart", as_=me)).data["items"][0]["quantity"] == 15


async def test_an_api_key_has_no_cart_or_addresses(api, tenant):
    staff = await tenant.user("staff")
    r = await api.post("/api/v1/api-keys", as_=staff, json={"name": "erp", "scopes": ["orders:write"]})
    assert r.status == 201
    headers = {"X-API-Key": r.data["key"]}
    for method, path in (("GET", "/api/v1/cart"), ("DELETE", "/api/v1/cart"), ("GET", "/api/v1/addresses")):
        r = await api.call(method, path, headers=headers)
        assert r.status == 403 and r.error["code"] == "FORBIDDEN", path


async def test_two_api_processes_never_lose_a_cart_update(make_client, tenant, db):
    """Each process has its own user actors; the cart row lock still serialises the writes."""
    first, second = Api(await make_client(), tenant.slug), Api(await make_client(), tenant.slug)
    me = await tenant.user("customer")
    pid = await make_product(db, tenant.id, stock=100)
    answers = await asyncio.gather(*(add(api, me, pid, 1) for api in (first, second) for _ in range(10)))
    assert all(r.status == 201 for r in answers)
    assert (await first.get("/api/v1/cart", as_=me)).data["items"][0]["quantity"] == 20
