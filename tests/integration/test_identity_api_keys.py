"""API keys (X-API-Key): staff create, list and revoke; scopes are permissions; tenants never mix."""

from __future__ import annotations

import uuid

from tests.conftest import Api
from tests.integration.conftest_identity import probe_api, with_key

BASE = "/api/v1"
PROBE = "/api/v1/test-identity"


async def _create(api: Api, staff, **body) -> dict:
    r = await api.post(f"{BASE}/api-keys", as_=staff, json={"name": "erp", "scopes": ["products:read"], **body})
    assert r.status == 201, r.body
    return r.data


async def test_staff_create_list_and_use_a_key(base_settings, tenant, db):
    async with probe_api(base_settings, tenant.slug) as api:
        staff = await tenant.user("staff")
        created = await _create(api, staff, scopes=["orders:write", "products:read"], plan="enterprise")
        assert created["key"].startswith("ck_") and created["key"].startswith(created["prefix"])
        assert created["scopes"] == ["orders:write", "products:read"] and created["plan"] == "enterprise"
        assert created["active"] is True and created["revokedAt"] is None
        # Shown once: the list has no plaintext, and the table holds only a hash.
        r = await api.get(f"{BASE}/api-keys", as_=staff)
        assert r.status == 200 and r.body["meta"]["pagination"]["total"] == 1
        assert "key" not in r.data["apiKeys"][0] and r.data["apiKeys"][0]["id"] == created["id"]
        stored = await db.fetchrow("SELECT * FROM api_keys WHERE id = $1", uuid.UUID(created["id"]))
        assert created["key"].encode() not in bytes(stored["key_hash"]) and len(stored["key_hash"]) == 32
        # The key authenticates in its tenant, whatever X-Tenant says.
        r = await with_key(api, "GET", f"{PROBE}/whoami", created["key"], headers={"X-Tenant": "default"})
        assert r.status == 200, r.body
        assert r.data == {"tenantId": str(tenant.id), "userId": None, "apiKeyId": created["id"],
                          "plan": "enterprise", "role": None, "permissions": ["orders:write", "products:read"]}


async def test_key_without_products_write_gets_403_on_post_products(base_settings, tenant):
    async with probe_api(base_settings, tenant.slug) as api:
        staff = await tenant.user("staff")
        reader = (await _create(api, staff, scopes=["products:read"]))["key"]
        writer = (await _create(api, staff, scopes=["products:write"]))["key"]
        r = await with_key(api, "POST", f"{BASE}/products", reader, json={"name": "x"})
        assert r.status == 403 and r.error["code"] == "FORBIDDEN", r.body
        r = await with_key(api, "POST", f"{PROBE}/products", reader, json={})
        assert r.status == 403
        r = await with_key(api, "POST", f"{PROBE}/products", writer, json={})
        assert r.status == 200
        # The same rule for people: a customer and a staff member without the permission.
        customer = await tenant.user("customer")
        clerk = await tenant.user("staff", permissions=("orders:read",))
        for who in (customer, clerk):
            assert (await api.post(f"{BASE}/products", as_=who, json={"name": "x"})).status == 403
        editor = await tenant.user("staff", permissions=("products:write",))
        assert (await api.post(f"{PROBE}/products", as_=editor, json={})).status == 200


async def test_revoked_key_fails_on_the_next_request_in_a_second_api_process(base_settings, tenant):
    async with probe_api(base_settings, tenant.slug) as first, probe_api(base_settings, tenant.slug) as second:
        staff = await tenant.user("staff")
        created = await _create(first, staff)
        assert (await with_key(second, "GET", f"{PROBE}/whoami", created["key"])).status == 200
        r = await first.delete(f"{BASE}/api-keys/{created['id']}", as_=staff)
        assert r.status == 200 and r.data["active"] is False and r.data["revokedAt"] is not None
        r = await with_key(second, "GET", f"{PROBE}/whoami", created["key"])
        assert r.status == 401 and r.error["code"] == "UNAUTHORIZED"
        # Revoking again is harmless.
        assert (await first.delete(f"{BASE}/api-keys/{created['id']}", as_=staff)).status == 200


async def test_only_staff_manage_keys_and_never_beyond_their_own_permissions(api, tenant):
    staff = await tenant.user("staff")
    customer = await tenant.user("customer")
    for method, path in (("POST", f"{BASE}/api-keys"), ("GET", f"{BASE}/api-keys"),
                         ("DELETE", f"{BASE}/api-keys/{uuid.uuid4()}")):
        r = await api.call(method, path, as_=customer, json={"name": "x"} if method == "POST" else None)
        assert r.status == 403, (method, r.body)
        assert (await api.call(method, path)).status == 401
    # A key cannot mint keys, even with the scope.
    key = (await _create(api, staff, scopes=["api_keys:write", "api_keys:read"]))["key"]
    r = await with_key(api, "POST", f"{BASE}/api-keys", key, json={"name": "child", "scopes": []})
    assert r.status == 403
    # Staff with key rights but not orders:write cannot hand out orders:write.
    keymaster = await tenant.user("staff", permissions=("api_keys:write", "products:read"))
    r = await api.post(f"{BASE}/api-keys", as_=keymaster, json={"name": "k", "scopes": ["orders:write"]})
    assert r.status == 403
    r = await api.post(f"{BASE}/api-keys", as_=keymaster, json={"name": "k", "scopes": ["products:read"]})
    assert r.status == 201


