"""Redis stopped mid-test (a private server, never the machine's): catalogue reads fail open,
the financial policy fails closed with 503 + Retry-After, and the service recovers on its own
when Redis returns."""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.integration.conftest_identity import PrivateRedis, probe_api, with_key

PROBE = "/api/v1/test-identity"


@pytest.fixture
async def private_redis(tmp_path):
    server = PrivateRedis(str(tmp_path))
    await server.start()
    yield server
    await server.stop()


async def test_redis_outage_fails_open_for_reads_closed_for_checkout_and_recovers(base_settings, tenant, private_redis):
    async with probe_api(base_settings, tenant.slug, redis_url=private_redis.url, rate_catalogue=100,
                         rate_financial=5) as api:
        user = await tenant.user("customer")
        staff = await tenant.user("staff")
        key = (await api.post("/api/v1/api-keys", as_=staff, json={"name": "k", "scopes": []})).data["key"]
        r = await api.get(f"{PROBE}/catalogue")
        assert r.status == 200 and r.headers["X-RateLimit-Policy"] == "catalogue"
        assert (await api.post(f"{PROBE}/checkout", as_=user)).status == 200

        await private_redis.stop()
        started = time.monotonic()
        r = await api.get(f"{PROBE}/catalogue")
        assert r.status == 200 and "X-RateLimit-Limit" not in r.headers     # open: served, unlimited
        r = await api.get("/api/v1/me", as_=user)                             # token reads go on too
        assert r.status == 200
        r = await api.post(f"{PROBE}/checkout", as_=user)
        assert r.status == 503 and r.error["code"] == "SERVICE_UNAVAILABLE"   # closed: no unlimited checkouts
        assert int(r.headers["Retry-After"]) >= 1
        # An API key needs no Redis to authenticate, so this is the limiter itself answering.
        r = await with_key(api, "POST", f"{PROBE}/checkout", key)
        assert r.status == 503 and r.error["code"] == "SERVICE_UNAVAILABLE" and "Retry-After" in r.headers
        assert (await with_key(api, "GET", f"{PROBE}/catalogue", key)).status == 200
        assert time.monotonic() - started < 15, "an outage must not make every request hang"
        metrics = (await api.client.get("/metrics"))
        text = await metrics.text()
        assert 'rate_limit_fail_open_total{policy="catalogue"}' in text

        await private_redis.start()  # same port; no restart of the API
        deadline = time.monotonic() + 15
        while True:
            r = await api.get(f"{PROBE}/catalogue")
            if "X-RateLimit-Limit" in r.headers or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.2)
        assert r.status == 200 and r.headers["X-RateLimit-Policy"] == "catalogue"
        r = await api.post(f"{PROBE}/checkout", as_=user)
        assert r.status == 200 and r.headers["X-RateLimit-Policy"] == "financial"


async def test_logout_fails_closed_while_redis_is_down(base_settings, tenant, private_redis):
    async with probe_api(base_settings, tenant.slug, redis_url=private_redis.url) as api:
        user = await tenant.user("customer")
        await private_redis.stop()
        r = await api.delete("/api/v1/auth/logout", as_=user)
        assert r.status == 503 and "Retry-After" in r.headers
        # Login still works (the failure throttle fails open, logged and counted).
        r = await api.post("/api/v1/auth/login", json={"email": user.email, "password": user.password})
        assert r.status == 200


async def test_a_role_change_is_enforced_while_redis_is_down(base_settings, tenant, private_redis, db):
    # Redis down: the account's version comes from PostgreSQL, so a demotion still ends the old
    # token at once (reads go on for tokens that are still current).
    async with probe_api(base_settings, tenant.slug, redis_url=private_redis.url) as api:
        clerk = await tenant.user("staff")
        other = await tenant.user("customer")
        assert (await api.get(f"{PROBE}/whoami", as_=clerk)).status == 200
        await private_redis.stop()
        await db.execute("UPDATE users SET role = 'customer', permissions = '{}' WHERE id = $1", clerk.id)
        assert (await api.get(f"{PROBE}/whoami", as_=clerk)).status == 401
        assert (await api.get(f"{PROBE}/whoami", as_=other)).status == 200
