"""Personalised pricing: price lists for customer groups. The price a signed-in buyer sees in the
catalogue is what the cart shows and the checkout (and POST /orders) charges; anonymous callers
and buyers outside the group see the list price; a list that ends while an item sits in the
cart behaves like a price change."""

from __future__ import annotations

import datetime as dt
import secrets
from decimal import Decimal

import pytest

from tests.integration.conftest_orders import make_address, make_shipping_method

A = "/api/v1/admin/price-lists"
UTC = dt.timezone.utc


def _iso(t: dt.datetime) -> str:
    return t.astimezone(UTC).isoformat().replace("+00:00", "Z")


@pytest.fixture
async def staff(tenant):
    return await tenant.user("staff")


async def _product(api, staff, price, **extra):
    tag = secrets.token_hex(4)
    r = await api.post("/api/v1/products", as_=staff, json={"name": f"P {tag}", "sku": f"S-{tag}", "price": price,
                                                            "stockQuantity": 50, **extra})
    assert r.status == 201, r.body
    return r.data


async def _wholesale(api, staff, tenant, items, **window):
    buyer = await tenant.user()
    r = await api.put(f"/api/v1/admin/users/{buyer.id}/customer-groups", as_=staff, json={"groups": ["wholesale"]})
    assert r.status == 200 and r.data["groups"] == ["wholesale"], r.body
    r = await api.post(A, as_=staff, json={"name": "Wholesale 2026", "customerGroup": "wholesale",
                                           "items": items, **window})
    assert r.status == 201, r.body
    return buyer, r.data


async def _price(api, pid, who=None):
    return (await api.get(f"/api/v1/products/{pid}", as_=who)).data["price"]


async def test_a_group_buyer_sees_and_pays_the_group_price_everyone_else_the_list_price(api, tenant, db, staff):
    p = await _product(api, staff, 1000)
    buyer, plist = await _wholesale(api, staff, tenant, [{"productId": p["id"], "price": 800}])
    assert plist["active"] is True and plist["items"] == [{"productId": p["id"], "variantId": None, "price": 800}]
    outsider = await tenant.user()
    assert await _price(api, p["id"]) == 1000                 # anonymous: the public list price
    assert await _price(api, p["id"], outsider) == 1000
    assert await _price(api, p["id"], buyer) == 800
    listed = (await api.get("/api/v1/products", as_=buyer, params={"search": p["name"]})).data["products"]
    assert [x["price"] for x in listed if x["id"] == p["id"]] == [800]

    # Cart and checkout charge what the catalogue showed.
    r = await api.post("/api/v1/cart/items", as_=buyer, json={"productId": p["id"], "quantity": 2})
    assert r.status == 201, r.body
    cart = (await api.get("/api/v1/cart", as_=buyer)).data
    line = cart["items"][0]
    assert (line["unitPrice"], line["totalPrice"], line["product"]["price"]) == (800, 1600, 800)
    assert cart["summary"]["subtotal"] == 1600
    method = await make_shipping_method(db, tenant.id)
    address = await make_address(db, tenant.id, buyer.id)
    r = await api.post("/api/v1/cart/checkout", as_=buyer, json={
        "shippingAddressId": str(address), "shippingMethodId": str(method), "paymentMethod": "CARD"})
    assert r.status == 201, r.body
    assert r.data["summary"]["subtotal"] == 1600
    assert await db.fetchval("SELECT unit_price FROM order_items WHERE order_id = $1::uuid",
                             r.data["orderId"]) == Decimal("800.00")

    # The platform's POST /orders for this customer charges the same price.
    r = await api.post("/api/v1/orders", as_=staff, json={
        "items": [{"productId": p["id"], "quantity": 1}], "customerId": str(buyer.id),
        "shippingAddressId": str(address), "shippingMethodId": str(method), "paymentMethod": "CARD"})
    assert r.status == 201 and r.data["summary"]["subtotal"] == 800, r.body


