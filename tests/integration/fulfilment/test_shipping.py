"""Shipping methods and quotes as the storefront document shapes them, the staff's management of
methods and zones, shipping an order, and tracking (shape, errors, idempotent sync)."""

from __future__ import annotations

import datetime as dt
import json
import uuid

from engine import tracking
from engine.carrier import SandboxCarrier, carrier_for
from engine.carrier.sandbox import MAX_TRANSIT, journey, schedule
from engine.carrier.port import Parcel
from tests.integration.conftest_orders import fill_cart, make_product
from tests.integration.fulfilment.conftest import advance, arrange_order

METHODS = "/api/v1/shipping/methods"
CALC = "/api/v1/shipping/calculate"


async def _method(db, tenant_id, *, name="Standard Delivery", countries=("RU",), ranges=(), bands=None,
                  free=None, min_days=5, max_days=10, position=0):
    bands = bands or [{"maxGrams": 1000, "price": "350.00"}, {"maxGrams": None, "price": "900"}]
    return await db.fetchval(
        "INSERT INTO shipping_methods (tenant_id, name, carrier, description, min_days, max_days, currency,"
        " free_threshold, zones, weight_bands, position) VALUES ($1, $2, 'Russian Post', 'To your post office', $3,"
        " $4, 'RUB', $5::numeric, $6::jsonb, $7::jsonb, $8) RETURNING id", tenant_id, name, min_days, max_days, free,
        json.dumps([{"countries": list(countries), "postalRanges": [list(r) for r in ranges]}]), json.dumps(bands),
        position)


async def test_methods_shape_and_errors(api, tenant, db):
    std = await _method(db, tenant.id, free="5000")
    await _method(db, tenant.id, name="Moscow courier", ranges=(("100000", "199999"),), position=1)
    r = await api.get(METHODS, params={"country": "RU", "postalCode": "125009"})
    assert r.status == 200
    first = r.data["methods"][0]
    assert first == {"id": str(std), "name": "Standard Delivery", "carrier": "Russian Post",
                     "description": "To your post office", "estimatedDays": {"min": 5, "max": 10}, "price": 350,
                     "currency": "RUB", "isFree": False, "freeThreshold": 5000}
    assert len(r.data["methods"]) == 2
    assert len((await api.get(METHODS, params={"country": "RU", "postalCode": "690000"})).data["methods"]) == 1
    for bad in ({"country": "ru"}, {"country": "RUS"}, {"country": ""}, {}, {"country": "RU", "postalCode": "!!"},
                {"country": "RU", "cartId": "x"}):
        r = await api.get(METHODS, params=bad)
        assert r.status == 400 and r.error["code"] == "VALIDATION_ERROR", bad
    r = await api.get(METHODS, params={"country": "DE"})
    assert r.status == 400 and r.error["code"] == "SHIPPING_NOT_AVAILABLE"


async def test_methods_for_a_cart_price_its_parcel(api, tenant, db):
    await _method(db, tenant.id, free="5000")
    buyer, other = await tenant.user(), await tenant.user()
    heavy = await make_product(db, tenant.id, price="1000")   # 500 g each
    cart = await fill_cart(db, tenant.id, buyer.id, [(heavy, 3)])
    r = await api.get(METHODS, as_=buyer, params={"country": "RU", "cartId": str(cart)})
    assert (r.data["methods"][0]["price"], r.data["methods"][0]["isFree"]) == (900, False)   # 1500 g band
    await db.execute("UPDATE cart_items SET quantity = 5 WHERE cart_id = $1", cart)
    r = await api.get(METHODS, as_=buyer, params={"country": "RU", "cartId": str(cart)})
    assert (r.data["methods"][0]["price"], r.data["methods"][0]["isFree"]) == (0, True)      # 5000 reaches the threshold
    for who in (other, None):
        r = await api.get(METHODS, as_=who, params={"country": "RU", "cartId": str(cart)})
        assert r.status == 404 and r.error["code"] == "CART_NOT_FOUND"


