"""Signing in and rate limits: no extra guesses, no lock-outs, no free sign-up floods, no stale roles.

Parallel password guesses get at most the budget checked; a stranger's failures on an account do
not lock its owner out; sign-ups from one address are rate limited; a demoted staff member's old
token stops working on the next request; a retry of a stored checkout answer is never refused.
"""

from __future__ import annotations

import asyncio

from tests.conftest import Api
from tests.integration.conftest_identity import unique_prefix
from tests.integration.conftest_orders import make_buyer, make_product, make_shipping_method

LOGIN = "/api/v1/auth/login"


async def test_parallel_password_guesses_get_at_most_the_budget_checked(make_client, tenant):
    api = Api(await make_client(redis_prefix=unique_prefix(), login_max_failures=5,
                                login_max_address_failures=100), tenant.slug)
    victim = await tenant.user("customer")
    answers = await asyncio.gather(*[api.post(LOGIN, json={"email": victim.email, "password": f"guess-{i}"})
                                     for i in range(15)])
    assert sum(r.status == 401 for r in answers) == 5 and sum(r.status == 429 for r in answers) == 10


async def test_a_strangers_failures_do_not_lock_the_owner_out(make_client, tenant):
    api = Api(await make_client(redis_prefix=unique_prefix(), login_max_failures=5, login_max_address_failures=100,
                                trust_forwarded_for=True), tenant.slug)
    victim = await tenant.user("customer")
    for _ in range(10):
        await api.post(LOGIN, headers={"X-Forwarded-For": "203.0.113.9"}, json={"email": victim.email, "password": "x" * 8})
    r = await api.post(LOGIN, headers={"X-Forwarded-For": "198.51.100.7"},
                       json={"email": victim.email, "password": victim.password})
    assert r.status == 200


async def test_sign_up_flood_from_one_address_is_limited(make_client, tenant):
    api = Api(await make_client(redis_prefix=unique_prefix(), rate_auth=20), tenant.slug)
    statuses = [(await api.post("/api/v1/auth/register",
                                json={"email": f"flood{i}@example.com", "password": "password-123"})).status
                for i in range(25)]
    assert statuses.count(201) == 20 and statuses[20:] == [429] * 5


async def test_demoted_staff_token_stops_working_on_the_next_request(api, tenant):
    admin = await tenant.user("staff")
    clerk = await tenant.user("staff")
    r = await api.post(LOGIN, json={"email": clerk.email, "password": clerk.password})
    token = {"Authorization": f"Bearer {r.data['accessToken']}"}
    assert (await api.get("/api/v1/api-keys", headers=token)).status == 200
    assert (await api.patch(f"/api/v1/admin/users/{clerk.id}/access", as_=admin, json={"role": "customer"})).status == 200
    assert (await api.get("/api/v1/api-keys", headers=token)).status == 401
    assert (await api.post("/api/v1/api-keys", headers=token, json={"name": "backdoor"})).status == 401


async def test_a_retry_of_a_stored_checkout_answer_is_not_refused(make_client, tenant, db):
    api = Api(await make_client(redis_prefix=unique_prefix(), rate_financial=1), tenant.slug)
    pid = await make_product(db, tenant.id, price="1000", stock=5)
    method = await make_shipping_method(db, tenant.id)
    buyer = await make_buyer(tenant, db, [(pid, 1)])
    key = {"Idempotency-Key": "hostile-retry"}
    first = await api.post("/api/v1/cart/checkout", as_=buyer.user, json=buyer.body(method), headers=key)
    retry = await api.post("/api/v1/cart/checkout", as_=buyer.user, json=buyer.body(method), headers=key)
    assert (first.status, retry.status) == (201, 201) and retry.raw == first.raw
