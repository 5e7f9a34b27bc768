"""Role, permission and account-state changes take effect on the next request, without a
PostgreSQL query on the request path of an authenticated request (web/auth.py)."""

from __future__ import annotations

import redis.asyncio as aioredis

from engine.identity import cli_support
from engine.identity.account_versions import key as version_key
from tests.integration.conftest_identity import probe_api
from web import keys

BASE = "/api/v1"
WHOAMI = f"{BASE}/test-identity/whoami"


async def _login(api, user) -> dict[str, str]:
    r = await api.post(f"{BASE}/auth/login", json={"email": user.email, "password": user.password})
    assert r.status == 200, r.body
    return {"Authorization": f"Bearer {r.data['accessToken']}"}


async def test_demoted_staff_loses_access_on_the_next_request(api, tenant):
    admin = await tenant.user("staff")
    clerk = await tenant.user("staff", permissions=("api_keys:read", "users:write"))
    old = await _login(api, clerk)
    assert (await api.get(f"{BASE}/api-keys", headers=old)).status == 200

    r = await api.patch(f"{BASE}/admin/users/{clerk.id}/access", as_=admin, json={"role": "customer"})
    assert r.status == 200 and r.data["role"] == "customer" and r.data["permissions"] == []

    r = await api.get(f"{BASE}/api-keys", headers=old)
    assert r.status == 401 and r.error["code"] == "UNAUTHORIZED"
    assert (await api.get(f"{BASE}/me", headers=old)).status == 401
    new = await _login(api, clerk)  # signing in again gives a token of the new role
    assert (await api.get(f"{BASE}/api-keys", headers=new)).status == 403
    assert (await api.get(f"{BASE}/me", headers=new)).data["role"] == "customer"


async def test_stripped_permissions_and_refresh(api, tenant):
    admin = await tenant.user("staff")
    clerk = await tenant.user("staff", permissions=("api_keys:read", "products:write"))
    r = await api.post(f"{BASE}/auth/login", json={"email": clerk.email, "password": clerk.password})
    old, refresh = {"Authorization": f"Bearer {r.data['accessToken']}"}, r.data["refreshToken"]
    r = await api.patch(f"{BASE}/admin/users/{clerk.id}/access", as_=admin,
                        json={"role": "staff", "permissions": ["products:write"]})
    assert r.status == 200 and r.data["permissions"] == ["products:write"]
    assert (await api.get(f"{BASE}/api-keys", headers=old)).status == 401
    # A refresh issues a token of the current version, with the current permissions.
    r = await api.post(f"{BASE}/auth/refresh", json={"refreshToken": refresh})
    fresh = {"Authorization": f"Bearer {r.data['accessToken']}"}
    assert (await api.get(f"{BASE}/me", headers=fresh)).data["permissions"] == ["products:write"]
    assert (await api.get(f"{BASE}/api-keys", headers=fresh)).status == 403


async def test_disabling_an_account_ends_its_tokens_and_sign_ins(api, tenant):
    admin = await tenant.user("staff")
    user = await tenant.user("customer")
    token = await _login(api, user)
    r = await api.patch(f"{BASE}/admin/users/{user.id}/access", as_=admin, json={"role": "customer", "disabled": True})
    assert r.status == 200
    assert (await api.get(f"{BASE}/me", headers=token)).status == 401
    r = await api.post(f"{BASE}/auth/login", json={"email": user.email, "password": user.password})
    assert r.status == 401 and r.error["code"] == "INVALID_CREDENTIALS"
    await api.patch(f"{BASE}/admin/users/{user.id}/access", as_=admin, json={"role": "customer", "disabled": False})
    assert (await api.get(f"{BASE}/me", headers=token)).status == 401  # re-enabling does not revive old tokens
    assert (await api.get(f"{BASE}/me", headers=await _login(api, user))).status == 200


async def test_a_caller_cannot_grant_more_than_it_holds(api, tenant):
    admin = await tenant.user("staff")
    clerk = await tenant.user("staff", permissions=("users:write",))
    customer = await tenant.user("customer")
    r = await api.patch(f"{BASE}/admin/users/{customer.id}/access", as_=clerk, json={"role": "staff", "permissions": ["*"]})
    assert r.status == 403
    r = await api.patch(f"{BASE}/admin/users/{clerk.id}/access", as_=clerk,
                        json={"role": "staff", "permissions": ["users:write", "orders:write"]})
    assert r.status == 403
    r = await api.patch(f"{BASE}/admin/users/{admin.id}/access", as_=admin, json={"role": "customer"})
    assert r.status == 403  # nobody changes their own access through the API
    r = await api.patch(f"{BASE}/admin/users/{admin.id}/access", as_=clerk, json={"role": "customer"})
    assert r.status == 403  # an account holding '*' is changed only by another holder of '*'
    r = await api.patch(f"{BASE}/admin/users/{customer.id}/access", as_=customer, json={"role": "staff"})
    assert r.status == 403
    r = await api.patch(f"{BASE}/admin/users/{customer.id}/access", as_=admin,
                        json={"role": "customer", "permissions": ["orders:write"]})
    assert r.status == 400 and r.error["code"] == "VALIDATION_ERROR"


async def test_cli_set_access_takes_effect_on_the_next_request(base_settings, api, tenant):
    clerk = await tenant.user("staff", permissions=("api_keys:read",))
    old = await _login(api, clerk)
    assert (await api.get(f"{BASE}/api-keys", headers=old)).status == 200
    uid, published = await cli_support.set_access(base_settings, email=clerk.email, role="partner",
                                                  tenant_slug=tenant.slug)
    assert uid == clerk.id and published is True
    assert (await api.get(f"{BASE}/api-keys", headers=old)).status == 401
    assert (await api.get(f"{BASE}/me", headers=await _login(api, clerk))).data["role"] == "partner"


class _NoDatabase:
    """Stands in for the authenticator's database: any use is a test failure."""

    def connection(self):  # type: ignore[no-untyped-def]
        raise AssertionError("the request path of a bearer token queried PostgreSQL")


async def test_an_authenticated_request_makes_no_database_query(base_settings, tenant):
    async with probe_api(base_settings, tenant.slug) as api:
        user = await tenant.user("staff")
        token = await _login(api, user)
        assert (await api.get(WHOAMI, headers=token)).status == 200   # a miss: loaded from PostgreSQL, published
        auth = api.client.server.app[keys.AUTH]
        real, auth.db = auth.db, _NoDatabase()
        try:
            for _ in range(3):
                assert (await api.get(WHOAMI, headers=token)).status == 200
        finally:
            auth.db = real


async def test_a_version_redis_lost_is_reloaded_from_postgres_not_trusted(base_settings, tenant, db):
    async with probe_api(base_settings, tenant.slug) as api:
        user = await tenant.user("staff")
        token = await _login(api, user)
        assert (await api.get(WHOAMI, headers=token)).status == 200
        # Redis loses the copy, and the account is demoted by hand in SQL (no publish at all).
        redis = aioredis.from_url(base_settings.redis_url)
        try:
            await redis.delete(version_key(base_settings.redis_prefix, user.id))
            await db.execute("UPDATE users SET role = 'customer', permissions = '{}' WHERE id = $1", user.id)
            assert (await api.get(WHOAMI, headers=token)).status == 401
            assert await redis.get(version_key(base_settings.redis_prefix, user.id)) == b"2"  # republished
        finally:
            await redis.aclose()
