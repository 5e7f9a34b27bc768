"""Coupons on the cart (apply, remove, windows, limits, minimum order, stacking) and the
staff's coupon management."""

from __future__ import annotations

import datetime as dt
import re
import uuid

import pytest

from tests.integration.conftest_cart import make_coupon, make_product

ISO_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")
NOW = dt.datetime.now(dt.timezone.utc)
HOUR = dt.timedelta(hours=1)


async def cart_with(api, tenant, db, price="5000", quantity=1, role="customer"):
    me = await tenant.user(role)
    pid = await make_product(db, tenant.id, price=price)
    r = await api.post("/api/v1/cart/items", as_=me, json={"productId": str(pid), "quantity": quantity})
    assert r.status == 201
    return me


async def apply(api, me, code):
    return await api.post("/api/v1/cart/coupons", as_=me, json={"code": code})


async def test_percentage_then_fixed_coupon(api, tenant, db):
    me = await cart_with(api, tenant, db, price="5000")
    await make_coupon(db, tenant.id, "WELCOME10", "PERCENTAGE", "10")
    await make_coupon(db, tenant.id, "MINUS500", "FIXED", "500")
    r = await apply(api, me, "welcome10")  # codes are case-insensitive
    assert r.status == 200
    assert r.data["appliedCoupons"] == [{"code": "WELCOME10", "discount": 500, "type": "PERCENTAGE"}]
    assert r.data["summary"]["discount"] == 500
    assert r.data["summary"]["tax"] == 900 and r.data["summary"]["total"] == 5400  # tax on the discounted amount
    r = await apply(api, me, "MINUS500")
    assert r.status == 200
    assert {c["code"]: (c["discount"], c["type"]) for c in r.data["appliedCoupons"]} == {
        "WELCOME10": (500, "PERCENTAGE"), "MINUS500": (500, "FIXED")}
    assert r.data["summary"]["discount"] == 1000 and r.data["summary"]["total"] == 4800
    # Applying one again changes nothing.
    r = await apply(api, me, "WELCOME10")
    assert r.status == 200 and len(r.data["appliedCoupons"]) == 2
    cart = (await api.get("/api/v1/cart", as_=me)).data
    assert cart["summary"]["discount"] == 1000

    r = await api.delete("/api/v1/cart/coupons/welcome10", as_=me)
    assert r.status == 200 and [c["code"] for c in r.data["appliedCoupons"]] == ["MINUS500"]
    assert r.data["summary"]["discount"] == 500
    r = await api.delete("/api/v1/cart/coupons/WELCOME10", as_=me)
    assert r.status == 404 and r.error["code"] == "COUPON_NOT_FOUND"


async def test_stacking_one_coupon_of_each_kind(api, tenant, db):
    me = await cart_with(api, tenant, db)
    await make_coupon(db, tenant.id, "TEN", "PERCENTAGE", "10")
    await make_coupon(db, tenant.id, "TWENTY", "PERCENTAGE", "20")
    assert (await apply(api, me, "TEN")).status == 200
    r = await apply(api, me, "TWENTY")
    assert r.status == 400 and r.error["code"] == "INVALID_COUPON"
    assert [c["code"] for c in (await api.get("/api/v1/cart", as_=me)).data["appliedCoupons"]] == ["TEN"]


@pytest.mark.parametrize("columns", [
    {"starts_at": NOW + HOUR},                     # not started
    {"ends_at": NOW - HOUR},                       # expired
    {"active": False},
    {"usage_limit": 3, "used_count": 3},           # used up
    {"min_order": 5000.01},                        # subtotal 5000 is below
])
async def test_invalid_coupons(api, tenant, db, columns):
    from decimal import Decimal
    if "min_order" in columns:
        columns["min_order"] = Decimal(str(columns["min_order"]))
    me = await cart_with(api, tenant, db, price="5000")
    await make_coupon(db, tenant.id, "NOPE", **columns)
    r = await apply(api, me, "NOPE")
    assert r.status == 400 and r.error["code"] == "INVALID_COUPON", columns
    assert (await api.get("/api/v1/cart", as_=me)).data["appliedCoupons"] == []


async def test_window_and_minimum_edges_are_valid(api, tenant, db):
    from decimal import Decimal
    me = await cart_with(api, tenant, db, price="5000")
    await make_coupon(db, tenant.id, "EDGE", "FIXED", "100", starts_at=NOW - HOUR, ends_at=NOW + HOUR,
                      min_order=Decimal("5000"), usage_limit=3, used_count=2)
    r = await apply(api, me, "EDGE")
    assert r.status == 200 and r.data["summary"]["discount"] == 100


