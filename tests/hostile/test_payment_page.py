"""Payment page attacks: only the buyer's signed link opens it, only same-site forms post, only unpaid orders move, only our webhook settles.

A stranger with the order id, a forged, edited, expired or other tenant's token, a cross-site
form, or an order no longer awaiting payment moves nothing; the sandbox settles only through
our webhook's verification (issue 13)."""

from __future__ import annotations

import datetime as dt
import time
import uuid

from engine.payments import pay_tokens
from tests.integration.conftest_orders import make_buyer, make_product, make_shipping_method
from tests.integration.payments.page import link_path, submit
from tests.integration.payments.shop import order_state, place_order

SECRET = "test-webhook-secret-0123456789abcdef"


def _untouched(state) -> bool:
    return (state["status"], state["payment_status"]) == ("PENDING_PAYMENT", "PENDING")


async def _events(db, order_id) -> int:
    return await db.fetchval("SELECT count(*) FROM payment_events WHERE order_id = $1", order_id)


async def test_the_order_id_alone_opens_nothing_and_pays_nothing(api, tenant, db):
    order = await place_order(db, tenant.id, (await tenant.user()).id)
    unknown = uuid.uuid4()
    answers = []
    for oid in (order.id, unknown):
        answers.append(await api.get(f"/pay/{oid}"))
        answers.append(await api.post(f"/pay/{oid}/complete"))
        answers.append(await api.post(f"/pay/{oid}/fail"))
    assert {r.status for r in answers} == {404}
    # The same answer whether the order exists or not: a stranger learns nothing.
    assert len({r.raw for r in answers}) == 1 and b"ORD-" not in answers[0].raw
    assert _untouched(await order_state(db, order.id)) and await _events(db, order.id) == 0


async def test_forged_edited_expired_and_foreign_tokens_are_404(api, tenant, db, base_settings):
    order = await place_order(db, tenant.id, (await tenant.user()).id)
    now = int(time.time())
    good = pay_tokens.issue(SECRET, order.id, tenant.id, expires_at=now + 600)
    flipped = good[:10] + ("A" if good[10] != "A" else "B") + good[11:]
    tokens = {
        "other secret": pay_tokens.issue("another-deployment-secret", order.id, tenant.id, expires_at=now + 600),
        "expired": pay_tokens.issue(SECRET, order.id, tenant.id, expires_at=now - 1),
        "other tenant": pay_tokens.issue(SECRET, order.id, uuid.uuid4(), expires_at=now + 600),
        "edited": flipped,
        "truncated": good[:-2],
        "garbage": "%%%not-a-token",
        "huge": "A" * 5000,
    }
    for what, token in tokens.items():
        for method, suffix in (("GET", ""), ("POST", "/complete"), ("POST", "/fail")):
            r = await api.call(method, f"/pay/{token}{suffix}", data={"csrf": pay_tokens.csrf_token(SECRET, token)})
            assert r.status == 404, (what, method, suffix, r.status)
    assert _untouched(await order_state(db, order.id))
    assert (await api.get(f"/pay/{good}")).status == 200


async def test_posts_need_the_page_form_token_and_our_own_site(api, tenant, db, base_settings):
    order = await place_order(db, tenant.id, (await tenant.user()).id)
    path = link_path(base_settings, order.id, tenant.id)
    token = path.rsplit("/", 1)[1]
    csrf = pay_tokens.csrf_token(SECRET, token)
    refused = [
        await api.post(f"{path}/complete"),                                      # no form token
        await api.post(f"{path}/complete", data={"csrf": "0" * 32}),             # a wrong one
        await api.post(f"{path}/complete", data={"csrf": pay_tokens.csrf_token(SECRET, token + "x")}),
        await api.post(f"{path}/complete", data={"csrf": csrf}, headers={"Origin": "https://evil.example"}),
        await api.post(f"{path}/complete", data={"csrf": csrf}, headers={"Origin": "null"}),
        await api.post(f"{path}/complete", data={"csrf": csrf}, headers={"Sec-Fetch-Site": "cross-site"}),
        await api.post(f"{path}/fail", data={"csrf": csrf}, headers={"Sec-Fetch-Site": "same-site"}),
    ]
    assert [r.status for r in refused] == [403] * len(refused)
    assert _untouched(await order_state(db, order.id)) and await _events(db, order.id) == 0
    # A same-origin browser post with the page's token is the buyer pressing Pay.
    ok = await api.client.post(f"{path}/complete", data={"csrf": csrf}, allow_redirects=False,
                               headers={"Sec-Fetch-Site": "same-origin",
                                        "Origin": str(api.client.make_url("")).rstrip("/")})
    assert ok.status == 303
    assert (await order_state(db, order.id))["status"] == "PAID"


