"""Orders after checkout: list filters and aliases, detail, status changes, cancel, isolation."""

from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal

from engine import orders as engine_orders
from engine.db import Database
from engine.domain.errors import InvalidStatusTransition
from tests.integration.conftest_orders import make_buyer, make_product, make_shipping_method, stock_of

CHECKOUT = "/api/v1/cart/checkout"


async def _order(api, tenant, db, *, qty: int = 1, stock: int = 10, role: str = "customer", **body):
    pid = await make_product(db, tenant.id, price="1000", stock=stock)
    method = await make_shipping_method(db, tenant.id)
    buyer = await make_buyer(tenant, db, [(pid, qty)], role=role)
    if role == "partner":
        await db.execute("UPDATE partner_balances SET balance = 100000 WHERE user_id = $1", buyer.user.id)
    r = await api.post(CHECKOUT, as_=buyer.user, json=buyer.body(method, **body))
    assert r.status == 201, r.body
    return buyer, pid, r.data["orderId"]


async def test_another_users_or_unknown_order_is_404_and_lists_are_own_only(api, tenant, db):
    buyer, _, oid = await _order(api, tenant, db)
    stranger = await tenant.user()
    for path in (f"/api/v1/orders/{oid}", f"/api/v1/orders/{uuid.uuid4()}"):
        r = await api.get(path, as_=stranger)
        assert r.status == 404 and r.error["code"] == "ORDER_NOT_FOUND"
    r = await api.post(f"/api/v1/orders/{oid}/cancel", as_=stranger, json={"reason": "mine now"})
    assert r.status == 404
    assert (await api.get("/api/v1/orders", as_=stranger)).data["orders"] == []
    assert (await api.get("/api/v1/orders/not-a-uuid", as_=buyer.user)).status == 400
    staff = await tenant.user("staff", permissions=("orders:read",))
    assert (await api.get(f"/api/v1/orders/{oid}", as_=staff)).status == 200
    assert len((await api.get("/api/v1/orders", as_=staff)).data["orders"]) == 1


async def test_list_filters_aliases_and_paging(api, tenant, db):
    buyer, _, oid = await _order(api, tenant, db)
    u = buyer.user
    assert len((await api.get("/api/v1/orders", as_=u, params={"status": "pending"})).data["orders"]) == 1
    assert len((await api.get("/api/v1/orders", as_=u, params={"status": "PENDING_PAYMENT"})).data["orders"]) == 1
    assert (await api.get("/api/v1/orders", as_=u, params={"status": "confirmed"})).data["orders"] == []
    assert len((await api.get("/api/v1/orders", as_=u, params={"from": "2000-01-01"})).data["orders"]) == 1
    assert (await api.get("/api/v1/orders", as_=u, params={"to": "2000-01-01T00:00:00Z"})).data["orders"] == []
    # The storefront spelling wins over the platform one.
    got = await api.get("/api/v1/orders", as_=u, params={"dateFrom": "2000-01-01", "from": "2999-01-01"})
    assert len(got.data["orders"]) == 1
    for bad in ({"pageSize": "101"}, {"page": "0"}, {"status": "lost"}, {"from": "yesterday"},
                {"pageSize": "99999999999999999999"}, {"dateFrom": "0001-01-01T00:00:00+05:00"},
                {"status": ""}, {"dateTo": "2024-13-45"}):
        r = await api.get("/api/v1/orders", as_=u, params=bad)
        assert r.status == 400 and r.error["code"] == "VALIDATION_ERROR", bad
    # Unknown parameters are ignored on every route (docs/DECISIONS.md), as on the catalogue.
    r = await api.get("/api/v1/orders", as_=u, params={"unknown": "1", "status": "pending"})
    assert r.status == 200 and len(r.data["orders"]) == 1
    r = await api.get("/api/v1/orders", as_=u, params={"page": "5", "pageSize": "100"})
    assert r.data["orders"] == [] and r.body["meta"]["pagination"]["total"] == 1