async def test_variant_prices_beat_product_prices_and_the_lowest_list_wins(api, tenant, staff):
    p = await _product(api, staff, 100, stockQuantity=0, variants=[
        {"name": "S", "sku": f"V-{secrets.token_hex(4)}", "price": 100, "stockQuantity": 5},
        {"name": "M", "sku": f"V-{secrets.token_hex(4)}", "price": 120, "stockQuantity": 5}])
    small, medium = p["variants"]
    buyer, _ = await _wholesale(api, staff, tenant, [{"productId": p["id"], "price": 90},
                                                     {"productId": p["id"], "variantId": medium["id"], "price": 110}])
    # A second group with a lower product price: the buyer gets the lowest equally specific price.
    r = await api.put(f"/api/v1/admin/users/{buyer.id}/customer-groups", as_=staff,
                      json={"groups": ["wholesale", "partners"]})
    assert r.data["groups"] == ["partners", "wholesale"]
    r = await api.post(A, as_=staff, json={"name": "Partners", "customerGroup": "partners",
                                           "items": [{"productId": p["id"], "price": 85}]})
    assert r.status == 201
    d = (await api.get(f"/api/v1/products/{p['id']}", as_=buyer)).data
    assert d["price"] == 85
    assert [(x["name"], x["price"]) for x in d["variants"]] == [("S", 85), ("M", 110)]
    await api.post("/api/v1/cart/items", as_=buyer, json={"productId": p["id"], "variantId": medium["id"], "quantity": 1})
    await api.post("/api/v1/cart/items", as_=buyer, json={"productId": p["id"], "variantId": small["id"], "quantity": 1})
    cart = (await api.get("/api/v1/cart", as_=buyer)).data
    assert sorted(i["unitPrice"] for i in cart["items"]) == [85, 110]


async def test_a_list_ending_while_in_the_cart_is_a_price_change(api, tenant, staff):
    p = await _product(api, staff, 1000)
    now = dt.datetime.now(UTC)
    buyer, plist = await _wholesale(api, staff, tenant, [{"productId": p["id"], "price": 700}],
                                    startsAt=_iso(now - dt.timedelta(days=1)))
    await api.post("/api/v1/cart/items", as_=buyer, json={"productId": p["id"], "quantity": 1})
    assert (await api.get("/api/v1/cart", as_=buyer)).data["items"][0]["unitPrice"] == 700
    r = await api.put(f"{A}/{plist['id']}", as_=staff, json={
        "name": "Wholesale 2026", "customerGroup": "wholesale", "items": [{"productId": p["id"], "price": 700}],
        "startsAt": _iso(now - dt.timedelta(days=1)), "endsAt": _iso(now - dt.timedelta(seconds=1))})
    assert r.status == 200 and r.data["active"] is False, r.body
    assert (await api.get("/api/v1/cart", as_=buyer)).data["items"][0]["unitPrice"] == 1000
    assert await _price(api, p["id"], buyer) == 1000
    # A list whose window has not opened yet does not apply either.
    r = await api.post(A, as_=staff, json={"name": "Next year", "customerGroup": "wholesale",
                                           "startsAt": _iso(now + dt.timedelta(days=30)),
                                           "items": [{"productId": p["id"], "price": 500}]})
    assert r.status == 201 and r.data["active"] is False
    assert await _price(api, p["id"], buyer) == 1000
    # Deleting the list returns the buyer to the list price for good.
    assert (await api.delete(f"{A}/{plist['id']}", as_=staff)).status == 200
    assert (await api.get(f"{A}/{plist['id']}", as_=staff)).status == 404


async def test_staff_manage_lists_and_bad_input_is_refused(api, tenant, staff):
    p = await _product(api, staff, 10)
    customer = await tenant.user()
    body = {"name": "L", "customerGroup": "wholesale", "items": [{"productId": p["id"], "price": 5}]}
    assert (await api.post(A, as_=customer, json=body)).status == 403
    assert (await api.put(f"/api/v1/admin/users/{customer.id}/customer-groups", as_=customer,
                          json={"groups": ["vip"]})).status == 403
    now = dt.datetime.now(UTC)
    bad = [
        ({**body, "startsAt": _iso(now), "endsAt": _iso(now - dt.timedelta(hours=1))}, 400, "endsAt"),
        ({**body, "items": [{"productId": p["id"], "price": 5}, {"productId": p["id"], "price": 4}]}, 400, "items"),
        ({**body, "items": [{"productId": p["id"], "price": -1}]}, 400, None),
        ({**body, "items": [{"productId": p["id"], "price": 1.234}]}, 400, None),
        ({**body, "customerGroup": "Whole Sale"}, 400, "customerGroup"),
        ({**body, "startsAt": "2026-01-01T00:00:00"}, 400, "startsAt"),
        ({**body, "items": [{"productId": customer.id.hex, "price": 5}]}, 404, "items"),
        ({**body, "items": [{"productId": p["id"], "variantId": p["id"], "price": 5}]}, 404, "items"),
    ]
    for b, status, field in bad:
        r = await api.post(A, as_=staff, json=b)
        assert r.status == status, (b, r.body)
        if field:
            assert field in r.error.get("details", {}), r.body
    r = await api.post(A, as_=staff, json=body)
    assert r.status == 201
    listed = await api.get(A, as_=staff)
    assert [x["id"] for x in listed.data["priceLists"]] == [r.data["id"]]
    assert listed.body["meta"]["pagination"]["total"] == 1
    r = await api.get(f"/api/v1/admin/users/{customer.id}/customer-groups", as_=staff)
    assert r.status == 200 and r.data["groups"] == []
