"""Refund requests over HTTP (every error code, idempotency, review) and their execution by the
engine job: once per request, never more than was paid, partial refunds recorded on the order."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from decimal import Decimal

from engine import refunds
from engine.payments.sandbox import SandboxProvider
from tests.integration.fulfilment.conftest import advance, arrange_order, now


def _path(order) -> str:
    return f"/api/v1/orders/{order.id}/refund"


async def _delivered(db, database, tenant, buyer, **kw):
    order = await arrange_order(db, tenant.id, buyer.id, **kw)
    await advance(database, order, to="DELIVERED")
    return order


async def test_refund_request_shape_and_every_refusal(api, tenant, db, database):
    buyer, other = await tenant.user(), await tenant.user()
    order = await arrange_order(db, tenant.id, buyer.id, lines=(("2500", 3), ("100", 1)), shipping="350")
    await advance(database, order, to="SHIPPED")
    r = await api.post(_path(order), as_=buyer, json={"reason": "Broken"})
    assert r.status == 400 and r.error["code"] == "CANNOT_REFUND"
    await advance(database, order, to="DELIVERED")

    for body in ({}, {"reason": ""}, {"reason": "   "}, {"reason": "x", "amount": 5}, {"reason": 5},
                 {"reason": "x", "itemIds": []}, {"reason": "x", "itemIds": ["nope"]},
                 {"reason": "x", "itemIds": [str(uuid.uuid4())]}, {"reason": "x" * 501}):
        r = await api.post(_path(order), as_=buyer, json=body)
        assert r.status == 400 and r.error["code"] == "VALIDATION_ERROR", body
    for who, oid in ((other, order.id), (buyer, uuid.uuid4())):
        r = await api.post(f"/api/v1/orders/{oid}/refund", as_=who, json={"reason": "x"})
        assert r.status == 404 and r.error["code"] == "ORDER_NOT_FOUND"
    assert (await api.post(_path(order), json={"reason": "x"})).status == 401

    key = {"Idempotency-Key": "refund-" + uuid.uuid4().hex}
    r = await api.post(_path(order), as_=buyer, headers=key,
                       json={"reason": "Product defective", "itemIds": [str(order.items[0])], "description": "Cap"})
    assert r.status == 201, r.body
    d = r.data
    assert set(d) == {"refundRequestId", "orderId", "orderNumber", "status", "requestedAmount", "items", "message",
                      "createdAt"}
    assert d["status"] == "PENDING_REVIEW" and d["orderId"] == str(order.id)
    assert d["items"] == [{"itemId": str(order.items[0]), "productName": "Thing", "quantity": 3, "amount": 7500}]
    assert d["requestedAmount"] == 7500   # the goods' share: no discount or tax here, shipping stays
    again = await api.post(_path(order), as_=buyer, headers=key,
                           json={"reason": "Product defective", "itemIds": [str(order.items[0])], "description": "Cap"})
    assert again.status == 201 and again.raw == r.raw and again.headers.get("Idempotent-Replayed") == "true"
    r = await api.post(_path(order), as_=buyer, json={"reason": "Again"})
    assert r.status == 409 and r.error["code"] == "REFUND_ALREADY_REQUESTED"


async def test_refund_period_is_counted_from_delivery(api, tenant, db, database, base_settings):
    buyer = await tenant.user()
    days = base_settings.refund_period_days
    late = await arrange_order(db, tenant.id, buyer.id)
    await advance(database, late, to="DELIVERED", delivered_at=now() - dt.timedelta(days=days, minutes=1))
    r = await api.post(_path(late), as_=buyer, json={"reason": "Too late"})
    assert r.status == 400 and r.error["code"] == "REFUND_PERIOD_EXPIRED"
    in_time = await arrange_order(db, tenant.id, buyer.id)
    await advance(database, in_time, to="DELIVERED", delivered_at=now() - dt.timedelta(days=days) + dt.timedelta(minutes=1))
    assert (await api.post(_path(in_time), as_=buyer, json={"reason": "Just in time"})).status == 201


async def test_staff_review_list_approve_reject(api, tenant, db, database):
    buyer = await tenant.user()
    staff = await tenant.user("staff")
    clerk = await tenant.user("staff", permissions=("products:write",))
    a = await _delivered(db, database, tenant, buyer)
    b = await _delivered(db, database, tenant, buyer)
    ra = (await api.post(_path(a), as_=buyer, json={"reason": "A"})).data["refundRequestId"]
    rb = (await api.post(_path(b), as_=buyer, json={"reason": "B"})).data["refundRequestId"]

    assert (await api.get("/api/v1/admin/refunds", as_=buyer)).status == 403
    assert (await api.post(f"/api/v1/admin/refunds/{ra}/approve", as_=clerk, json={})).status == 403
    r = await api.get("/api/v1/admin/refunds", as_=staff, params={"status": "PENDING_REVIEW"})
    assert {x["id"] for x in r.data["refunds"]} == {ra, rb}
    assert r.body["meta"]["pagination"]["total"] == 2
    assert (await api.get("/api/v1/admin/refunds", as_=staff, params={"status": "NOPE"})).status == 400

    r = await api.post(f"/api/v1/admin/refunds/{ra}/approve", as_=staff, json={"amount": 200.01})
    assert r.status == 400 and r.error["code"] == "VALIDATION_ERROR"   # more than requested
    for bad in ({"amount": 0}, {"amount": -1}, {"amount": 1.001}, {"amount": "abc"}, {"amount": 1e20}, {"extra": 1}):
        assert (await api.post(f"/api/v1/admin/refunds/{ra}/approve", as_=staff, json=bad)).status == 400, bad
    r = await api.post(f"/api/v1/admin/refunds/{uuid.uuid4()}/approve", as_=staff, json={})
    assert r.status == 404 and r.error["code"] == "REFUND_NOT_FOUND"

    r = await api.post(f"/api/v1/admin/refunds/{ra}/approve", as_=staff, json={"amount": 150})
    assert r.status == 200 and (r.data["status"], r.data["approvedAmount"]) == ("APPROVED", 150)
    assert await db.fetchval("SELECT count(*) FROM outbox WHERE job = 'execute_refund' AND payload->>'refund_id' = $1",
                             ra) == 1
    r = await api.post(f"/api/v1/admin/refunds/{ra}/reject", as_=staff, json={"reason": "late"})
    assert r.status == 409 and r.error["code"] == "CONFLICT"
    assert (await api.post(f"/api/v1/admin/refunds/{rb}/reject", as_=staff, json={"reason": ""})).status == 400
    r = await api.post(f"/api/v1/admin/refunds/{rb}/reject", as_=staff, json={"reason": "Used product"})
    assert r.status == 200 and (r.data["status"], r.data["reviewNote"]) == ("REJECTED", "Used product")
    # A rejected request no longer blocks a new one.
    assert (await api.post(_path(b), as_=buyer, json={"reason": "B again"})).status == 201


async def test_concurrent_approvals_queue_one_refund(api, tenant, db, database):
    buyer, staff = await tenant.user(), await tenant.user("staff")
    order = await _delivered(db, database, tenant, buyer)
    rid = (await api.post(_path(order), as_=buyer, json={"reason": "x"})).data["refundRequestId"]
    answers = await asyncio.gather(*[api.post(f"/api/v1/admin/refunds/{rid}/approve", as_=staff, json={})
                                     for _ in range(8)])
    assert sorted(a.status for a in answers) == [200] + [409] * 7
    assert await db.fetchval("SELECT count(*) FROM outbox WHERE job = 'execute_refund' AND payload->>'refund_id' = $1",
                             rid) == 1


async def _approved(database, order, tenant_id, amount: str, items=None) -> uuid.UUID:
    """A request APPROVED straight in the database (bypassing the one-open-request rule)."""
    async with database.transaction() as conn:
        rid = await conn.fetchval(
            "INSERT INTO refund_requests (tenant_id, order_id, user_id, status, reason, requested_amount,"
            " approved_amount) SELECT tenant_id, id, user_id, 'APPROVED', 'test', $2, $2 FROM orders WHERE id = $1"
            " RETURNING id", order.id, Decimal(amount))
        for item_id, qty in items or []:
            await conn.execute("INSERT INTO refund_request_items (request_id, order_item_id, quantity, amount)"
                               " VALUES ($1, $2, $3, 0)", rid, item_id, qty)
    return rid


async def test_execute_twice_refunds_once_and_a_full_refund_restocks(tenant, db, database, base_settings):
    buyer = await tenant.user()
    order = await _delivered(db, database, tenant, buyer)   # 2 x 100
    rid = await _approved(database, order, tenant.id, "200.00", [(order.items[0], 2)])
    provider = SandboxProvider(base_settings, database)
    outcomes = [await refunds.execute_refund(database, provider, rid, restock=True, now=now()) for _ in range(2)]
    assert outcomes == ["COMPLETED", "COMPLETED"]
    o = await db.fetchrow("SELECT status, payment_status, refunded_amount FROM orders WHERE id = $1", order.id)
    assert (o["status"], o["payment_status"], o["refunded_amount"]) == ("REFUNDED", "REFUNDED", Decimal("200.00"))
    assert await db.fetchval("SELECT count(*) FROM sandbox_refunds WHERE idempotency_key = $1",
                             refunds.idempotency_key(rid)) == 1
    s = await db.fetchrow("SELECT sold, available FROM stock WHERE id = $1", order.stock_ids[0])
    assert (s["sold"], s["available"]) == (0, 10)
    assert await db.fetchval("SELECT refunded_quantity FROM order_items WHERE id = $1", order.items[0]) == 2


async def test_concurrent_executions_never_refund_more_than_paid(tenant, db, database, base_settings):
    buyer = await tenant.user()
    order = await _delivered(db, database, tenant, buyer)   # 200 paid
    first = await _approved(database, order, tenant.id, "150.00")
    second = await _approved(database, order, tenant.id, "150.00")
    provider = SandboxProvider(base_settings, database)
    runs = [refunds.execute_refund(database, provider, rid, restock=False, now=now())
            for rid in (first, second, first, second)]
    results = await asyncio.gather(*runs)
    assert sorted(set(results)) == ["COMPLETED", "FAILED"]
    o = await db.fetchrow("SELECT status, refunded_amount FROM orders WHERE id = $1", order.id)
    assert (o["status"], o["refunded_amount"]) == ("DELIVERED", Decimal("150.00"))
    assert await db.fetchval("SELECT coalesce(sum(s.amount), 0) FROM sandbox_refunds s WHERE s.payment_ref ="
                             " (SELECT payment_ref FROM payments WHERE order_id = $1)", order.id) == Decimal("150.00")


async def test_partial_refund_is_recorded_without_status_change(api, tenant, db, database, base_settings):
    buyer, staff = await tenant.user(), await tenant.user("staff")
    order = await arrange_order(db, tenant.id, buyer.id, lines=(("100", 2), ("50", 1)))
    await advance(database, order, to="DELIVERED")
    r = await api.post(_path(order), as_=buyer, json={"reason": "one", "itemIds": [str(order.items[1])]})
    rid = r.data["refundRequestId"]
    assert r.data["requestedAmount"] == 50
    await api.post(f"/api/v1/admin/refunds/{rid}/approve", as_=staff, json={})
    provider = SandboxProvider(base_settings, database)
    assert await refunds.execute_refund(database, provider, uuid.UUID(rid), restock=False, now=now()) == "COMPLETED"
    o = await db.fetchrow("SELECT status, payment_status, refunded_amount FROM orders WHERE id = $1", order.id)
    assert (o["status"], o["payment_status"], o["refunded_amount"]) == ("DELIVERED", "PAID", Decimal("50.00"))
    s = await db.fetchrow("SELECT sold FROM stock WHERE id = $1", order.stock_ids[1])
    assert s["sold"] == 1   # restock_on_refund=False keeps it out of stock
    # The refunded item cannot be asked for again; the rest can, for all the money left.
    r = await api.post(_path(order), as_=buyer, json={"reason": "again", "itemIds": [str(order.items[1])]})
    assert r.status == 400 and r.error["code"] == "CANNOT_REFUND"
    r = await api.post(_path(order), as_=buyer, json={"reason": "rest"})
    assert r.status == 201 and r.data["requestedAmount"] == 200
    assert [i["itemId"] for i in r.data["items"]] == [str(order.items[0])]


async def test_another_tenants_staff_sees_nothing(api, tenant, db, database, base_settings):
    import secrets

    from tests.conftest import Tenant
    slug = f"t-{secrets.token_hex(6)}"
    other = Tenant(await db.fetchval("INSERT INTO tenants (slug, name) VALUES ($1, $1) RETURNING id", slug),
                   slug, db, base_settings)
    intruder = await other.user("staff")
    buyer = await tenant.user()
    order = await _delivered(db, database, tenant, buyer)
    rid = (await api.post(_path(order), as_=buyer, json={"reason": "x"})).data["refundRequestId"]
    method = await db.fetchval(
        "INSERT INTO shipping_methods (tenant_id, name, carrier, min_days, max_days, currency, zones, weight_bands)"
        " VALUES ($1, 'M', 'C', 1, 2, 'RUB', '[{\"countries\": [\"RU\"]}]', '[{\"maxGrams\": null, \"price\": 1}]')"
        " RETURNING id", tenant.id)
    h = {"X-Tenant": slug}
    calls = [("POST", f"/api/v1/admin/refunds/{rid}/approve", {}, "REFUND_NOT_FOUND"),
             ("POST", f"/api/v1/admin/refunds/{rid}/reject", {"reason": "x"}, "REFUND_NOT_FOUND"),
             ("PATCH", f"/api/v1/shipping/methods/{method}", {"name": "pwned"}, "SHIPPING_METHOD_NOT_FOUND"),
             ("DELETE", f"/api/v1/shipping/methods/{method}", None, "SHIPPING_METHOD_NOT_FOUND"),
             ("POST", f"/api/v1/admin/orders/{order.id}/ship", {}, "ORDER_NOT_FOUND"),
             ("GET", f"/api/v1/orders/{order.id}/tracking", None, "ORDER_NOT_FOUND")]
    for verb, path, body, code in calls:
        r = await api.call(verb, path, as_=intruder, json=body, headers=h)
        assert r.status == 404 and r.error["code"] == code, (verb, path, r.status)
    assert (await api.get("/api/v1/admin/refunds", as_=intruder, headers=h)).data["refunds"] == []
    assert await db.fetchval("SELECT status FROM refund_requests WHERE id = $1::uuid", rid) == "PENDING_REVIEW"
    assert await db.fetchval("SELECT name FROM shipping_methods WHERE id = $1", method) == "M"
