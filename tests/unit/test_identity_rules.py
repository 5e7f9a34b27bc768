"""Passwords, scopes, and the rate limiter's choice of the tightest limit."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from argon2 import PasswordHasher

from engine.domain.errors import ValidationError
from engine.identity import api_keys
from engine.identity.passwords import Passwords
from engine.domain.principal import Principal
from engine.settings import Settings
from web.ratelimit import WINDOW_MS, Limit, applicable_limits, decide


def test_passwords_are_argon2id_with_owasp_parameters():
    p = Passwords()
    h = p.hash_sync("correct horse")
    assert h.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert asyncio.run(p.verify(h, "correct horse")) and not asyncio.run(p.verify(h, "wrong"))
    assert not asyncio.run(p.verify("not-a-hash", "x"))


def test_unknown_account_never_verifies_even_with_the_dummy_password():
    p = Passwords()
    assert asyncio.run(p.verify_or_dummy(None, "anything")) is False


def test_weaker_hashes_are_upgraded_stronger_ones_kept():
    p = Passwords()
    assert p.needs_rehash(PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash("x"))
    assert not p.needs_rehash(PasswordHasher().hash("x"))  # argon2-cffi's defaults are stronger
    assert not p.needs_rehash(p.hash_sync("x"))


@pytest.mark.parametrize("scopes", [["*"], ["products"], ["Products:write"], ["a:b c"], [f"s{i}:read" for i in range(40)]])
def test_bad_scopes_are_refused(scopes):
    with pytest.raises(ValidationError):
        api_keys.check_scopes(scopes)


def test_good_scopes_pass():
    assert api_keys.check_scopes(["products:read", "orders:write", "api_keys:read"]) == {
        "products:read", "orders:write", "api_keys:read"}


S = Settings(rate_catalogue=200, rate_cart=100, rate_financial=2, rate_orders=100,
             rate_api_key_standard=1000, rate_api_key_enterprise=10000, redis_prefix="p")


def test_limits_by_caller_kind():
    tid, uid, kid = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    anon = applicable_limits(S, Principal(tenant_id=tid), "catalogue", "10.0.0.1")
    assert [(lim.policy, lim.key, lim.limit) for lim in anon] == [("catalogue", "p:rl:catalogue:addr:10.0.0.1", 200)]
    user = applicable_limits(S, Principal(tenant_id=tid, user_id=uid, role="customer"), "financial", "10.0.0.1")
    assert [(lim.key, lim.limit) for lim in user] == [(f"p:rl:financial:user:{uid}", 2)]
    key = applicable_limits(S, Principal(tenant_id=tid, api_key_id=kid, plan="enterprise"), "orders", "10.0.0.1")
    assert [(lim.policy, lim.limit) for lim in key] == [("orders", 100), ("api-key-enterprise", 10000)]
    assert applicable_limits(S, Principal(tenant_id=tid, user_id=uid), None, "x") == []
    assert [lim.limit for lim in applicable_limits(S, Principal(tenant_id=tid, api_key_id=kid, plan="standard"), None, "x")] == [1000]


A = Limit("orders", "a", 100)
B = Limit("api-key-standard", "b", 1000)


def test_admitted_reports_the_limit_with_fewest_left():
    d = decide([A, B], True, 1_000_000, [10, 995], [990_000, 950_000])
    assert d.admitted and d.limit is B and d.remaining == 5
    assert d.headers() == {"X-RateLimit-Limit": "1000", "X-RateLimit-Remaining": "5",
                           "X-RateLimit-Reset": str(-(-(950_000 + WINDOW_MS) // 1000)), "X-RateLimit-Policy": "api-key-standard"}


def test_refused_reports_the_exhausted_limit_that_frees_last():
    d = decide([A, B], False, 1_000_000, [100, 1000], [990_000, 999_000])
    assert not d.admitted and d.limit is B and d.remaining == 0
    assert d.retry_after == 59  # (999_000 + 60_000 - 1_000_000) ms, rounded up
    d = decide([A, B], False, 1_000_000, [100, 10], [990_000, 999_000])
    assert d.limit is A and d.retry_after == 50


def test_retry_after_is_at_least_one_second():
    assert decide([A], False, 1_000_000, [100], [940_001]).retry_after == 1
