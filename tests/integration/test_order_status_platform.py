"""Order status as the platform document's clients speak it (`PATCH /orders/{id}/status`):
one request per platform step, shipping with tracking, refunding and cancelling with the money
moving exactly as on the storefront's routes. The last test is the platform journey end to end:
create -> confirm -> ship with tracking -> deliver (carrier sync) -> refund."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from urllib.parse import urlsplit

from engine import refunds, tracking
from engine.carrier import carrier_for
from engine.carrier.sandbox import MAX_TRANSIT
from tests.integration.payments.page import submit
from tests.integration.conftest_orders import make_buyer, make_product, make_shipping_method, stock_of

CHECKOUT = "/api/v1/cart/checkout"
SHIP = {"status": "shipped", "carrier": "DHL", "trackingNumber": "JD014600006281230704"}


async def _paid_order(api, tenant, db, *, qty: int = 2, role: str = "customer", commission: str = "0"):
    """A checkout paid on the sandbox provider's hosted page (a real captured payment)."""
    pid = await make_product(db, tenant.id, price="1000", stock=10, commission=commission)
    method = await make_shipping_method(db, tenant.id)
    buyer = await make_buyer(tenant, db, [(pid, qty)], role=role)
    r = await api.post(CHECKOUT, as_=buyer.user, json=buyer.body(method))
    assert r.status == 201, r.body
    oid = r.data["orderId"]
    assert (await submit(api, urlsplit(r.data["payment"]["paymentUrl"]).path)).status in (200, 303)
    assert await db.fetchval("SELECT status FROM orders WHERE id = $1::uuid", oid) == "PAID"
    return buyer, pid, oid


async def _patch(api, who, oid, body):
    return await api.patch(f"/api/v1/orders/{oid}/status", as_=who, json=body)


async def _deliver_by_carrier(database, db, oid) -> bool:
    """Let the parcel's whole transit pass, then run the carrier sync as the periodic job does."""
    await db.execute("UPDATE orders SET shipped_at = shipped_at - $2::interval WHERE id = $1::uuid",
                     oid, MAX_TRANSIT + dt.timedelta(minutes=1))
    await db.execute("UPDATE tracking_events SET occurred_at = occurred_at - $2::interval WHERE order_id = $1::uuid",
                     oid, MAX_TRANSIT + dt.timedelta(minutes=1))
    return await tracking.sync_order(database, carrier_for("DHL"), uuid.UUID(oid),
                                     now=dt.datetime.now(dt.timezone.utc))


async def test_paid_to_shipped_in_one_request_records_both_steps_and_tracking(api, tenant, db, database):
    buyer, _, oid = await _paid_order(api, tenant, db)
    staff = await tenant.user("staff")
    r = await _patch(api, staff, oid, {**SHIP, "estimatedDelivery": "2030-01-15"})
    assert r.status == 200, r.body
    assert r.data["status"] == "SHIPPED"
    assert [h["status"] for h in r.data["statusHistory"]] == ["PENDING_PAYMENT", "PAID", "PROCESSING", "SHIPPED"]
    t = (await api.get(f"/api/v1/orders/{oid}/tracking", as_=buyer.user)).data
    assert (t["carrier"], t["trackingNumber"], t["estimatedDelivery"]) == ("DHL", SHIP["trackingNumber"], "2030-01-15")
    assert [e["status"] for e in t["events"]] == ["SHIPPED"]
    # The carrier sync works from what the PATCH recorded: the order becomes DELIVERED by itself.
    assert await _deliver_by_carrier(database, db, oid) is True
    detail = (await api.get(f"/api/v1/orders/{oid}", as_=buyer.user)).data
    assert detail["status"] == "DELIVERED" and detail["canRefund"] is True


async def test_shipping_through_patch_needs_carrier_and_tracking_number(api, tenant, db):
    _, _, oid = await _paid_order(api, tenant, db)
    staff = await tenant.user("staff")
    r = await _patch(api, staff, oid, {"status": "SHIPPED"})
    assert r.status == 400 and set(r.error["details"]) == {"carrier", "trackingNumber"}, r.body
    r = await _patch(api, staff, oid, {"status": "SHIPPED", "carrier": "DHL", "trackingNumber": "  "})
    assert r.status == 400 and set(r.error["details"]) == {"trackingNumber"}, r.body
    r = await _patch(api, staff, oid, {**SHIP, "estimatedDelivery": "next week"})
    assert r.status == 400 and set(r.error["details"]) == {"estimatedDelivery"}, r.body
    # Shipping fields belong to SHIPPED only.
    r = await _patch(api, staff, oid, {"status": "PROCESSING", "trackingNumber": "X1"})
    assert r.status == 400 and set(r.error["details"]) == {"trackingNumber"}, r.body
    # Nothing moved meanwhile.
    assert await db.fetchval("SELECT status FROM orders WHERE id = $1::uuid", oid) == "PAID"