async def test_calculate_shape_and_errors(api, tenant, db):
    std = await _method(db, tenant.id, min_days=2, max_days=4)
    product = await make_product(db, tenant.id, price="2500")
    await db.execute("UPDATE products SET weight_grams = 250, length_cm = 25, width_cm = 15, height_cm = 5.5"
                     " WHERE id = $1", product)
    body = {"destination": {"country": "RU", "postalCode": "125009"},
            "items": [{"productId": str(product), "quantity": 3}]}
    r = await api.post(CALC, json=body)
    assert r.status == 200, r.body
    d = r.data
    assert d["destination"] == {"country": "RU", "postalCode": "125009"}
    assert d["package"] == {"totalWeight": 750, "dimensions": {"length": 25, "width": 15, "height": 16.5}}
    (option,) = d["options"]
    assert set(option) == {"methodId", "name", "carrier", "price", "currency", "estimatedDelivery", "isFree"}
    assert (option["methodId"], option["price"], option["isFree"]) == (str(std), 350, False)
    lo, hi = (dt.date.fromisoformat(option["estimatedDelivery"][k]) for k in ("min", "max"))
    assert dt.date.today() < lo <= hi

    r = await api.post(CALC, json={**body, "destination": {"country": "DE", "postalCode": "10115"}})
    assert r.status == 400 and r.error["code"] == "INVALID_DESTINATION"
    r = await api.post(CALC, json={**body, "items": [{"productId": str(uuid.uuid4()), "quantity": 1}]})
    assert r.status == 404 and r.error["code"] == "PRODUCT_NOT_FOUND"
    for bad in ({**body, "destination": {"country": "XXX", "postalCode": "1"}},
                {**body, "destination": {"country": "RU"}}, {"destination": body["destination"]},
                {**body, "items": []}, {**body, "items": [{"productId": str(product), "quantity": 0}]},
                {**body, "items": [{"productId": str(product), "quantity": 10**12}]},
                {**body, "cartId": str(uuid.uuid4())}, {**body, "extra": True}):
        r = await api.post(CALC, json=bad)
        assert r.status == 400 and r.error["code"] == "VALIDATION_ERROR", bad


async def test_staff_manage_methods_and_zones(api, tenant, db):
    staff = await tenant.user("staff", permissions=("shipping:write",))
    customer = await tenant.user()
    new = {"name": "Express", "carrier": "CDEK", "minDays": 1, "maxDays": 3, "freeThreshold": 10000,
           "zones": [{"countries": ["RU", "BY"], "postalRanges": [["100000", "199999"]]}],
           "weightBands": [{"maxGrams": 2000, "price": 650}]}
    assert (await api.post(METHODS, as_=customer, json=new)).status == 403
    r = await api.post(METHODS, as_=staff, json=new)
    assert r.status == 201, r.body
    mid = r.data["id"]
    assert r.data["zones"] == [{"countries": ["RU", "BY"], "postalRanges": [["100000", "199999"]]}]
    assert r.data["currency"] == "RUB"
    assert [m["name"] for m in (await api.get(METHODS, params={"country": "BY", "postalCode": "150000"})).data["methods"]] == ["Express"]

    r = await api.patch(f"{METHODS}/{mid}", as_=staff, json={"zones": [{"countries": ["KZ"]}]})
    assert r.status == 200 and r.data["zones"] == [{"countries": ["KZ"], "postalRanges": []}]
    assert (await api.get(METHODS, params={"country": "BY"})).error["code"] == "SHIPPING_NOT_AVAILABLE"
    for bad in ({"minDays": 5}, {"zones": [{"countries": ["kz"]}]}, {"zones": [{"countries": ["RU"],
                "postalRanges": [["2", "1"]]}]}, {"weightBands": []}, {"weightBands": [{"price": -1}]},
                {"name": ""}, {"id": mid}, {"currency": "rub"}):
        r = await api.patch(f"{METHODS}/{mid}", as_=staff, json=bad)
        assert r.status == 400 and r.error["code"] == "VALIDATION_ERROR", bad
    r = await api.patch(f"{METHODS}/{uuid.uuid4()}", as_=staff, json={"name": "x"})
    assert r.status == 404 and r.error["code"] == "SHIPPING_METHOD_NOT_FOUND"

    assert (await api.delete(f"{METHODS}/{mid}", as_=staff)).status == 200
    assert (await api.get(METHODS, params={"country": "KZ"})).error["code"] == "SHIPPING_NOT_AVAILABLE"
    listed = (await api.get("/api/v1/admin/shipping/methods", as_=staff)).data["methods"]
    assert [(m["id"], m["active"]) for m in listed] == [(mid, False)]


