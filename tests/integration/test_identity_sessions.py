"""Sign-up, login, refresh, logout and the current user, against real PostgreSQL and Redis."""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid

import jwt

from engine.identity import cli_support
from tests.integration.conftest_identity import probe_api, unique_prefix

BASE = "/api/v1"


async def _register(api, email="ann@example.com", password="correct-horse-1", name="Ann"):
    return await api.post(f"{BASE}/auth/register", json={"email": email, "password": password, "name": name})


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_register_login_me_refresh_logout_round_trip(api, tenant):
    r = await _register(api)
    assert r.status == 201, r.body
    reg = r.data
    assert reg["tokenType"] == "Bearer" and reg["expiresIn"] == 3600
    assert reg["user"]["email"] == "ann@example.com" and reg["user"]["role"] == "customer"
    assert reg["user"]["tenant"]["slug"] == tenant.slug and reg["user"]["kycStatus"] == "NONE"
    assert reg["user"]["partnerBalance"] is None

    r = await api.post(f"{BASE}/auth/login", json={"email": "ANN@example.com", "password": "correct-horse-1"})
    assert r.status == 200, r.body
    access, refresh = r.data["accessToken"], r.data["refreshToken"]
    claims = jwt.decode(access, options={"verify_signature": False})
    assert {"exp", "iat", "iss", "aud", "sub", "jti", "typ", "tid"} <= claims.keys()
    assert claims["exp"] - claims["iat"] == 3600 and jwt.get_unverified_header(access)["kid"]

    r = await api.get(f"{BASE}/me", headers=_bearer(access))
    assert r.status == 200 and r.data["id"] == reg["user"]["id"] and r.data["name"] == "Ann"

    r = await api.post(f"{BASE}/auth/refresh", json={"refreshToken": refresh})
    assert r.status == 200, r.body
    access2, refresh2 = r.data["accessToken"], r.data["refreshToken"]
    assert refresh2 != refresh and access2 != access
    assert (await api.get(f"{BASE}/me", headers=_bearer(access2))).status == 200

    r = await api.delete(f"{BASE}/auth/logout", headers=_bearer(access2))
    assert r.status == 200, r.body
    r = await api.get(f"{BASE}/me", headers=_bearer(access2))
    assert r.status == 401 and r.error["code"] == "UNAUTHORIZED"
    # The refresh family is gone with it.
    r = await api.post(f"{BASE}/auth/refresh", json={"refreshToken": refresh2})
    assert r.status == 401
    # A login's other sessions are unaffected: the first access token was of the same family,
    # so it is denied too; a fresh login works.
    assert (await api.get(f"{BASE}/me", headers=_bearer(access))).status == 401
    r = await api.post(f"{BASE}/auth/login", json={"email": "ann@example.com", "password": "correct-horse-1"})
    assert r.status == 200


async def test_register_rejects_bad_input_and_mass_assignment(api, tenant):
    cases = [
        ({"email": "a@example.com", "password": "long-enough-1", "role": "staff"}, "role"),
        ({"email": "a@example.com", "password": "long-enough-1", "tenantId": str(uuid.uuid4())}, "tenantId"),
        ({"email": "a@example.com", "password": "long-enough-1", "kycStatus": "VERIFIED"}, "kycStatus"),
        ({"email": "not-an-email", "password": "long-enough-1"}, "email"),
        ({"email": "a@example.com", "password": "short"}, "password"),
        ({"email": "a@example.com", "password": "x" * 129}, "password"),
        ({"email": "a@example.com", "password": 12345678}, "password"),
        ({"email": "a@" + "x" * 300 + ".com", "password": "long-enough-1"}, "email"),
        ({"email": "a@example.com", "password": "long-enough-1", "name": "n" * 201}, "name"),
        ({"password": "long-enough-1"}, "email"),
    ]
    for body, field in cases:
        r = await api.post(f"{BASE}/auth/register", json=body)
        assert r.status == 400 and r.error["code"] == "VALIDATION_ERROR", (body, r.body)
        assert field in r.error["details"], (body, r.body)
    assert (await _register(api, email="dup@example.com")).status == 201
    r = await _register(api, email="DUP@example.com")
    assert r.status == 409 and r.error["code"] == "EMAIL_TAKEN"


async def test_same_email_in_two_tenants_are_two_accounts(api, tenant, db):
    other = f"t-{uuid.uuid4().hex[:10]}"
    await db.execute("INSERT INTO tenants (slug, name) VALUES ($1, $1)", other)
    assert (await _register(api, email="twin@example.com", password="password-one")).status == 201
    r = await api.post(f"{BASE}/auth/register", headers={"X-Tenant": other},
                       json={"email": "twin@example.com", "password": "password-two"})
    assert r.status == 201
    # Each password works only in its own tenant.
    r = await api.post(f"{BASE}/auth/login", headers={"X-Tenant": other},
                       json={"email": "twin@example.com", "password": "password-one"})
    assert r.status == 401