async def test_key_management_rejects_bad_input(api, tenant):
    staff = await tenant.user("staff")
    cases = [
        ({"name": "k", "scopes": ["*"]}, "scopes"),
        ({"name": "k", "scopes": ["products"]}, "scopes"),
        ({"name": "k", "scopes": "products:read"}, "scopes"),
        ({"name": "k", "scopes": [f"s{i}:read" for i in range(33)]}, "scopes"),
        ({"name": "k", "plan": "platinum"}, "plan"),
        ({"name": ""}, "name"),
        ({"name": "   "}, "name"),
        ({"name": "n" * 201}, "name"),
        ({"name": "k", "id": str(uuid.uuid4())}, "id"),
        ({"name": "k", "tenantId": str(uuid.uuid4())}, "tenantId"),
        ({"name": "k", "revokedAt": None}, "revokedAt"),
    ]
    for body, field in cases:
        r = await api.post(f"{BASE}/api-keys", as_=staff, json=body)
        assert r.status == 400 and any(k.startswith(field) for k in r.error["details"]), (body, r.body)
    assert (await api.delete(f"{BASE}/api-keys/not-a-uuid", as_=staff)).status == 400
    r = await api.delete(f"{BASE}/api-keys/{uuid.uuid4()}", as_=staff)
    assert r.status == 404 and r.error["code"] == "API_KEY_NOT_FOUND"
    for qs in ("page=0", "pageSize=101", "page=abc", "page=99999999999"):
        assert (await api.get(f"{BASE}/api-keys?{qs}", as_=staff)).status == 400, qs
    r = await api.get(f"{BASE}/api-keys?page=50", as_=staff)
    assert r.status == 200 and r.data["apiKeys"] == []


async def test_bad_or_ambiguous_key_headers_are_401(base_settings, tenant):
    async with probe_api(base_settings, tenant.slug) as api:
        staff = await tenant.user("staff")
        key = (await _create(api, staff))["key"]
        for bad in ("nope", "ck_" + "x" * 43, "ck_" + "x" * 500, key + "x"):
            assert (await with_key(api, "GET", f"{PROBE}/whoami", bad)).status == 401, bad
        r = await api.get(f"{PROBE}/whoami", headers={"X-API-Key": key, **staff.headers})
        assert r.status == 401


async def test_tenant_b_cannot_see_or_revoke_tenant_a_keys(api, tenant, db, base_settings):
    from tests.conftest import Tenant

    slug = f"t-{uuid.uuid4().hex[:10]}"
    other = Tenant(await db.fetchval("INSERT INTO tenants (slug, name) VALUES ($1, $1) RETURNING id", slug),
                   slug, db, base_settings)
    staff_a, staff_b = await tenant.user("staff"), await other.user("staff")
    key_a = await _create(api, staff_a)
    r = await api.get(f"{BASE}/api-keys", as_=staff_b)
    assert r.status == 200 and r.data["apiKeys"] == []
    r = await api.delete(f"{BASE}/api-keys/{key_a['id']}", as_=staff_b)
    assert r.status == 404 and r.error["code"] == "API_KEY_NOT_FOUND"
    assert await db.fetchval("SELECT revoked_at FROM api_keys WHERE id = $1", uuid.UUID(key_a["id"])) is None
    # KYC decisions likewise stay inside the tenant.
    user_a = await tenant.user("customer")
    r = await api.patch(f"{BASE}/admin/users/{user_a.id}/kyc", as_=staff_b, json={"kycStatus": "VERIFIED"})
    assert r.status == 404 and r.error["code"] == "USER_NOT_FOUND"
    assert await db.fetchval("SELECT kyc_status FROM users WHERE id = $1", user_a.id) == "NONE"


async def test_staff_record_kyc_decisions(api, tenant):
    staff = await tenant.user("staff")
    partner = await tenant.user("partner")
    r = await api.patch(f"{BASE}/admin/users/{partner.id}/kyc", as_=staff, json={"kycStatus": "VERIFIED"})
    assert r.status == 200 and r.data["kycStatus"] == "VERIFIED" and r.data["id"] == str(partner.id)
    assert (await api.get(f"{BASE}/me", as_=partner)).data["kycStatus"] == "VERIFIED"
    for body in ({"kycStatus": "APPROVED"}, {"kycStatus": "VERIFIED", "role": "staff"}, {}):
        r = await api.patch(f"{BASE}/admin/users/{partner.id}/kyc", as_=staff, json=body)
        assert r.status == 400, body
    # Users cannot verify themselves.
    r = await api.patch(f"{BASE}/admin/users/{partner.id}/kyc", as_=partner, json={"kycStatus": "VERIFIED"})
    assert r.status == 403
    r = await api.patch(f"{BASE}/admin/users/{uuid.uuid4()}/kyc", as_=staff, json={"kycStatus": "VERIFIED"})
    assert r.status == 404