def test_sandbox_carrier_is_deterministic_and_ends_delivered():
    carrier = SandboxCarrier()
    t0 = dt.datetime(2024, 1, 12, 15, tzinfo=dt.timezone.utc)
    parcel = Parcel("RP123456789RU", t0, "Moscow")
    assert schedule("RP123456789RU") == schedule("RP123456789RU")
    assert [e.status for e in journey(parcel, t0)] == ["SHIPPED"]
    full = journey(parcel, t0 + MAX_TRANSIT)
    assert [e.status for e in full] == ["SHIPPED", "IN_TRANSIT", "OUT_FOR_DELIVERY", "DELIVERED"]
    assert [e.occurred_at for e in full] == sorted(e.occurred_at for e in full)
    assert carrier.tracking_url("X1").endswith("/X1") and carrier_for("CDEK").name == "sandbox"


async def test_ship_track_and_sync(api, tenant, db, database):
    buyer, other = await tenant.user(), await tenant.user()
    staff = await tenant.user("staff", permissions=("orders:write",))
    order = await arrange_order(db, tenant.id, buyer.id)
    ship = f"/api/v1/admin/orders/{order.id}/ship"
    r = await api.post(ship, as_=staff, json={})
    assert r.status == 422 and r.error["code"] == "INVALID_STATUS_TRANSITION"   # not paid
    assert (await api.get(f"/api/v1/orders/{order.id}/tracking", as_=buyer)).error["code"] == "NOT_SHIPPED"
    await advance(database, order, to="PAID")
    assert (await api.post(ship, as_=buyer, json={})).status == 403
    for bad in ({"trackingNumber": ""}, {"trackingNumber": "x" * 65}, {"carrier": 5}, {"other": 1}):
        assert (await api.post(ship, as_=staff, json=bad)).status == 400, bad
    r = await api.post(ship, as_=staff, json={})   # PAID passes through PROCESSING
    assert r.status == 200, r.body
    t = r.data
    assert set(t) == {"orderId", "orderNumber", "status", "carrier", "trackingNumber", "trackingUrl",
                      "estimatedDelivery", "events", "shippedAt", "deliveredAt"}
    assert (t["status"], t["carrier"], t["deliveredAt"]) == ("SHIPPED", "Russian Post", None)
    assert t["trackingNumber"].startswith("SBX") and t["trackingUrl"].endswith(t["trackingNumber"])
    assert t["events"] == [{"status": "SHIPPED", "location": "Warehouse", "description": "Package shipped",
                            "timestamp": t["shippedAt"]}]
    history = [h["status"] for h in await db.fetch(
        "SELECT status FROM order_status_history WHERE order_id = $1 ORDER BY id", order.id)]
    assert history[-2:] == ["PROCESSING", "SHIPPED"]
    assert (await api.post(ship, as_=staff, json={})).error["code"] == "INVALID_STATUS_TRANSITION"
    r = await api.get(f"/api/v1/orders/{order.id}/tracking", as_=other)
    assert r.status == 404 and r.error["code"] == "ORDER_NOT_FOUND"

    shipped_at = await db.fetchval("SELECT shipped_at FROM orders WHERE id = $1", order.id)
    carrier = SandboxCarrier()
    assert not await tracking.sync_order(database, carrier, order.id, now=shipped_at + dt.timedelta(hours=10))
    assert await tracking.sync_order(database, carrier, order.id, now=shipped_at + MAX_TRANSIT)
    assert not await tracking.sync_order(database, carrier, order.id, now=shipped_at + MAX_TRANSIT)
    report = await tracking.sync_shipped(database, carrier_for, now=shipped_at + MAX_TRANSIT)
    assert order.id not in report.failed
    t = (await api.get(f"/api/v1/orders/{order.id}/tracking", as_=buyer)).data
    assert [e["status"] for e in t["events"]] == ["DELIVERED", "OUT_FOR_DELIVERY", "IN_TRANSIT", "SHIPPED"]
    assert t["status"] == "DELIVERED" and t["deliveredAt"] == t["events"][0]["timestamp"]
    assert t["events"][0]["location"] == "Moscow"
    assert await db.fetchval("SELECT count(*) FROM tracking_events WHERE order_id = $1", order.id) == 4
    # A customer buyer earns no commission: no accrual job is queued.
    assert await db.fetchval("SELECT count(*) FROM outbox WHERE job = 'accrue_commission'"
                             " AND payload->>'order_id' = $1", str(order.id)) == 0