async def test_unknown_and_foreign_codes_are_invalid(api, tenant, db):
    me = await cart_with(api, tenant, db)
    r = await apply(api, me, "NO-SUCH-CODE")
    assert r.status == 400 and r.error["code"] == "INVALID_COUPON"
    other_tenant = await db.fetchval("INSERT INTO tenants (slug, name) VALUES ($1, $1) RETURNING id",
                                     f"t-{uuid.uuid4().hex[:10]}")
    await make_coupon(db, other_tenant, "THEIRS")
    r = await apply(api, me, "THEIRS")
    assert r.status == 400 and r.error["code"] == "INVALID_COUPON"


async def test_per_user_limit(api, tenant, db):
    me = await cart_with(api, tenant, db)
    cid = await make_coupon(db, tenant.id, "ONCE", per_user_limit=1)
    order = await db.fetchval(
        "INSERT INTO orders (tenant_id, user_id, order_number, status, payment_method, currency, subtotal, total,"
        " shipping_address, shipping_method) VALUES ($1, $2, $3, 'PAID', 'CARD', 'RUB', 1, 1, '{}', '{}')"
        " RETURNING id", tenant.id, me.id, f"ORD-{uuid.uuid4().hex[:8]}")
    await db.execute("INSERT INTO coupon_redemptions (tenant_id, coupon_id, user_id, order_id) VALUES ($1, $2, $3, $4)",
                     tenant.id, cid, me.id, order)
    r = await apply(api, me, "ONCE")
    assert r.status == 400 and r.error["code"] == "INVALID_COUPON"
    other = await cart_with(api, tenant, db)
    assert (await apply(api, other, "ONCE")).status == 200


async def test_a_coupon_that_lapses_in_the_cart_is_left_out_not_an_error(api, tenant, db):
    me = await cart_with(api, tenant, db, price="5000")
    cid = await make_coupon(db, tenant.id, "SHORT", "FIXED", "300")
    assert (await apply(api, me, "SHORT")).status == 200
    await db.execute("UPDATE coupons SET ends_at = now() - interval '1 minute' WHERE id = $1", cid)
    cart = (await api.get("/api/v1/cart", as_=me)).data
    assert cart["appliedCoupons"] == [] and cart["summary"]["discount"] == 0
    assert (await api.delete("/api/v1/cart/coupons/SHORT", as_=me)).status == 200


async def test_partner_estimates_follow_the_discount(api, tenant, db):
    partner = await tenant.user("partner")
    pid = await make_product(db, tenant.id, price="1000", commission="10", points="5")
    await api.post("/api/v1/cart/items", as_=partner, json={"productId": str(pid), "quantity": 2})
    await make_coupon(db, tenant.id, "HALF", "PERCENTAGE", "50")
    r = await apply(api, partner, "HALF")
    assert r.data["estimatedCommission"] == 100 and r.data["estimatedCareerPoints"] == 50


async def test_clearing_the_cart_removes_its_coupons(api, tenant, db):
    me = await cart_with(api, tenant, db)
    await make_coupon(db, tenant.id, "GONE")
    await apply(api, me, "GONE")
    await api.delete("/api/v1/cart", as_=me)
    assert (await api.get("/api/v1/cart", as_=me)).data["appliedCoupons"] == []


@pytest.mark.parametrize("body", [{}, {"code": ""}, {"code": "x" * 65}, {"code": 12}, {"code": "A B"},
                                  {"code": "OK", "extra": 1}])
async def test_apply_rejects_bad_input(api, tenant, body):
    me = await tenant.user("customer")
    r = await api.post("/api/v1/cart/coupons", as_=me, json=body)
    assert r.status == 400 and r.error["code"] == "VALIDATION_ERROR", body


async def test_remove_with_a_strange_code(api, tenant):
    me = await tenant.user("customer")
    r = await api.delete("/api/v1/cart/coupons/%20%27%3B--", as_=me)
    assert r.status == 404 and r.error["code"] == "COUPON_NOT_FOUND"
    r = await api.delete("/api/v1/cart/coupons/" + "X" * 65, as_=me)
    assert r.status == 400


# ----------------------------------------------------------------------------- staff

def assert_coupon_shape(c: dict) -> None:
    assert set(c) >= {"id", "code", "type", "value", "startsAt", "endsAt", "minOrderAmount", "usageLimit",
                      "usedCount", "perUserLimit", "active", "createdAt"}
    uuid.UUID(c["id"])
    assert c["type"] in ("PERCENTAGE", "FIXED") and isinstance(c["value"], (int, float))
    assert ISO_Z.match(c["createdAt"])
    for name in ("startsAt", "endsAt"):
        assert c[name] is None or ISO_Z.match(c[name])