async def test_staff_moves_orders_through_the_state_machine(api, tenant, db):
    buyer, pid, oid = await _order(api, tenant, db, qty=2)
    staff = await tenant.user("staff")
    r = await api.patch(f"/api/v1/orders/{oid}/status", as_=buyer.user, json={"status": "PAID"})
    assert r.status == 403
    ship = {"status": "SHIPPED", "carrier": "Russian Post", "trackingNumber": "RP1RU"}
    r = await api.patch(f"/api/v1/orders/{oid}/status", as_=staff, json=ship)
    assert r.status == 422 and r.error["code"] == "INVALID_STATUS_TRANSITION"
    r = await api.patch(f"/api/v1/orders/{oid}/status", as_=staff, json={"status": "confirmed", "note": "Paid by phone"})
    assert r.status == 200 and r.data["status"] == "PAID" and r.data["paymentStatus"] == "PAID"
    assert r.data["payment"]["paidAt"] is not None
    assert await stock_of(db, pid) == {"on_hand": 10, "available": 8, "reserved": 0, "sold": 2}
    for target in ("PROCESSING", "SHIPPED", "DELIVERED"):
        body = ship if target == "SHIPPED" else {"status": target}
        r = await api.patch(f"/api/v1/orders/{oid}/status", as_=staff, json=body)
        assert r.status == 200 and r.data["status"] == target
    assert r.data["canCancel"] is False and r.data["canRefund"] is True
    history = r.data["statusHistory"]
    assert [h["status"] for h in history] == ["PENDING_PAYMENT", "PAID", "PROCESSING", "SHIPPED", "DELIVERED"]
    assert history[1]["note"] == "Paid by phone"
    assert await db.fetchval("SELECT changed_by FROM order_status_history WHERE order_id = $1 AND status = 'PAID'",
                             uuid.UUID(oid)) == f"user:{staff.id}"
    r = await api.post(f"/api/v1/orders/{oid}/cancel", as_=buyer.user, json={"reason": "too late"})
    assert r.status == 400 and r.error["code"] == "CANNOT_CANCEL"
    r = await api.patch(f"/api/v1/orders/{oid}/status", as_=staff, json={"status": "nonsense"})
    assert r.status == 400


async def test_cancelling_an_unpaid_order_releases_its_reservation(api, tenant, db):
    buyer, pid, oid = await _order(api, tenant, db, qty=3)
    r = await api.post(f"/api/v1/orders/{oid}/cancel", as_=buyer.user, json={"reason": ""})
    assert r.status == 400 and r.error["code"] == "VALIDATION_ERROR"
    r = await api.post(f"/api/v1/orders/{oid}/cancel", as_=buyer.user, json={})
    assert r.status == 400
    key = {"Idempotency-Key": "cancel-1"}
    r = await api.post(f"/api/v1/orders/{oid}/cancel", as_=buyer.user, json={"reason": "Changed my mind"}, headers=key)
    assert r.status == 200, r.body
    assert r.data["status"] == "CANCELLED" and r.data["refundStatus"] is None and r.data["refundAmount"] is None
    again = await api.post(f"/api/v1/orders/{oid}/cancel", as_=buyer.user, json={"reason": "Changed my mind"}, headers=key)
    assert again.raw == r.raw
    assert await stock_of(db, pid) == {"on_hand": 10, "available": 10, "reserved": 0, "sold": 0}
    r = await api.post(f"/api/v1/orders/{oid}/cancel", as_=buyer.user, json={"reason": "again"})
    assert r.status == 400 and r.error["code"] == "CANNOT_CANCEL"
    order = await db.fetchrow("SELECT cancel_reason, cancelled_at FROM orders WHERE id = $1", uuid.UUID(oid))
    assert order["cancel_reason"] == "Changed my mind" and order["cancelled_at"] is not None


