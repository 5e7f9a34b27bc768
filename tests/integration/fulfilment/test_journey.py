"""The whole journey with a real Dramatiq worker: cart -> checkout -> sandbox payment -> PAID ->
PROCESSING -> shipped -> tracking events -> DELIVERED (commission accrued) -> refund request ->
approval -> REFUNDED, with stock, ledger and balance checked at the end."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from urllib.parse import urlsplit

import redis.asyncio as aioredis

from engine.carrier.sandbox import MAX_TRANSIT
from tests.integration.conftest_orders import make_buyer, make_product, make_shipping_method, stock_of
from tests.integration.fulfilment.conftest import eventually
from tests.integration.payments.page import submit
from workers import jobs_fulfilment
from workers.scheduler import Scheduler


async def _status(db, order_id):
    return await db.fetchval("SELECT status FROM orders WHERE id = $1", order_id)


async def test_cart_to_refund_with_a_real_worker(api, tenant, db, assembly, worker):
    staff = await tenant.user("staff")
    product = await make_product(db, tenant.id, price="2500", stock=10, commission="10", points="5")
    method = await make_shipping_method(db, tenant.id, price="350.00")
    buyer = await make_buyer(tenant, db, [(product, 3)], role="partner")

    r = await api.post("/api/v1/cart/checkout", as_=buyer.user, json=buyer.body(method))
    assert r.status == 201, r.body
    order_id = r.data["orderId"]
    checkout_url = r.data["payment"]["paymentUrl"]
    total = Decimal(str(r.data["summary"]["total"]))
    assert (await stock_of(db, product))["reserved"] == 3

    # The buyer pays on the sandbox's hosted page; its signed webhook pays the order.
    r = await submit(api, urlsplit(checkout_url).path)
    assert r.status == 303
    assert await _status(db, order_id) == "PAID"
    assert (await stock_of(db, product))["sold"] == 3

    r = await api.get(f"/api/v1/orders/{order_id}/tracking", as_=buyer.user)
    assert r.status == 400 and r.error["code"] == "NOT_SHIPPED"
    r = await api.patch(f"/api/v1/orders/{order_id}/status", as_=staff, json={"status": "PROCESSING"})
    assert r.status == 200, r.body
    r = await api.post(f"/api/v1/admin/orders/{order_id}/ship", as_=staff,
                       json={"carrier": "Russian Post", "trackingNumber": "RP123456789RU"})
    assert r.status == 200, r.body
    assert r.data["status"] == "SHIPPED" and r.data["trackingNumber"] == "RP123456789RU"
    assert [e["status"] for e in r.data["events"]] == ["SHIPPED"]

    # Time passes for the parcel: it left MAX_TRANSIT ago. One scheduler tick syncs it.
    await db.execute("UPDATE orders SET shipped_at = shipped_at - $2::interval WHERE id = $1::uuid",
                     order_id, MAX_TRANSIT + dt.timedelta(minutes=1))
    await db.execute("UPDATE tracking_events SET occurred_at = occurred_at - $2::interval WHERE order_id = $1::uuid",
                     order_id, MAX_TRANSIT + dt.timedelta(minutes=1))
    async with aioredis.from_url(assembly.settings.redis_url) as redis:
        scheduler = Scheduler(redis, assembly.settings.redis_prefix,
                              jobs_fulfilment.periodic_tasks(assembly.actors, 3600))
        assert [name for name, _ in await scheduler.tick()] == ["tracking_sync"]
        assert await scheduler.tick() == []   # the same tick fires once
    await eventually(lambda: _is(db, order_id, "DELIVERED"))

    r = await api.get(f"/api/v1/orders/{order_id}/tracking", as_=buyer.user)
    assert r.status == 200
    t = r.data
    assert t["status"] == "DELIVERED" and t["deliveredAt"] is not None and t["carrier"] == "Russian Post"
    assert [e["status"] for e in t["events"]] == ["DELIVERED", "OUT_FOR_DELIVERY", "IN_TRANSIT", "SHIPPED"]

    # Delivery accrued the partner's commission: 10 % and 5 % of 7500 net.
    await eventually(lambda: db.fetchval("SELECT balance FROM partner_balances WHERE user_id = $1", buyer.user.id))
    me = (await api.get("/api/v1/me", as_=buyer.user)).data
    assert Decimal(str(me["partnerBalance"])) == Decimal("750")
    assert Decimal(str(me["careerPoints"])) == Decimal("375")

    r = await api.post(f"/api/v1/orders/{order_id}/refund", as_=buyer.user,
                       json={"reason": "Product defective", "description": "Cap damaged"})
    assert r.status == 201, r.body
    refund = r.data
    assert refund["status"] == "PENDING_REVIEW" and Decimal(str(refund["requestedAmount"])) == total
    r = await api.post(f"/api/v1/admin/refunds/{refund['refundRequestId']}/approve", as_=staff, json={})
    assert r.status == 200 and r.data["status"] == "APPROVED"

    await eventually(lambda: _is(db, order_id, "REFUNDED"))
    order = await db.fetchrow("SELECT payment_status, refunded_amount FROM orders WHERE id = $1::uuid", order_id)
    assert (order["payment_status"], order["refunded_amount"]) == ("REFUNDED", total)
    assert await db.fetchval("SELECT count(*) FROM sandbox_refunds WHERE payment_ref = $1",
                             f"sbx_{order_id.replace('-', '')}") == 1
    s = await stock_of(db, product)
    assert (s["sold"], s["available"]) == (0, 10)   # restocked
    await eventually(lambda: _balance_is(db, buyer.user.id, Decimal(0)))
    kinds = [r["kind"] for r in await db.fetch(
        "SELECT kind FROM partner_ledger WHERE order_id = $1::uuid ORDER BY id", order_id)]
    assert kinds == ["COMMISSION", "COMMISSION_REVERSAL"]
    assert await db.fetchval("SELECT sum(amount) FROM partner_ledger WHERE user_id = $1", buyer.user.id) == 0
    detail = (await api.get("/api/v1/admin/refunds", as_=staff, params={"status": "COMPLETED"})).data
    assert [x["id"] for x in detail["refunds"]] == [refund["refundRequestId"]]


async def _is(db, order_id, status):
    return await _status(db, order_id) == status


async def _balance_is(db, user_id, amount):
    return await db.fetchval("SELECT balance FROM partner_balances WHERE user_id = $1", user_id) == amount
