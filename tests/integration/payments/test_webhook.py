"""The payment webhook, the sandbox's hosted page and staff confirmation, over HTTP."""

from __future__ import annotations

import secrets
import time
import uuid
from decimal import Decimal

from engine.payments.sandbox import payment_ref_of
from engine.payments.webhook import PaymentEvent, encode_event, sign
from tests.integration.payments.page import link_path, submit
from tests.integration.payments.shop import order_state, place_order

WEBHOOK = "/api/v1/payments/webhook"


def signed(settings, order_id, amount, *, kind="payment.succeeded", event_id=None, ts=None, secret=None,
           currency="RUB"):
    ev = PaymentEvent(event_id or "evt_" + secrets.token_hex(8), kind, order_id, payment_ref_of(order_id),
                      Decimal(amount), currency)
    ts = int(time.time()) if ts is None else ts
    body = encode_event(ev, created=ts)
    return body, {"Payment-Signature": sign(secret or settings.payment_webhook_secret, body, ts)}


async def test_paid_event_pays_the_order_and_sells_the_reservation(api, tenant, db, base_settings):
    buyer = await tenant.user()
    order = await place_order(db, tenant.id, buyer.id, quantity=2)
    body, headers = signed(base_settings, order.id, order.total)
    r = await api.post(WEBHOOK, data=body, headers=headers)
    assert r.status == 200 and r.data == {"received": True, "outcome": "PAID"}
    s = await order_state(db, order.id)
    assert (s["status"], s["payment_status"], s["reserved"], s["sold"]) == ("PAID", "PAID", 0, 2)
    history = await db.fetch("SELECT status FROM order_status_history WHERE order_id = $1 ORDER BY id", order.id)
    assert [h["status"] for h in history] == ["PENDING_PAYMENT", "PAID"]
    assert await db.fetchval("SELECT count(*) FROM outbox WHERE job = 'order_paid' AND payload->>'order_id' = $1",
                             str(order.id)) == 1


async def test_a_duplicate_event_changes_nothing(api, tenant, db, base_settings):
    buyer = await tenant.user()
    order = await place_order(db, tenant.id, buyer.id)
    for expected in ("PAID", "DUPLICATE", "DUPLICATE"):
        body, headers = signed(base_settings, order.id, order.total)
        r = await api.post(WEBHOOK, data=body, headers=headers)
        assert r.data["outcome"] == expected
    s = await order_state(db, order.id)
    assert (s["status"], s["reserved"], s["sold"]) == ("PAID", 0, 2)
    assert await db.fetchval("SELECT count(*) FROM outbox WHERE payload->>'order_id' = $1", str(order.id)) == 1


async def test_forged_stale_and_replayed_webhooks_are_refused(api, tenant, db, base_settings):
    buyer = await tenant.user()
    order = await place_order(db, tenant.id, buyer.id)
    body, _ = signed(base_settings, order.id, order.total, secret="not-the-secret")
    forged = await api.post(WEBHOOK, data=body, headers={"Payment-Signature": sign("not-the-secret", body, int(time.time()))})
    unsigned = await api.post(WEBHOOK, data=body)
    stale_body, stale_headers = signed(base_settings, order.id, order.total,
                                       ts=int(time.time()) - base_settings.webhook_tolerance_seconds - 5)
    stale = await api.post(WEBHOOK, data=stale_body, headers=stale_headers)
    for r in (forged, unsigned, stale):
        assert r.status == 401 and r.error["code"] == "INVALID_SIGNATURE"
    assert (await order_state(db, order.id))["status"] == "PENDING_PAYMENT"

    body, headers = signed(base_settings, order.id, order.total, kind="payment.failed")
    assert (await api.post(WEBHOOK, data=body, headers=headers)).data["outcome"] == "FAILED"
    replay = await api.post(WEBHOOK, data=body, headers=headers)
    assert replay.status == 401 and replay.error["code"] == "INVALID_SIGNATURE"


async def test_wrong_amount_or_unknown_order_never_pays(api, tenant, db, base_settings):
    buyer = await tenant.user()
    order = await place_order(db, tenant.id, buyer.id)
    body, headers = signed(base_settings, order.id, order.total - 1)
    assert (await api.post(WEBHOOK, data=body, headers=headers)).data["outcome"] == "IGNORED_AMOUNT_MISMATCH"
    body, headers = signed(base_settings, order.id, order.total, currency="USD")
    assert (await api.post(WEBHOOK, data=body, headers=headers)).data["outcome"] == "IGNORED_AMOUNT_MISMATCH"
    assert (await order_state(db, order.id))["status"] == "PENDING_PAYMENT"
    body, headers = signed(base_settings, uuid.uuid4(), order.total)
    assert (await api.post(WEBHOOK, data=body, headers=headers)).status == 404
    body = b'{"not": "an event"}'
    r = await api.post(WEBHOOK, data=body, headers={"Payment-Signature": sign(base_settings.payment_webhook_secret, body, int(time.time()))})
    assert r.status == 400 and r.error["code"] == "VALIDATION_ERROR"