async def test_staff_manage_coupons(api, tenant, db):
    staff = await tenant.user("staff", permissions=("coupons:write",))
    body = {"code": "spring25", "type": "PERCENTAGE", "value": 25, "startsAt": "2024-03-01T00:00:00Z",
            "endsAt": "2099-06-01T00:00:00Z", "minOrderAmount": 1000, "usageLimit": 100, "perUserLimit": 1}
    r = await api.post("/api/v1/coupons", as_=staff, json=body)
    assert r.status == 201
    c = r.data
    assert_coupon_shape(c)
    assert (c["code"], c["type"], c["value"], c["minOrderAmount"], c["usageLimit"], c["usedCount"],
            c["perUserLimit"], c["active"]) == ("SPRING25", "PERCENTAGE", 25, 1000, 100, 0, 1, True)
    assert c["startsAt"].startswith("2024-03-01T00:00:00")
    r = await api.post("/api/v1/coupons", as_=staff, json={**body, "code": "SPRING25"})
    assert r.status == 409 and r.error["code"] == "CONFLICT"
    await api.post("/api/v1/coupons", as_=staff, json={"code": "FLAT", "type": "FIXED", "value": 99.5})

    r = await api.get("/api/v1/coupons", as_=staff)
    assert r.status == 200 and [x["code"] for x in r.data["coupons"]] == ["FLAT", "SPRING25"]
    assert r.body["meta"]["pagination"]["total"] == 2
    r = await api.get("/api/v1/coupons", as_=staff, params={"pageSize": "1", "page": "2"})
    assert [x["code"] for x in r.data["coupons"]] == ["SPRING25"] and r.body["meta"]["pagination"]["hasPrevious"]

    r = await api.patch(f"/api/v1/coupons/{c['id']}", as_=staff,
                        json={"usageLimit": None, "endsAt": "2099-12-31T00:00:00Z"})
    assert r.status == 200 and r.data["usageLimit"] is None and r.data["endsAt"].startswith("2099-12-31")
    assert r.data["code"] == "SPRING25" and r.data["value"] == 25
    r = await api.delete(f"/api/v1/coupons/{c['id']}", as_=staff)
    assert r.status == 200 and r.data["active"] is False
    assert (await api.get(f"/api/v1/coupons/{c['id']}", as_=staff)).data["active"] is False
    r = await api.get("/api/v1/coupons", as_=staff, params={"active": "true"})
    assert [x["code"] for x in r.data["coupons"]] == ["FLAT"]
    # A deactivated coupon cannot be applied.
    me = await cart_with(api, tenant, db)
    assert (await apply(api, me, "SPRING25")).error["code"] == "INVALID_COUPON"


async def test_staff_coupon_errors(api, tenant, db):
    staff = await tenant.user("staff", permissions=("coupons:write",))
    customer = await tenant.user("customer")
    other_staff = await tenant.user("staff", permissions=("products:write",))
    ok = {"code": "OK1", "type": "FIXED", "value": 10}
    for who in (customer, other_staff):
        r = await api.post("/api/v1/coupons", as_=who, json=ok)
        assert r.status == 403 and r.error["code"] == "FORBIDDEN"
        assert (await api.get("/api/v1/coupons", as_=who)).status == 403
    for bad in ({**ok, "value": 0}, {**ok, "value": -5}, {**ok, "type": "BOGO"}, {**ok, "type": "PERCENTAGE", "value": 150},
                {**ok, "value": 10 ** 13}, {**ok, "value": "NaN"}, {**ok, "usageLimit": 0}, {**ok, "usageLimit": 10 ** 12},
                {**ok, "startsAt": "2024-05-01T00:00:00Z", "endsAt": "2024-04-01T00:00:00Z"},
                {**ok, "endsAt": "2024-04-01T00:00:00"}, {**ok, "usedCount": 5}, {**ok, "code": "has space"}):
        r = await api.post("/api/v1/coupons", as_=staff, json=bad)
        assert r.status == 400 and r.error["code"] == "VALIDATION_ERROR", bad
    cid = await make_coupon(db, tenant.id, "USED", "FIXED", "10", usage_limit=10, used_count=5)
    r = await api.patch(f"/api/v1/coupons/{cid}", as_=staff, json={"usageLimit": 4})
    assert r.status == 400 and r.error["code"] == "VALIDATION_ERROR"
    r = await api.patch(f"/api/v1/coupons/{cid}", as_=staff, json={"value": 50})
    assert r.status == 400
    for call in (api.get(f"/api/v1/coupons/{uuid.uuid4()}", as_=staff),
                 api.patch(f"/api/v1/coupons/{uuid.uuid4()}", as_=staff, json={"active": False}),
                 api.delete(f"/api/v1/coupons/{uuid.uuid4()}", as_=staff)):
        r = await call
        assert r.status == 404 and r.error["code"] == "COUPON_NOT_FOUND"


async def test_coupon_value_below_a_cent_or_with_more_than_two_decimals_is_400(api, tenant):
    staff = await tenant.user("staff")
    for value in (4.896099250035983e-93, 0.001, 10.555):
        r = await api.post("/api/v1/coupons", as_=staff, json={"code": "TINY", "type": "FIXED", "value": value})
        assert r.status == 400 and "value" in r.error["details"], (value, r.body)
