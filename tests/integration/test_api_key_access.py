"""API keys: both documented headers, and permission problems answered as 403, not as a missing
order or an order that cannot be refunded."""

from __future__ import annotations

import uuid

from tests.integration.conftest_orders import make_buyer, make_product, make_shipping_method

BASE = "/api/v1"


async def _key(api, staff, *scopes: str) -> str:
    r = await api.post(f"{BASE}/api-keys", as_=staff, json={"name": "erp", "scopes": list(scopes)})
    assert r.status == 201, r.body
    return r.data["key"]


async def _order(api, tenant, db) -> str:
    pid = await make_product(db, tenant.id, price="1000", stock=5)
    method = await make_shipping_method(db, tenant.id)
    buyer = await make_buyer(tenant, db, [(pid, 1)])
    r = await api.post(f"{BASE}/cart/checkout", as_=buyer.user, json=buyer.body(method))
    assert r.status == 201, r.body
    return r.data["orderId"]


async def test_authorization_apikey_header_is_the_same_credential_as_x_api_key(api, tenant, db):
    staff = await tenant.user("staff")
    key = await _key(api, staff, "orders:read")
    oid = await _order(api, tenant, db)
    for headers in ({"X-API-Key": key}, {"Authorization": f"ApiKey {key}"}, {"Authorization": f"apikey  {key} "}):
        r = await api.get(f"{BASE}/orders", headers=headers)
        assert r.status == 200, (headers, r.body)
        assert [o["id"] for o in r.data["orders"]] == [oid]
    for headers in ({"Authorization": "ApiKey ck_wrong"}, {"Authorization": "ApiKey "},
                    {"Authorization": f"ApiKey {key}", "X-API-Key": key}):
        r = await api.get(f"{BASE}/orders", headers=headers)
        assert r.status == 401 and r.error["code"] == "UNAUTHORIZED", headers


async def test_a_key_without_orders_read_is_forbidden_not_told_order_not_found(api, tenant, db):
    staff = await tenant.user("staff")
    key = {"X-API-Key": await _key(api, staff, "products:read")}
    oid = await _order(api, tenant, db)
    for path in (f"{BASE}/orders", f"{BASE}/orders/{oid}", f"{BASE}/orders/{uuid.uuid4()}",
                 f"{BASE}/orders/{oid}/tracking"):
        r = await api.get(path, headers=key)
        assert r.status == 403 and r.error["code"] == "FORBIDDEN", (path, r.body)
        assert "orders:read" in r.error["message"]
    r = await api.post(f"{BASE}/orders/{oid}/cancel", headers=key, json={"reason": "erp"})
    assert r.status == 403 and r.error["code"] == "FORBIDDEN"
    # With the scope the same key reads the order (the 403 was about the scope, not the order).
    reader = {"X-API-Key": await _key(api, staff, "orders:read")}
    assert (await api.get(f"{BASE}/orders/{oid}", headers=reader)).status == 200
    # A customer still gets 404 for an order that is not theirs (never revealing it exists).
    stranger = await tenant.user()
    assert (await api.get(f"{BASE}/orders/{oid}", as_=stranger)).status == 404


async def test_a_key_asking_for_a_refund_is_forbidden(api, tenant, db):
    staff = await tenant.user("staff")
    oid = await _order(api, tenant, db)
    for scopes in (("orders:read",), ("orders:write",)):
        key = {"X-API-Key": await _key(api, staff, *scopes)}
        r = await api.post(f"{BASE}/orders/{oid}/refund", headers=key, json={"reason": "Broken"})
        assert r.status == 403 and r.error["code"] == "FORBIDDEN", r.body
        assert "PATCH" in r.error["message"]