async def test_cancelling_a_paid_order_returns_stock_and_queues_a_refund(api, tenant, db):
    buyer, pid, oid = await _order(api, tenant, db, qty=2, role="partner", paymentMethod="BALANCE")
    assert (await stock_of(db, pid))["sold"] == 2
    r = await api.post(f"/api/v1/orders/{oid}/cancel", as_=buyer.user, json={"reason": "Changed my mind"})
    assert r.status == 200, r.body
    total = await db.fetchval("SELECT total FROM orders WHERE id = $1", uuid.UUID(oid))
    assert r.data["refundStatus"] == "PENDING" and Decimal(str(r.data["refundAmount"])) == total
    assert await stock_of(db, pid) == {"on_hand": 10, "available": 10, "reserved": 0, "sold": 0}
    assert await db.fetchval("SELECT count(*) FROM outbox WHERE job = 'refund_cancelled_order'"
                             " AND payload->>'order_id' = $1", oid) == 1


async def test_payment_racing_expiry_has_exactly_one_winner(api, tenant, db, base_settings):
    _, pid, oid = await _order(api, tenant, db, qty=1)
    database = Database(base_settings)
    await database.open()
    try:
        async def move(target: str, actor: str):
            async with database.transaction() as conn:
                await engine_orders.change_status(conn, uuid.UUID(oid), target, actor=actor,
                                                  expect="PENDING_PAYMENT")

        results = await asyncio.gather(move("PAID", "system:payment"), move("CANCELLED", "system:expire_order"),
                                       return_exceptions=True)
    finally:
        await database.close()
    assert sum(r is None for r in results) == 1
    assert sum(isinstance(r, InvalidStatusTransition) for r in results) == 1
    status = await db.fetchval("SELECT status FROM orders WHERE id = $1", uuid.UUID(oid))
    s = await stock_of(db, pid)
    assert (status, s["reserved"], s["sold"], s["available"]) in (("PAID", 0, 1, 9), ("CANCELLED", 0, 0, 10))


async def test_platform_order_from_items_for_self_and_on_behalf_with_orders_write(api, tenant, db):
    pid = await make_product(db, tenant.id, price="1000", stock=10)
    method = await make_shipping_method(db, tenant.id)
    buyer = await make_buyer(tenant, db)
    body = buyer.body(method, items=[{"productId": str(pid), "quantity": 2}])
    r = await api.post("/api/v1/orders", as_=buyer.user, json=body)
    assert r.status == 201, r.body
    assert r.data["summary"]["subtotal"] == 2000
    assert (await stock_of(db, pid))["reserved"] == 2
    # Ordering for someone else needs orders:write.
    other = await make_buyer(tenant, db)
    r = await api.post("/api/v1/orders", as_=buyer.user, json={**body, "customerId": str(other.user.id)})
    assert r.status == 403
    staff = await tenant.user("staff", permissions=("orders:write",))
    r = await api.post("/api/v1/orders", as_=staff,
                       json={**other.body(method, items=[{"productId": str(pid), "quantity": 1}]),
                             "customerId": str(other.user.id)})
    assert r.status == 201, r.body
    assert await db.fetchval("SELECT user_id FROM orders WHERE id = $1", uuid.UUID(r.data["orderId"])) == other.user.id
    for bad, code in (([{"productId": str(uuid.uuid4()), "quantity": 1}], "PRODUCT_NOT_FOUND"),
                      ([{"productId": str(pid), "quantity": 20}], "INSUFFICIENT_STOCK"),
                      ([{"productId": str(pid), "quantity": 100}], "MAX_QUANTITY_EXCEEDED"),
                      ([], "VALIDATION_ERROR"),
                      ([{"productId": str(pid), "quantity": 0}], "VALIDATION_ERROR")):
        r = await api.post("/api/v1/orders", as_=buyer.user, json={**body, "items": bad})
        assert r.error["code"] == code, (bad, r.body)