async def test_refunded_through_patch_runs_the_refund_machinery(api, tenant, db, database):
    buyer, pid, oid = await _paid_order(api, tenant, db, role="partner", commission="10")
    staff = await tenant.user("staff")
    r = await _patch(api, staff, oid, {"status": "refunded"})
    assert r.status == 422 and r.error["code"] == "INVALID_STATUS_TRANSITION"   # not delivered yet
    assert (await _patch(api, staff, oid, SHIP)).status == 200
    r = await _patch(api, staff, oid, {"status": "refunded"})
    assert r.status == 422 and r.error["code"] == "INVALID_STATUS_TRANSITION"   # shipped, not delivered
    assert (await _patch(api, staff, oid, {"status": "delivered"})).status == 200
    assert await stock_of(db, pid) == {"on_hand": 10, "available": 8, "reserved": 0, "sold": 2}

    r = await _patch(api, staff, oid, {"status": "refunded", "note": "Goodwill"})
    assert r.status == 200, r.body
    total = await db.fetchval("SELECT total FROM orders WHERE id = $1::uuid", oid)
    assert r.data["status"] == "REFUNDED" and r.data["paymentStatus"] == "REFUNDED"
    assert Decimal(str(r.data["refundedAmount"])) == total
    # Money at the provider, once; a refund record; stock back; the partner's commission reversed.
    assert await db.fetchval("SELECT count(*) FROM sandbox_refunds WHERE payment_ref = $1",
                             f"sbx_{oid.replace('-', '')}") == 1
    req = await db.fetchrow("SELECT status, refunded_amount, reason, reviewed_by FROM refund_requests"
                            " WHERE order_id = $1::uuid", oid)
    assert (req["status"], req["refunded_amount"], req["reason"]) == ("COMPLETED", total, "Goodwill")
    assert req["reviewed_by"] == f"user:{staff.id}"
    assert await stock_of(db, pid) == {"on_hand": 10, "available": 10, "reserved": 0, "sold": 0}
    assert await db.fetchval("SELECT count(*) FROM outbox WHERE job = 'reverse_commission'"
                             " AND payload->>'order_id' = $1", oid) == 1
    r = await _patch(api, staff, oid, {"status": "refunded"})
    assert r.status == 422 and r.error["code"] == "INVALID_STATUS_TRANSITION"   # final
    # The queued execution job, when it runs, finds the request done and moves nothing.
    rid = await db.fetchval("SELECT id FROM refund_requests WHERE order_id = $1::uuid", oid)
    assert await refunds.execute_refund(database, None, rid, restock=True,  # type: ignore[arg-type] (never called)
                                        now=dt.datetime.now(dt.timezone.utc)) == "COMPLETED"
    assert await stock_of(db, pid) == {"on_hand": 10, "available": 10, "reserved": 0, "sold": 0}


async def test_refunding_an_order_confirmed_by_hand_fails_clearly(api, tenant, db):
    """No captured payment (staff confirmed an offline payment): the provider cannot refund it."""
    pid = await make_product(db, tenant.id, price="1000", stock=10)
    method = await make_shipping_method(db, tenant.id)
    buyer = await make_buyer(tenant, db, [(pid, 1)])
    oid = (await api.post(CHECKOUT, as_=buyer.user, json=buyer.body(method))).data["orderId"]
    staff = await tenant.user("staff")
    for body in ({"status": "confirmed"}, SHIP, {"status": "delivered"}):
        assert (await _patch(api, staff, oid, body)).status == 200
    r = await _patch(api, staff, oid, {"status": "refunded"})
    assert r.status == 422 and r.error["code"] == "REFUND_FAILED", r.body
    rid = r.error["refundRequestId"]
    row = await db.fetchrow("SELECT status, failure FROM refund_requests WHERE id = $1::uuid", rid)
    assert row["status"] == "FAILED" and "payment" in row["failure"]
    assert await db.fetchval("SELECT status FROM orders WHERE id = $1::uuid", oid) == "DELIVERED"