async def test_unknown_email_and_wrong_password_look_the_same(base_settings, tenant):
    async with probe_api(base_settings, tenant.slug, redis_prefix=unique_prefix(), login_max_failures=1000) as api:
        await _register(api, email="known@example.com", password="right-password")
        unknown, wrong = [], []
        bodies = set()
        for _ in range(5):
            for email, times in (("nobody@example.com", unknown), ("known@example.com", wrong)):
                t = time.perf_counter()
                r = await api.post(f"{BASE}/auth/login", json={"email": email, "password": "wrong-password"})
                times.append(time.perf_counter() - t)
                assert r.status == 401 and r.error["code"] == "INVALID_CREDENTIALS"
                bodies.add(r.raw)
        assert len(bodies) == 1
        a, b = statistics.median(unknown), statistics.median(wrong)
        # Both pay one argon2 verification (tens of ms); without the dummy hash an unknown email
        # would answer in about a millisecond.
        assert min(a, b) / max(a, b) > 0.5, (unknown, wrong)


async def test_disabled_account_cannot_log_in_or_use_its_tokens(api, tenant, base_settings):
    user = await tenant.user("customer")
    assert (await api.get(f"{BASE}/me", as_=user)).status == 200
    # Disabled the supported way (CLI or staff route), which tells Redis at once; a hand-written
    # SQL UPDATE is noticed within ACCOUNT_VERSION_TTL (engine.identity.account_versions).
    await cli_support.set_access(base_settings, email=user.email, role="customer", tenant_slug=tenant.slug,
                                 disabled=True)
    r = await api.get(f"{BASE}/me", as_=user)
    assert r.status == 401
    r = await api.post(f"{BASE}/auth/login", json={"email": user.email, "password": user.password})
    assert r.status == 401 and r.error["code"] == "INVALID_CREDENTIALS"


async def test_refresh_of_a_disabled_account_fails(api, tenant, db):
    user = await tenant.user("customer")
    r = await api.post(f"{BASE}/auth/login", json={"email": user.email, "password": user.password})
    await db.execute("UPDATE users SET disabled = true WHERE id = $1", user.id)
    r = await api.post(f"{BASE}/auth/refresh", json={"refreshToken": r.data["refreshToken"]})
    assert r.status == 401


async def test_refresh_reuse_revokes_the_whole_family(api, tenant):
    user = await tenant.user("customer")
    r = await api.post(f"{BASE}/auth/login", json={"email": user.email, "password": user.password})
    first = r.data["refreshToken"]
    r = await api.post(f"{BASE}/auth/refresh", json={"refreshToken": first})
    second, access2 = r.data["refreshToken"], r.data["accessToken"]
    assert (await api.get(f"{BASE}/me", headers=_bearer(access2))).status == 200
    # The thief (or the victim) replays the used token: everything of that login dies.
    r = await api.post(f"{BASE}/auth/refresh", json={"refreshToken": first})
    assert r.status == 401 and r.error["code"] == "UNAUTHORIZED"
    assert (await api.post(f"{BASE}/auth/refresh", json={"refreshToken": second})).status == 401
    assert (await api.get(f"{BASE}/me", headers=_bearer(access2))).status == 401


async def test_concurrent_refreshes_with_one_token_yield_at_most_one_pair(api, tenant):
    user = await tenant.user("customer")
    r = await api.post(f"{BASE}/auth/login", json={"email": user.email, "password": user.password})
    token = r.data["refreshToken"]
    results = await asyncio.gather(*[api.post(f"{BASE}/auth/refresh", json={"refreshToken": token})
                                     for _ in range(10)])
    winners = [r for r in results if r.status == 200]
    assert len(winners) <= 1 and all(r.status in (200, 401) for r in results)
    assert len({r.data["refreshToken"] for r in winners}) == len(winners)


async def test_refresh_rejects_garbage(api):
    for token in ("", "x" * 201, "not-a-token", 123):
        r = await api.post(f"{BASE}/auth/refresh", json={"refreshToken": token})
        assert r.status in (400, 401), (token, r.body)
    r = await api.post(f"{BASE}/auth/refresh", json={"refreshToken": "abc", "userId": str(uuid.uuid4())})
    assert r.status == 400


async def test_logged_out_token_fails_at_once_in_a_second_api_process(make_client, tenant, base_settings):
    from tests.conftest import Api

    first = Api(await make_client(), tenant.slug)
    second = Api(await make_client(), tenant.slug)
    user = await tenant.user("customer")
    r = await first.post(f"{BASE}/auth/login", json={"email": user.email, "password": user.password})
    access = r.data["accessToken"]
    assert (await second.get(f"{BASE}/me", headers=_bearer(access))).status == 200
    assert (await first.delete(f"{BASE}/auth/logout", headers=_bearer(access))).status == 200
    r = await second.get(f"{BASE}/me", headers=_bearer(access))
    assert r.status == 401
    # A token made by the test fixture (no session id) is revoked by its jti alone.
    assert (await first.delete(f"{BASE}/auth/logout", as_=user)).status == 200
    assert (await second.get(f"{BASE}/me", as_=user)).status == 401


async def test_logout_needs_a_token(api):
    r = await api.delete(f"{BASE}/auth/logout")
    assert r.status == 401


