"""The functions behind `commerce user create` and `commerce apikey create|list|revoke`."""

from __future__ import annotations

import uuid

from engine.identity import cli_support

PROBE_ME = "/api/v1/me"


async def test_cli_creates_users_that_can_log_in(base_settings, tenant, api):
    uid = await cli_support.create_user(base_settings, email="ops@example.com", password="ops-password-1",
                                        role="staff", tenant_slug=tenant.slug)
    r = await api.post("/api/v1/auth/login", json={"email": "ops@example.com", "password": "ops-password-1"})
    assert r.status == 200 and r.data["user"]["id"] == str(uid) and r.data["user"]["permissions"] == ["*"]
    pid = await cli_support.create_user(base_settings, email="p@example.com", password="partner-pass-1",
                                        role="partner", tenant_slug=tenant.slug)
    r = await api.post("/api/v1/auth/login", json={"email": "p@example.com", "password": "partner-pass-1"})
    assert r.data["user"]["partnerBalance"] == 0 and r.data["user"]["id"] == str(pid)


async def test_cli_key_lifecycle(base_settings, tenant, api):
    key_id, plaintext = await cli_support.create_api_key(base_settings, tenant_slug=tenant.slug, name="erp",
                                                         scopes=["orders:write"], plan="enterprise")
    rows = await cli_support.list_api_keys(base_settings, tenant_slug=tenant.slug)
    assert [(r["id"], r["status"], r["plan"], r["scopes"]) for r in rows] == [(key_id, "active", "enterprise", "orders:write")]
    assert plaintext not in str(rows)
    r = await api.get("/api/v1/me", headers={"X-API-Key": plaintext})
    assert r.status == 403  # authenticated (a key has no user to describe), not 401
    assert await cli_support.revoke_api_key(base_settings, tenant_slug=tenant.slug, key_id=str(key_id)) is True
    assert await cli_support.revoke_api_key(base_settings, tenant_slug=tenant.slug, key_id=str(key_id)) is False
    assert await cli_support.revoke_api_key(base_settings, tenant_slug=tenant.slug, key_id=str(uuid.uuid4())) is False
    assert await cli_support.revoke_api_key(base_settings, tenant_slug=tenant.slug, key_id="nope") is False
    assert (await api.get("/api/v1/me", headers={"X-API-Key": plaintext})).status == 401
