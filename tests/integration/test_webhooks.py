"""Event webhooks end to end: capture in the change's transaction, signed ordered delivery to a real
receiver on 127.0.0.1, retries with backoff, timeouts, redelivery after a killed worker, SSRF checks."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from engine.payments.webhook import verify_signature
from engine.webhooks import deliveries as engine_deliveries
from tests.integration.conftest_orders import make_buyer, make_product, make_shipping_method
from tests.integration.conftest_webhooks import Receiver, deliver

SUBS = "/api/v1/webhooks/subscriptions"
ORDER_EVENTS = ["order.created", "order.paid", "order.cancelled", "order.shipped", "order.delivered", "order.refunded"]


@pytest.fixture
async def receiver():
    r = await Receiver().start()
    yield r
    await r.stop()


@pytest.fixture
def fast(base_settings):
    """Short backoff and timeout so retries happen within a test."""
    return base_settings.with_(webhook_backoff_base_seconds=0.05, webhook_backoff_max_seconds=0.2,
                               webhook_timeout_seconds=0.5)


async def _subscribe(api, staff, url, events, **extra):
    r = await api.post(SUBS, as_=staff, json={"url": url, "events": events, **extra})
    assert r.status == 201, r.body
    assert r.data["secret"].startswith("whsec_")
    return r.data


async def _log(api, staff, sub_id):
    r = await api.get(f"{SUBS}/{sub_id}/deliveries", as_=staff)
    assert r.status == 200, r.body
    return r.data["deliveries"]


def _event(received):
    return json.loads(received.body)["data"]


async def test_an_orders_life_arrives_in_order_with_valid_signatures(api, tenant, db, database, fast, receiver):
    staff = await tenant.user("staff")
    sub = await _subscribe(api, staff, receiver.url, ORDER_EVENTS)
    pid = await make_product(db, tenant.id, price="1000", stock=10)
    method = await make_shipping_method(db, tenant.id)
    buyer = await make_buyer(tenant, db, [(pid, 1)])
    r = await api.post("/api/v1/cart/checkout", as_=buyer.user, json=buyer.body(method))
    assert r.status == 201, r.body
    oid = r.data["orderId"]
    for target in ("PAID", "PROCESSING", "SHIPPED", "DELIVERED"):
        body = {"status": target}
        if target == "SHIPPED":
            body |= {"carrier": "Russian Post", "trackingNumber": "RP1RU"}
        r = await api.patch(f"/api/v1/orders/{oid}/status", as_=staff, json=body)
        assert r.status == 200, r.body
    # Captured in each change's transaction, with a kick for the worker in the outbox.
    kicks = await db.fetchval("SELECT count(*) FROM outbox WHERE job = 'deliver_webhooks' AND tenant_id = $1", tenant.id)
    assert kicks == 4   # PROCESSING has no event type

    assert (await deliver(database, fast, sub["id"])).startswith("delivered")
    events = [_event(g) for g in receiver.got]
    assert [e["type"] for e in events] == ["order.created", "order.paid", "order.shipped", "order.delivered"]
    assert {e["object"]["orderId"] for e in events} == {oid}
    for g in receiver.got:
        # The payment webhook's own verifier accepts our signature: integrators reuse their code.
        verify_signature(sub["secret"], g.headers["Webhook-Signature"], g.body, now=int(time.time()), tolerance=300)
        assert g.headers["Webhook-Id"] == _event(g)["id"] and g.headers["Webhook-Event"] == _event(g)["type"]
    with pytest.raises(Exception):
        verify_signature("whsec_wrong", receiver.got[0].headers["Webhook-Signature"], receiver.got[0].body,
                         now=int(time.time()), tolerance=300)
    log = await _log(api, staff, sub["id"])
    assert [d["status"] for d in log] == ["DELIVERED"] * 4
    assert all(d["attempts"] == 1 and d["responseStatus"] == 200 and d["nextAttemptAt"] is None for d in log)
    # A second run has nothing to send: at-least-once, not at-least-twice.
    await deliver(database, fast, sub["id"])
    assert len(receiver.got) == 4


async def test_a_receiver_answering_500_three_times_gets_the_event_on_the_fourth_attempt(
        api, tenant, db, database, fast, receiver):
    staff = await tenant.user("staff")
    receiver.statuses = [500, 500, 500]
    sub = await _subscribe(api, staff, receiver.url, ["product.updated"])
    pid = await make_product(db, tenant.id, price="1000", stock=10)
    await db.execute("UPDATE products SET price = 1200 WHERE id = $1", pid)
    for _ in range(200):
        outcome = await deliver(database, fast, sub["id"])
        if outcome.startswith("delivered"):
            break
        await asyncio.sleep(0.05)
        # A failed attempt schedules its retry through the outbox, delayed to the next attempt.
    assert len(receiver.got) == 4
    assert len({g.headers["Webhook-Id"] for g in receiver.got}) == 1
    assert len({g.body for g in receiver.got}) == 1              # byte-identical resend
    assert _event(receiver.got[0])["object"]["price"] == 1200
    [d] = await _log(api, staff, sub["id"])
    assert d["status"] == "DELIVERED" and d["attempts"] == 4 and d["responseStatus"] == 200
    delayed = await db.fetchval("SELECT count(*) FROM outbox WHERE job = 'deliver_webhooks' AND tenant_id = $1"
                                " AND not_before > created_at", tenant.id)
    assert delayed == 3


async def test_retry_window_spent_marks_the_subscription_failing_and_staff_see_why(
        api, tenant, db, database, fast, receiver):
    staff = await tenant.user("staff")
    receiver.statuses = [503] * 100
    sub = await _subscribe(api, staff, receiver.url, ["product.updated"])
    settings = fast.with_(webhook_retry_window_seconds=0.3)
    r = await api.post(f"{SUBS}/{sub['id']}/ping", as_=staff)
    assert r.status == 202 and r.data["eventType"] == "ping"
    for _ in range(100):
        if (await deliver(database, settings, sub["id"])).startswith("gave up"):
            break
        await asyncio.sleep(0.05)
    got = (await api.get(f"{SUBS}/{sub['id']}", as_=staff)).data
    assert got["status"] == "FAILING" and "HTTP 503" in got["failureReason"]
    [d] = await _log(api, staff, sub["id"])
    assert d["status"] == "FAILED" and d["attempts"] >= 2
    # While FAILING nothing is sent; reactivating and "send again" deliver the same event id.
    receiver.statuses = []
    r = await api.post(f"{SUBS}/{sub['id']}/deliveries/{d['id']}/resend", as_=staff)
    assert r.status == 202 and r.data["eventId"] == d["eventId"]
    assert (await api.patch(f"{SUBS}/{sub['id']}", as_=staff, json={"status": "ACTIVE"})).data["status"] == "ACTIVE"
    assert (await deliver(database, settings, sub["id"])).startswith("delivered")
    assert receiver.got[-1].headers["Webhook-Id"] == d["eventId"]


async def test_a_hanging_receiver_times_out_quickly_and_is_retried(api, tenant, db, database, fast, receiver):
    staff = await tenant.user("staff")
    receiver.hang = True
    sub = await _subscribe(api, staff, receiver.url, ["product.updated"])
    await api.post(f"{SUBS}/{sub['id']}/ping", as_=staff)
    started = time.monotonic()
    outcome = await deliver(database, fast, sub["id"])
    took = time.monotonic() - started
    assert outcome.startswith("retry scheduled") and took < 3.0, (outcome, took)
    [d] = await _log(api, staff, sub["id"])
    assert d["status"] == "PENDING" and d["error"].startswith("timeout") and d["nextAttemptAt"] is not None
    # The lease was given back: another run may take the subscription.
    assert await db.fetchval("SELECT lease_until FROM webhook_subscriptions WHERE id = $1::uuid", sub["id"]) is None


async def test_a_worker_killed_mid_delivery_delivers_again_with_the_same_event_id(
        api, tenant, db, database, fast, receiver):
    staff = await tenant.user("staff")
    receiver.hang = True
    sub = await _subscribe(api, staff, receiver.url, ["product.updated"])
    ping = (await api.post(f"{SUBS}/{sub['id']}/ping", as_=staff)).data
    slow = fast.with_(webhook_timeout_seconds=30)
    task = asyncio.create_task(deliver(database, slow, sub["id"]))
    await asyncio.wait_for(receiver.arrived.wait(), 10)
    # The worker dies while the receiver holds the request: no outcome is recorded, and its
    # lease stays taken (a killed process releases nothing) until it lapses.
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await db.execute("UPDATE webhook_subscriptions SET lease_until = now() + interval '1 second',"
                     " lease_token = gen_random_uuid() WHERE id = $1::uuid", sub["id"])
    [d] = await _log(api, staff, sub["id"])
    assert d["status"] == "PENDING" and d["attempts"] == 1
    assert (await deliver(database, fast, sub["id"])).startswith("busy")   # the dead worker's lease
    await asyncio.sleep(1.1)
    # The sweep finds it once the lease lapsed; the redelivered job takes the same path.
    assert str(sub["id"]) in {str(s) for s in await engine_deliveries.due_subscriptions(database)}
    receiver.hang = False
    assert (await deliver(database, fast, sub["id"])).startswith("delivered")
    assert [g.headers["Webhook-Id"] for g in receiver.got] == [ping["eventId"]] * 2
    [d] = await _log(api, staff, sub["id"])
    assert d["status"] == "DELIVERED" and d["attempts"] == 2


async def test_targets_are_refused_outside_dev_mode_and_rechecked_at_delivery(
        api, tenant, make_client, database, fast, receiver):
    from engine.identity.tokens import DEV_KEYS
    from tests.conftest import Api
    staff = await tenant.user("staff")
    # Production mode with the same signing key, so the staff token minted for the test still verifies.
    prod = Api(await make_client(dev_mode=False, jwt_keys=DEV_KEYS, payment_provider="none"), tenant.slug)
    for url in ("https://127.0.0.1/hook", "https://10.1.2.3/hook", "https://169.254.169.254/latest",
                "https://[::1]/hook", "https://[::ffff:127.0.0.1]/hook", "https://localhost/hook",
                "http://example.com/hook", "https://user:pw@example.com/hook", "ftp://example.com/",
                "https://0.0.0.0/", "https://192.168.1.1/", "https://100.64.0.1/"):
        r = await prod.post(SUBS, as_=staff, json={"url": url, "events": ["order.paid"]})
        assert r.status == 400 and r.error["code"] == "VALIDATION_ERROR", (url, r.body)
    # Subscribed in dev mode, then delivered by a worker not in dev mode: refused at connect time.
    sub = await _subscribe(api, staff, receiver.url, ["order.paid"])
    await api.post(f"{SUBS}/{sub['id']}/ping", as_=staff)
    assert (await deliver(database, fast.with_(dev_mode=False), sub["id"])).startswith("retry scheduled")
    assert receiver.got == []
    [d] = await _log(api, staff, sub["id"])
    assert d["error"].startswith("target refused")


async def test_only_webhook_writers_manage_subscriptions_and_the_secret_is_shown_once(api, tenant, receiver):
    staff = await tenant.user("staff")
    customer = await tenant.user("customer")
    clerk = await tenant.user("staff", permissions=("orders:write",))
    for who in (customer, clerk):
        r = await api.post(SUBS, as_=who, json={"url": receiver.url, "events": ["order.paid"]})
        assert r.status == 403, r.body
    sub = await _subscribe(api, staff, receiver.url, ["order.paid", "order.paid"])
    assert sub["events"] == ["order.paid"]
    got = await api.get(f"{SUBS}/{sub['id']}", as_=staff)
    assert got.status == 200 and "secret" not in got.data and sub["secret"] not in got.raw.decode()
    assert (await api.get(SUBS, as_=staff)).data["subscriptions"][0]["id"] == sub["id"]
    for bad in ({"url": receiver.url, "events": []}, {"url": receiver.url, "events": ["order.eaten"]},
                {"url": "not a url", "events": ["order.paid"]}, {"url": receiver.url}):
        assert (await api.post(SUBS, as_=staff, json=bad)).status == 400, bad
    assert (await api.post(f"{SUBS}/{sub['id']}/deliveries/abc/resend", as_=staff)).status == 404
    assert (await api.post(f"{SUBS}/{sub['id']}/deliveries/99999999999999999999/resend", as_=staff)).status == 404
    r = await api.delete(f"{SUBS}/{sub['id']}", as_=staff)
    assert r.status == 200
    assert (await api.get(f"{SUBS}/{sub['id']}", as_=staff)).status == 404
    # Another tenant's staff cannot see it either (tenant isolation).


async def test_stock_events_fire_on_crossing_only_and_shops_without_webhooks_write_nothing(api, tenant, db, receiver):
    staff = await tenant.user("staff")
    pid = await make_product(db, tenant.id, price="10", stock=10)
    await db.execute("UPDATE stock SET on_hand = 3 WHERE product_id = $1", pid)
    assert await db.fetchval("SELECT count(*) FROM webhook_events WHERE tenant_id = $1", tenant.id) == 0
    sub = await _subscribe(api, staff, receiver.url, ["stock.low", "stock.out"], lowStockThreshold=2)
    for on_hand in (5, 3, 2, 1, 0, 4, 1):
        await db.execute("UPDATE stock SET on_hand = $2 WHERE product_id = $1", pid, on_hand)
    rows = await db.fetch("SELECT e.type, e.data FROM webhook_deliveries d JOIN webhook_events e ON e.id = d.event_id"
                          " WHERE d.subscription_id = $1::uuid ORDER BY d.id", sub["id"])
    assert [(r["type"], json.loads(r["data"])["available"]) for r in rows] == [
        ("stock.low", 2), ("stock.out", 0), ("stock.low", 1)]


async def test_an_api_key_with_the_webhooks_scope_manages_subscriptions_and_another_tenant_sees_none(
        api, tenant, db, receiver, base_settings):
    import secrets as _secrets

    from tests.conftest import Tenant
    staff = await tenant.user("staff")
    key = (await api.post("/api/v1/api-keys", as_=staff, json={"name": "erp", "scopes": ["webhooks:write"]})).data
    reader = (await api.post("/api/v1/api-keys", as_=staff, json={"name": "ro", "scopes": ["orders:read"]})).data
    headers = {"X-API-Key": key["key"]}
    r = await api.post(SUBS, headers=headers, json={"url": receiver.url, "events": ["order.paid", "stock.out"]})
    assert r.status == 201, r.body
    assert (await api.get(SUBS, headers={"X-API-Key": reader["key"]})).status == 403
    paused = await api.patch(f"{SUBS}/{r.data['id']}", headers=headers, json={"status": "PAUSED"})
    assert paused.status == 200 and paused.data["status"] == "PAUSED"
    # A paused subscription captures nothing.
    pid = await make_product(db, tenant.id, price="10", stock=1)
    await db.execute("UPDATE stock SET on_hand = 0 WHERE product_id = $1", pid)
    assert await db.fetchval("SELECT count(*) FROM webhook_events WHERE tenant_id = $1", tenant.id) == 0
    slug = f"t-o-{_secrets.token_hex(5)}"
    other = Tenant(await db.fetchval("INSERT INTO tenants (slug, name) VALUES ($1, $1) RETURNING id", slug),
                   slug, db, base_settings)
    other_staff = await other.user("staff")
    assert (await api.get(SUBS, as_=other_staff, headers={"X-Tenant": slug})).data["subscriptions"] == []
    assert (await api.get(f"{SUBS}/{r.data['id']}", as_=other_staff, headers={"X-Tenant": slug})).status == 404


async def test_cancel_refund_and_edit_events_are_captured_and_summary_updates_are_not(api, tenant, db, receiver):
    staff = await tenant.user("staff")
    sub = await _subscribe(api, staff, receiver.url, ["order.cancelled", "refund.requested", "refund.approved",
                                                      "product.updated"])
    pid = await make_product(db, tenant.id, price="1000", stock=10)
    method = await make_shipping_method(db, tenant.id)
    buyer = await make_buyer(tenant, db, [(pid, 1)])
    oid = (await api.post("/api/v1/cart/checkout", as_=buyer.user, json=buyer.body(method))).data["orderId"]
    r = await api.post(f"/api/v1/orders/{oid}/cancel", as_=buyer.user, json={"reason": "changed my mind"})
    assert r.status == 200, r.body
    await db.execute("UPDATE products SET rating_count = rating_count + 1, units_sold = units_sold + 1 WHERE id = $1",
                     pid)
    await db.execute("UPDATE products SET name = 'Edited' WHERE id = $1", pid)
    rid = await db.fetchval("INSERT INTO refund_requests (tenant_id, order_id, user_id, reason, requested_amount)"
                            " VALUES ($1, $2::uuid, $3, 'broken', 5) RETURNING id", tenant.id, oid, buyer.user.id)
    await db.execute("UPDATE refund_requests SET review_note = 'looking' WHERE id = $1", rid)
    await db.execute("UPDATE refund_requests SET status = 'APPROVED', approved_amount = 5 WHERE id = $1", rid)
    rows = await db.fetch("SELECT e.type, e.data FROM webhook_deliveries d JOIN webhook_events e ON e.id = d.event_id"
                          " WHERE d.subscription_id = $1::uuid ORDER BY d.id", sub["id"])
    assert [r["type"] for r in rows] == ["order.cancelled", "product.updated", "refund.requested", "refund.approved"]
    assert json.loads(rows[3]["data"])["approvedAmount"] == 5


async def test_the_log_purge_drops_old_finished_deliveries_and_their_events_only(api, tenant, db, database, fast,
                                                                                 receiver):
    staff = await tenant.user("staff")
    sub = await _subscribe(api, staff, receiver.url, ["order.paid"])
    old = (await api.post(f"{SUBS}/{sub['id']}/ping", as_=staff)).data
    await deliver(database, fast, sub["id"])
    receiver.hang = True
    pending = (await api.post(f"{SUBS}/{sub['id']}/ping", as_=staff)).data
    await db.execute("UPDATE webhook_deliveries SET created_at = now() - interval '40 days'"
                     " WHERE subscription_id = $1::uuid", sub["id"])
    assert await engine_deliveries.purge_log(database, older_than_days=30) >= 1
    left = await db.fetch("SELECT id FROM webhook_deliveries WHERE subscription_id = $1::uuid", sub["id"])
    assert [r["id"] for r in left] == [pending["id"]]
    assert await db.fetchval("SELECT count(*) FROM webhook_events WHERE id = $1::uuid", old["eventId"]) == 0


async def test_a_name_resolving_to_loopback_is_refused_at_connect_time(receiver):
    """DNS can be re-pointed after validation: the resolver aiohttp connects through refuses it."""
    import aiohttp

    from workers.webhook_http import GuardedResolver, _blocked
    port = receiver.url.split(":")[2].split("/")[0]
    connector = aiohttp.TCPConnector(resolver=GuardedResolver(allow_private=False), use_dns_cache=False)
    async with aiohttp.ClientSession(connector=connector) as session:
        with pytest.raises(aiohttp.ClientError) as caught:
            await session.post(f"http://localhost:{port}/hook", data=b"{}")
    assert _blocked(caught.value)
    assert receiver.got == []
    open_resolver = aiohttp.TCPConnector(resolver=GuardedResolver(allow_private=True), use_dns_cache=False)
    async with aiohttp.ClientSession(connector=open_resolver) as session:
        async with session.post(f"http://localhost:{port}/hook", data=b"{}") as r:
            assert r.status == 200