async def test_cancelling_a_paid_order_through_patch_refunds_as_the_cancel_route_does(api, tenant, db):
    staff = await tenant.user("staff")
    outcomes = []
    for how in ("patch", "cancel"):
        buyer, pid, oid = await _paid_order(api, tenant, db)
        if how == "patch":
            r = await _patch(api, staff, oid, {"status": "cancelled", "note": "Out of stock"})
        else:
            r = await api.post(f"/api/v1/orders/{oid}/cancel", as_=staff, json={"reason": "Out of stock"})
        assert r.status == 200, r.body
        order = await db.fetchrow("SELECT status, cancel_reason, payment_status FROM orders WHERE id = $1::uuid", oid)
        jobs = await db.fetchval("SELECT count(*) FROM outbox WHERE job = 'refund_cancelled_order'"
                                 " AND payload->>'order_id' = $1", oid)
        outcomes.append((dict(order), jobs, await stock_of(db, pid)))
    assert outcomes[0] == outcomes[1]
    assert outcomes[0] == ({"status": "CANCELLED", "cancel_reason": "Out of stock", "payment_status": "PAID"}, 1,
                           {"on_hand": 10, "available": 10, "reserved": 0, "sold": 0})


async def test_platform_journey_create_confirm_ship_deliver_refund(api, tenant, db, database):
    """A client written from the platform document alone: POST /orders, lowercase statuses."""
    pid = await make_product(db, tenant.id, price="1000", stock=10)
    method = await make_shipping_method(db, tenant.id)
    buyer = await make_buyer(tenant, db)
    staff = await tenant.user("staff")
    r = await api.post("/api/v1/orders", as_=staff, json={
        "items": [{"productId": str(pid), "quantity": 3}], "customerId": str(buyer.user.id),
        "shippingAddressId": str(buyer.address_id), "shippingMethodId": str(method), "paymentMethod": "CARD"})
    assert r.status == 201, r.body
    oid, pay_path = r.data["orderId"], urlsplit(r.data["payment"]["paymentUrl"]).path
    listed = await api.get("/api/v1/orders", as_=staff, params={"status": "pending"})
    assert [o["id"] for o in listed.data["orders"]] == [oid]
    # confirmed: the buyer pays on the provider's page, whose signed webhook confirms the order.
    assert (await submit(api, pay_path)).status in (200, 303)
    listed = await api.get("/api/v1/orders", as_=staff, params={"status": "confirmed"})
    assert [o["id"] for o in listed.data["orders"]] == [oid]
    r = await _patch(api, staff, oid, SHIP)
    assert r.status == 200 and r.data["status"] == "SHIPPED", r.body
    assert await _deliver_by_carrier(database, db, oid) is True
    r = await _patch(api, staff, oid, {"status": "refunded"})
    assert r.status == 200 and r.data["status"] == "REFUNDED", r.body
    assert [h["status"] for h in r.data["statusHistory"]] == [
        "PENDING_PAYMENT", "PAID", "PROCESSING", "SHIPPED", "DELIVERED", "REFUNDED"]
    assert await stock_of(db, pid) == {"on_hand": 10, "available": 10, "reserved": 0, "sold": 0}
    listed = await api.get("/api/v1/orders", as_=staff, params={"status": "refunded"})
    assert [o["id"] for o in listed.data["orders"]] == [oid]


async def test_refunded_through_patch_returns_a_balance_payment_to_the_balance(api, tenant, db):
    pid = await make_product(db, tenant.id, price="1000", stock=10)
    method = await make_shipping_method(db, tenant.id)
    buyer = await make_buyer(tenant, db, [(pid, 1)], role="partner")
    await db.execute("UPDATE partner_balances SET balance = 5000 WHERE user_id = $1", buyer.user.id)
    r = await api.post(CHECKOUT, as_=buyer.user, json=buyer.body(method, paymentMethod="BALANCE"))
    assert r.status == 201 and r.data["status"] == "PAID", r.body
    oid = r.data["orderId"]
    paid = await db.fetchval("SELECT balance FROM partner_balances WHERE user_id = $1", buyer.user.id)
    staff = await tenant.user("staff")
    for body in (SHIP, {"status": "delivered"}):
        assert (await _patch(api, staff, oid, body)).status == 200
    r = await _patch(api, staff, oid, {"status": "refunded"})
    assert r.status == 200 and r.data["status"] == "REFUNDED", r.body
    total = await db.fetchval("SELECT total FROM orders WHERE id = $1::uuid", oid)
    assert await db.fetchval("SELECT balance FROM partner_balances WHERE user_id = $1", buyer.user.id) == paid + total
    assert await stock_of(db, pid) == {"on_hand": 10, "available": 10, "reserved": 0, "sold": 0}
