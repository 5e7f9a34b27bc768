"""Every route's rate-limit policy, and what does not count: a replayed Idempotency-Key answer."""

from __future__ import annotations

from engine.identity import cli_support
from tests.integration.conftest_identity import unique_prefix
from tests.integration.conftest_orders import make_buyer, make_product, make_shipping_method
from tests.conftest import Api
from web.app import route_tables
from web.ratelimit import POLICIES

CHECKOUT = "/api/v1/cart/checkout"
ORDERS = "/api/v1/orders"


def test_every_route_declares_a_known_policy():
    specs = [s for t in route_tables() for s in t.specs]
    assert [f"{s.method} {s.full_path}" for s in specs if s.policy is None] == []
    assert {s.policy for s in specs} <= set(POLICIES)
    by_route = {(s.method, s.full_path): s for s in specs}
    # The shares the issue found by accident are gone; the documents' classes are kept.
    assert by_route[("POST", "/api/v1/products/{id}/reviews")].policy == "reviews"
    assert by_route[("GET", "/api/v1/shipping/methods")].policy == "shipping"
    assert by_route[("GET", "/api/v1/categories")].policy == "categories"
    assert {by_route[("POST", f"/api/v1/auth/{r}")].policy for r in ("register", "login", "refresh")} == {"auth"}
    assert by_route[("POST", ORDERS)].user_policy == "financial" and by_route[("POST", ORDERS)].policy == "orders"


async def test_sign_ups_are_limited_per_address(make_client, tenant):
    api = Api(await make_client(redis_prefix=unique_prefix(), rate_auth=3), tenant.slug)
    answers = [await api.post("/api/v1/auth/register", json={"email": f"s{i}@example.com", "password": "password-123"})
               for i in range(4)]
    assert [r.status for r in answers] == [201, 201, 201, 429]
    assert answers[0].headers["X-RateLimit-Policy"] == "auth" and answers[0].headers["X-RateLimit-Limit"] == "3"


async def test_me_addresses_and_admin_routes_carry_headers(api, tenant):
    staff = await tenant.user("staff")
    for path, policy in (("/api/v1/me", "account"), ("/api/v1/addresses", "account"), ("/api/v1/api-keys", "admin"),
                         ("/api/v1/shipping/methods?country=RU", "shipping"), ("/api/v1/categories", "categories")):
        r = await api.get(path, as_=staff)
        assert r.status < 500 and r.headers["X-RateLimit-Policy"] == policy, (path, r.status, r.headers)
    r = await api.get("/healthz")
    assert r.status == 200 and "X-RateLimit-Limit" not in r.headers   # `unlimited`: probes never see 429


async def test_a_replay_is_answered_when_the_budget_is_spent(make_client, tenant, db):
    api = Api(await make_client(redis_prefix=unique_prefix(), rate_financial=2), tenant.slug)
    pid = await make_product(db, tenant.id, price="1000", stock=5)
    method = await make_shipping_method(db, tenant.id)
    buyer = await make_buyer(tenant, db, [(pid, 1)])
    key = {"Idempotency-Key": "lost-response-1"}
    first = await api.post(CHECKOUT, as_=buyer.user, json=buyer.body(method), headers=key)
    assert first.status == 201, first.body
    empty = await api.post(CHECKOUT, as_=buyer.user, json=buyer.body(method))
    assert empty.status == 400 and empty.error["code"] == "CART_EMPTY"
    # The budget (2) is spent: a new request is refused ...
    assert (await api.post(CHECKOUT, as_=buyer.user, json=buyer.body(method))).status == 429
    # ... but the retry of the first, whose response was lost, gets that response.
    replay = await api.post(CHECKOUT, as_=buyer.user, json=buyer.body(method), headers=key)
    assert replay.status == 201 and replay.headers.get("Idempotent-Replayed") == "true"
    assert replay.raw == first.raw
    # A different request under the same key is not a replay: the refusal stands.
    other = await api.post(CHECKOUT, as_=buyer.user, json=buyer.body(method, notes="x"), headers=key)
    assert other.status == 429
    assert await db.fetchval("SELECT count(*) FROM orders WHERE user_id = $1", buyer.user.id) == 1


async def test_an_admitted_replay_gives_its_slot_back(make_client, tenant, db):
    api = Api(await make_client(redis_prefix=unique_prefix(), rate_financial=2), tenant.slug)
    pid = await make_product(db, tenant.id, price="1000", stock=5)
    method = await make_shipping_method(db, tenant.id)
    buyer = await make_buyer(tenant, db, [(pid, 1)])
    key = {"Idempotency-Key": "lost-response-2"}
    assert (await api.post(CHECKOUT, as_=buyer.user, json=buyer.body(method), headers=key)).status == 201
    for _ in range(3):   # within budget when they arrive, and each gives its slot back
        r = await api.post(CHECKOUT, as_=buyer.user, json=buyer.body(method), headers=key)
        assert r.status == 201 and r.headers["Idempotent-Replayed"] == "true"
    r = await api.post(CHECKOUT, as_=buyer.user, json=buyer.body(method))
    assert r.status == 400 and r.headers["X-RateLimit-Remaining"] == "0"   # the second counted request
    assert (await api.post(CHECKOUT, as_=buyer.user, json=buyer.body(method))).status == 429


async def test_a_customers_order_creation_shares_the_checkout_budget(make_client, base_settings, tenant, db):
    api = Api(await make_client(redis_prefix=unique_prefix(), rate_financial=1), tenant.slug)
    pid = await make_product(db, tenant.id, price="1000", stock=50)
    method = await make_shipping_method(db, tenant.id)
    buyer = await make_buyer(tenant, db, [(pid, 1)])
    assert (await api.post(CHECKOUT, as_=buyer.user, json=buyer.body(method))).status == 201
    order = {"items": [{"productId": str(pid), "quantity": 1}], "shippingAddressId": str(buyer.address_id),
             "shippingMethodId": str(method), "paymentMethod": "BANK_TRANSFER"}
    r = await api.post(ORDERS, as_=buyer.user, json=order)
    assert r.status == 429 and r.headers["X-RateLimit-Policy"] == "financial"
    # An API key keeps the `orders` policy and its plan.
    _, plaintext = await cli_support.create_api_key(base_settings, tenant_slug=tenant.slug, name="erp",
                                                    scopes=["orders:write"])
    r = await api.post(ORDERS, headers={"X-API-Key": plaintext}, json={**order, "customerId": str(buyer.user.id)})
    assert r.status != 429 and r.headers["X-RateLimit-Policy"] in ("orders", "api-key-standard"), (r.status, r.body)