async def test_failed_logins_are_throttled_per_account_and_address_pair(base_settings, tenant):
    async with probe_api(base_settings, tenant.slug, redis_prefix=unique_prefix(), login_max_failures=3,
                         login_max_address_failures=100, trust_forwarded_for=True) as api:
        user = await tenant.user("customer")
        attacker = {"X-Forwarded-For": "10.0.0.66"}
        for _ in range(3):
            r = await api.post(f"{BASE}/auth/login", headers=attacker,
                               json={"email": user.email, "password": "wrong-password"})
            assert r.status == 401
        # The attacker's pair is spent: even the right password is not checked from there.
        r = await api.post(f"{BASE}/auth/login", headers=attacker, json={"email": user.email, "password": user.password})
        assert r.status == 429 and r.error["code"] == "RATE_LIMIT_EXCEEDED"
        assert 1 <= int(r.headers["Retry-After"]) <= base_settings.login_failure_window
        # The owner, from a fresh address, is not locked out by the stranger's failures.
        r = await api.post(f"{BASE}/auth/login", headers={"X-Forwarded-For": "10.0.0.7"},
                           json={"email": user.email, "password": user.password})
        assert r.status == 200
        # Unknown accounts are throttled the same way (no hint that the email is unknown).
        for _ in range(3):
            await api.post(f"{BASE}/auth/login", headers=attacker,
                           json={"email": "ghost@example.com", "password": "wrong-password"})
        r = await api.post(f"{BASE}/auth/login", headers=attacker,
                           json={"email": "ghost@example.com", "password": "wrong-password"})
        assert r.status == 429


async def test_failed_logins_are_throttled_per_address_more_slowly(base_settings, tenant):
    async with probe_api(base_settings, tenant.slug, redis_prefix=unique_prefix(), login_max_failures=3,
                         login_max_address_failures=5, trust_forwarded_for=True) as api:
        user = await tenant.user("customer")
        for i in range(5):  # five different accounts from one address: no pair is spent, the address is
            r = await api.post(f"{BASE}/auth/login", headers={"X-Forwarded-For": "10.9.9.9"},
                               json={"email": f"guess{i}@example.com", "password": "wrong-password"})
            assert r.status == 401
        r = await api.post(f"{BASE}/auth/login", headers={"X-Forwarded-For": "10.9.9.9"},
                           json={"email": user.email, "password": user.password})
        assert r.status == 429 and "Retry-After" in r.headers
        # Another address is not affected.
        r = await api.post(f"{BASE}/auth/login", headers={"X-Forwarded-For": "10.9.9.10"},
                           json={"email": user.email, "password": user.password})
        assert r.status == 200


async def test_parallel_wrong_passwords_get_at_most_the_budget_checked(base_settings, tenant):
    async with probe_api(base_settings, tenant.slug, redis_prefix=unique_prefix(), login_max_failures=5,
                         login_max_address_failures=100) as api:
        user = await tenant.user("customer")
        answers = await asyncio.gather(*[
            api.post(f"{BASE}/auth/login", json={"email": user.email, "password": f"wrong-{i}"}) for i in range(15)])
        statuses = sorted(r.status for r in answers)
        assert statuses == [401] * 5 + [429] * 10, statuses


async def test_a_success_gives_the_pair_its_budget_back(base_settings, tenant):
    async with probe_api(base_settings, tenant.slug, redis_prefix=unique_prefix(), login_max_failures=3,
                         login_max_address_failures=100) as api:
        user = await tenant.user("customer")
        for _ in range(2):
            assert (await api.post(f"{BASE}/auth/login", json={"email": user.email, "password": "typo"})).status == 401
        assert (await api.post(f"{BASE}/auth/login", json={"email": user.email, "password": user.password})).status == 200
        for _ in range(2):  # the count started again: two more typos are still answered 401
            assert (await api.post(f"{BASE}/auth/login", json={"email": user.email, "password": "typo"})).status == 401
        assert (await api.post(f"{BASE}/auth/login", json={"email": user.email, "password": user.password})).status == 200


async def test_me_shows_partner_balance_and_nothing_for_customers(api, tenant, db):
    partner = await tenant.user("partner", kyc_status="VERIFIED")
    await db.execute("UPDATE partner_balances SET balance = 1234.50 WHERE user_id = $1", partner.id)
    r = await api.get(f"{BASE}/me", as_=partner)
    assert r.data["role"] == "partner" and r.data["partnerBalance"] == 1234.5
    assert r.data["kycStatus"] == "VERIFIED" and r.data["careerPoints"] == 0
    customer = await tenant.user("customer")
    r = await api.get(f"{BASE}/me", as_=customer)
    assert r.data["partnerBalance"] is None and r.data["careerPoints"] is None
    assert (await api.get(f"{BASE}/me")).status == 401


async def test_token_of_another_tenant_ignores_x_tenant(api, tenant, db):
    user = await tenant.user("customer")
    r = await api.get(f"{BASE}/me", as_=user, headers={"X-Tenant": "default"})
    assert r.status == 200 and r.data["tenant"]["slug"] == tenant.slug