async def test_hosted_page_pays_through_the_signed_webhook(api, tenant, db, base_settings):
    buyer = await tenant.user()
    order = await place_order(db, tenant.id, buyer.id)
    path = link_path(base_settings, order.id, tenant.id)
    page = await api.get(path)
    assert page.status == 200 and b"/complete" in page.raw and b"200.00" in page.raw
    assert page.headers["Content-Type"].startswith("text/html")
    done = await submit(api, path)
    assert done.status == 303 and done.headers["Location"] == path
    assert (await order_state(db, order.id))["status"] == "PAID"
    assert await db.fetchval("SELECT count(*) FROM processed_webhook_events e JOIN payment_events p"
                             " ON p.event_id = e.event_id WHERE p.order_id = $1", order.id) == 1
    after = await api.get(path)
    assert b"/complete" not in after.raw and b"PAID" in after.raw


async def test_hosted_page_failure_keeps_the_order_payable(api, tenant, db, base_settings):
    buyer = await tenant.user()
    order = await place_order(db, tenant.id, buyer.id)
    path = link_path(base_settings, order.id, tenant.id)
    r = await submit(api, path, "fail")
    assert r.status == 303
    s = await order_state(db, order.id)
    assert (s["status"], s["payment_status"], s["reserved"]) == ("PENDING_PAYMENT", "FAILED", 2)
    await submit(api, path)
    assert (await order_state(db, order.id))["payment_status"] == "PAID"


async def test_staff_confirm_a_bank_transfer(api, tenant, db):
    buyer = await tenant.user()
    staff = await tenant.user("staff", permissions=("orders:write",))
    reader = await tenant.user("staff", permissions=("orders:read",))
    order = await place_order(db, tenant.id, buyer.id, method="BANK_TRANSFER")
    path = f"/api/v1/admin/orders/{order.id}/confirm-payment"
    assert (await api.post(path, as_=buyer)).status == 403
    assert (await api.post(path, as_=reader)).status == 403
    assert (await api.post(path)).status == 401
    r = await api.post(path, as_=staff)
    assert r.status == 200, r.body
    assert r.data["status"] == "PAID" and r.data["paymentStatus"] == "PAID" and r.data["paidAt"]
    assert (await api.post(path, as_=staff)).data["status"] == "PAID"    # again: no-op
    s = await order_state(db, order.id)
    assert (s["reserved"], s["sold"]) == (0, 2)
    changed_by = await db.fetchval("SELECT changed_by FROM order_status_history WHERE order_id = $1 AND status = 'PAID'",
                                   order.id)
    assert changed_by == f"user:{staff.id}"


async def test_staff_confirm_refuses_other_tenants_and_cancelled_orders(api, tenant, db, base_settings):
    from tests.conftest import Tenant

    staff = await tenant.user("staff")
    other_slug = "t-" + secrets.token_hex(6)
    other_id = await db.fetchval("INSERT INTO tenants (slug, name) VALUES ($1, $1) RETURNING id", other_slug)
    other = Tenant(other_id, other_slug, db, base_settings)
    foreign = await place_order(db, other.id, (await other.user()).id)
    r = await api.post(f"/api/v1/admin/orders/{foreign.id}/confirm-payment", as_=staff)
    assert r.status == 404 and r.error["code"] == "ORDER_NOT_FOUND"
    assert (await api.post(f"/api/v1/admin/orders/{uuid.uuid4()}/confirm-payment", as_=staff)).status == 404
    assert (await api.post("/api/v1/admin/orders/123/confirm-payment", as_=staff)).status == 400
    mine = await place_order(db, tenant.id, (await tenant.user()).id)
    await db.execute("UPDATE orders SET status = 'CANCELLED' WHERE id = $1", mine.id)
    r = await api.post(f"/api/v1/admin/orders/{mine.id}/confirm-payment", as_=staff)
    assert r.status == 422 and r.error["code"] == "INVALID_STATUS_TRANSITION"