async def test_only_an_order_awaiting_payment_is_acted_on(api, tenant, db, base_settings):
    order = await place_order(db, tenant.id, (await tenant.user()).id)
    path = link_path(base_settings, order.id, tenant.id)
    token = path.rsplit("/", 1)[1]
    await db.execute("UPDATE orders SET status = 'CANCELLED' WHERE id = $1", order.id)
    page = await api.get(path)
    assert page.status == 200 and b"/complete" not in page.raw and b"CANCELLED" in page.raw
    for action in ("complete", "fail"):
        r = await api.post(f"{path}/{action}", data={"csrf": pay_tokens.csrf_token(SECRET, token)})
        assert r.status == 409, r.status
    assert await _events(db, order.id) == 0
    assert (await order_state(db, order.id))["payment_status"] == "PENDING"


async def test_the_page_settles_only_through_our_webhook_verification(make_client, tenant, db, base_settings):
    """The sandbox signs with its own secret; our endpoint verifies with ours. When they differ
    the page cannot pay (503, nothing recorded): it holds no key to our webhook."""
    from tests.conftest import Api

    api = Api(await make_client(sandbox_provider_secret="the-providers-secret-differs-0000"), tenant.slug)
    order = await place_order(db, tenant.id, (await tenant.user()).id)
    path = link_path(base_settings.with_(sandbox_provider_secret="the-providers-secret-differs-0000"),
                     order.id, tenant.id)
    r = await submit(api, path)
    assert r.status == 503
    assert _untouched(await order_state(db, order.id)) and await _events(db, order.id) == 0


async def test_with_the_sandbox_off_there_is_no_page_and_no_link(make_client, tenant, db, base_settings):
    from tests.conftest import Api

    api = Api(await make_client(payment_provider="none"), tenant.slug)
    order = await place_order(db, tenant.id, (await tenant.user()).id)
    path = link_path(base_settings, order.id, tenant.id)   # a token that would be valid
    assert (await api.get(path)).status == 404
    token = path.rsplit("/", 1)[1]
    r = await api.post(f"{path}/complete", data={"csrf": pay_tokens.csrf_token(SECRET, token)})
    assert r.status == 404 and _untouched(await order_state(db, order.id))

    product = await make_product(db, tenant.id, price="100", stock=5)
    method = await make_shipping_method(db, tenant.id)
    buyer = await make_buyer(tenant, db, [(product, 1)])
    placed = await api.post("/api/v1/cart/checkout", as_=buyer.user, json=buyer.body(method))
    assert placed.status == 201, placed.body
    assert "paymentUrl" not in placed.data["payment"]


async def test_checkout_link_opens_the_buyers_page_on_the_configured_base(make_client, tenant, db):
    from tests.conftest import Api

    api = Api(await make_client(public_base_url="http://shop.example:9999"), tenant.slug)
    product = await make_product(db, tenant.id, price="100", stock=5)
    method = await make_shipping_method(db, tenant.id)
    buyer = await make_buyer(tenant, db, [(product, 1)])
    placed = await api.post("/api/v1/cart/checkout", as_=buyer.user, json=buyer.body(method))
    url = placed.data["payment"]["paymentUrl"]
    assert url.startswith("http://shop.example:9999/pay/") and placed.data["orderId"] not in url
    grant = pay_tokens.verify(SECRET, url.rsplit("/", 1)[1], now=int(time.time()))
    assert grant is not None and (str(grant.order_id), grant.tenant_id) == (placed.data["orderId"], tenant.id)
    # It lasts the payment window and a grace period, not forever.
    left = grant.expires_at - int(dt.datetime.now(dt.timezone.utc).timestamp())
    assert 0 < left <= 1800 + 3600 + 5
    path = url.removeprefix("http://shop.example:9999")
    assert (await submit(api, path)).status == 303
    assert (await order_state(db, uuid.UUID(placed.data["orderId"])))["status"] == "PAID"
