"""The Redis rate limiter: exact per-minute budgets, the tightest limit answers, shared by every
API process, with X-RateLimit-* headers and 429 + Retry-After."""

from __future__ import annotations

import asyncio
import time

from tests.integration.conftest_identity import header_ints, probe_api, unique_prefix, with_key
from web.app import route_tables

PROBE = "/api/v1/test-identity"


async def test_third_checkout_within_a_minute_is_429_with_headers(base_settings, tenant):
    async with probe_api(base_settings, tenant.slug, redis_prefix=unique_prefix(), rate_financial=2) as api:
        user = await tenant.user("customer")
        before = int(time.time())
        first = await api.post(f"{PROBE}/checkout", as_=user)
        second = await api.post(f"{PROBE}/checkout", as_=user)
        third = await api.post(f"{PROBE}/checkout", as_=user)
        assert (first.status, second.status, third.status) == (200, 200, 429)
        h1, h2, h3 = header_ints(first), header_ints(second), header_ints(third)
        assert (h1["limit"], h1["remaining"], h1["policy"]) == (2, 1, "financial")
        assert (h2["remaining"], h3["remaining"], h3["policy"]) == (0, 0, "financial")
        assert before + 59 <= h3["reset"] <= before + 62
        assert third.error["code"] == "RATE_LIMIT_EXCEEDED"
        assert 55 <= int(third.headers["Retry-After"]) <= 60
        # The budget is per user: someone else can still check out.
        other = await tenant.user("customer")
        assert (await api.post(f"{PROBE}/checkout", as_=other)).status == 200


async def test_ten_concurrent_checkouts_by_one_user_exactly_two_pass(base_settings, tenant):
    async with probe_api(base_settings, tenant.slug, redis_prefix=unique_prefix(), rate_financial=2) as api:
        user = await tenant.user("customer")
        results = await asyncio.gather(*[api.post(f"{PROBE}/checkout", as_=user) for _ in range(10)])
        assert sorted(r.status for r in results) == [200] * 2 + [429] * 8


async def test_limits_are_shared_by_two_api_processes(base_settings, tenant):
    prefix = unique_prefix()
    async with probe_api(base_settings, tenant.slug, redis_prefix=prefix, rate_financial=2) as a, \
            probe_api(base_settings, tenant.slug, redis_prefix=prefix, rate_financial=2) as b:
        user = await tenant.user("customer")
        assert (await a.post(f"{PROBE}/checkout", as_=user)).status == 200
        assert (await b.post(f"{PROBE}/checkout", as_=user)).status == 200
        assert (await a.post(f"{PROBE}/checkout", as_=user)).status == 429
        assert (await b.post(f"{PROBE}/checkout", as_=user)).status == 429


async def test_every_limited_response_carries_headers_and_remaining_counts_down(base_settings, tenant):
    async with probe_api(base_settings, tenant.slug, redis_prefix=unique_prefix(), rate_cart=5) as api:
        user = await tenant.user("customer")
        seen = []
        for _ in range(6):
            r = await api.get(f"{PROBE}/cart", as_=user)
            seen.append((r.status, header_ints(r)["remaining"], header_ints(r)["policy"]))
        assert seen == [(200, 4, "cart"), (200, 3, "cart"), (200, 2, "cart"), (200, 1, "cart"), (200, 0, "cart"),
                        (429, 0, "cart")]
        # A route without a policy is not limited and says nothing about limits.
        r = await api.get(f"{PROBE}/unlimited", as_=user)
        assert r.status == 200 and "X-RateLimit-Limit" not in r.headers


async def test_the_tightest_limit_answers(base_settings, tenant):
    async with probe_api(base_settings, tenant.slug, redis_prefix=unique_prefix(), rate_catalogue=5,
                         rate_api_key_standard=3) as api:
        staff = await tenant.user("staff")
        r = await api.post("/api/v1/api-keys", as_=staff, json={"name": "k", "scopes": []})
        key = r.data["key"]
        statuses = []
        for _ in range(4):
            r = await with_key(api, "GET", f"{PROBE}/catalogue", key)
            statuses.append((r.status, r.headers["X-RateLimit-Policy"], r.headers["X-RateLimit-Limit"]))
        assert statuses == [(200, "api-key-standard", "3")] * 3 + [(429, "api-key-standard", "3")]
        # The plan limit applies on routes without a policy too.
        r = await with_key(api, "GET", f"{PROBE}/whoami", key)
        assert r.status == 429
    async with probe_api(base_settings, tenant.slug, redis_prefix=unique_prefix(), rate_catalogue=2,
                         rate_api_key_standard=10) as api:
        key = (await api.post("/api/v1/api-keys", as_=staff, json={"name": "k", "scopes": []})).data["key"]
        r1 = await with_key(api, "GET", f"{PROBE}/catalogue", key)
        assert header_ints(r1)["policy"] == "catalogue" and header_ints(r1)["remaining"] == 1
        await with_key(api, "GET", f"{PROBE}/catalogue", key)
        r3 = await with_key(api, "GET", f"{PROBE}/catalogue", key)
        assert r3.status == 429 and r3.headers["X-RateLimit-Policy"] == "catalogue"


async def test_enterprise_plan_has_its_own_budget(base_settings, tenant):
    async with probe_api(base_settings, tenant.slug, redis_prefix=unique_prefix(), rate_api_key_standard=1,
                         rate_api_key_enterprise=4) as api:
        staff = await tenant.user("staff")
        key = (await api.post("/api/v1/api-keys", as_=staff,
                              json={"name": "k", "scopes": [], "plan": "enterprise"})).data["key"]
        r = await with_key(api, "GET", f"{PROBE}/whoami", key)
        assert header_ints(r) | {"reset": 0} == {"limit": 4, "remaining": 3, "reset": 0, "policy": "api-key-enterprise"}


async def test_anonymous_callers_are_limited_by_address(base_settings, tenant):
    async with probe_api(base_settings, tenant.slug, redis_prefix=unique_prefix(), rate_catalogue=2,
                         trust_forwarded_for=True) as api:
        for _ in range(2):
            assert (await api.get(f"{PROBE}/catalogue", headers={"X-Forwarded-For": "203.0.113.7"})).status == 200
        r = await api.get(f"{PROBE}/catalogue", headers={"X-Forwarded-For": "203.0.113.7"})
        assert r.status == 429 and r.headers["X-RateLimit-Policy"] == "catalogue"
        # Only the proxy's entry (the last) counts: a client cannot pick a fresh address.
        r = await api.get(f"{PROBE}/catalogue", headers={"X-Forwarded-For": "1.2.3.4, 203.0.113.7"})
        assert r.status == 429
        assert (await api.get(f"{PROBE}/catalogue", headers={"X-Forwarded-For": "203.0.113.8"})).status == 200
    async with probe_api(base_settings, tenant.slug, redis_prefix=unique_prefix(), rate_catalogue=2) as api:
        # Without a trusted proxy, X-Forwarded-For is ignored: every request is 127.0.0.1.
        statuses = [(await api.get(f"{PROBE}/catalogue", headers={"X-Forwarded-For": f"198.51.100.{i}"})).status
                    for i in range(3)]
        assert statuses == [200, 200, 429]


async def test_a_logged_in_user_is_limited_per_user_not_per_address(base_settings, tenant):
    async with probe_api(base_settings, tenant.slug, redis_prefix=unique_prefix(), rate_catalogue=2) as api:
        user = await tenant.user("customer")
        for _ in range(2):
            assert (await api.get(f"{PROBE}/catalogue")).status == 200   # anonymous budget of 127.0.0.1
        assert (await api.get(f"{PROBE}/catalogue")).status == 429
        assert (await api.get(f"{PROBE}/catalogue", as_=user)).status == 200  # the user's own budget


def test_feature_routes_declare_the_documented_policies():
    specs = {(s.method, s.full_path): s for t in route_tables() for s in t.specs}
    expected = {("POST", "/api/v1/cart/checkout"): "financial", ("GET", "/api/v1/products"): "catalogue",
                ("GET", "/api/v1/products/{id}"): "catalogue", ("GET", "/api/v1/cart"): "cart",
                ("POST", "/api/v1/cart/items"): "cart", ("GET", "/api/v1/orders"): "orders"}
    declared = {route: specs[route].policy for route in expected if route in specs}
    assert declared == {route: expected[route] for route in declared}
