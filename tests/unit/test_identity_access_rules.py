"""Who may change an account's role and permissions, and the token's account version."""

from __future__ import annotations

import datetime as dt
import time
import uuid

import jwt
import pytest

from engine.domain.errors import Forbidden, Unauthorized, ValidationError
from engine.identity.access import AccessChange, check_change, check_grant
from engine.identity.accounts import Account
from engine.identity.tokens import TokenIssuer
from engine.settings import Settings

KEYS = "k1:" + "a" * 64


def _account(permissions: frozenset[str]) -> Account:
    return Account(uuid.uuid4(), uuid.uuid4(), "a@example.com", "A", "staff", permissions, "NONE", False, "h", None,
                   dt.datetime.now(dt.timezone.utc))


def test_only_staff_hold_permissions_and_roles_are_known():
    check_change(AccessChange("staff", frozenset({"*", "orders:write"})))
    with pytest.raises(ValidationError):
        check_change(AccessChange("customer", frozenset({"orders:write"})))
    with pytest.raises(ValidationError):
        check_change(AccessChange("admin", frozenset()))
    with pytest.raises(ValidationError):
        check_change(AccessChange("staff", frozenset({"not a permission"})))


def test_a_caller_grants_only_what_it_holds():
    clerk = frozenset({"users:write", "orders:write"})
    check_grant(clerk, _account(frozenset()), AccessChange("staff", frozenset({"orders:write"})))
    with pytest.raises(Forbidden):
        check_grant(clerk, _account(frozenset()), AccessChange("staff", frozenset({"*"})))
    with pytest.raises(Forbidden):
        check_grant(clerk, _account(frozenset({"*"})), AccessChange("customer", frozenset()))
    check_grant(frozenset({"*"}), _account(frozenset({"*"})), AccessChange("customer", frozenset()))


def test_tokens_carry_the_account_version_and_old_tokens_count_as_version_one():
    tokens = TokenIssuer(Settings(jwt_keys=KEYS))
    now = int(time.time())
    token, issued = tokens.issue_access(user_id=uuid.uuid4(), tenant_id=uuid.uuid4(), role="staff",
                                        permissions=["*"], now=now, version=7)
    assert issued.version == 7 and tokens.decode_access(token).version == 7
    payload = jwt.decode(token, options={"verify_signature": False})
    del payload["ver"]
    legacy = jwt.encode(payload, "a" * 64, algorithm="HS256", headers={"kid": "k1"})
    assert tokens.decode_access(legacy).version == 1
    payload["ver"] = "7"
    with pytest.raises(Unauthorized):
        tokens.decode_access(jwt.encode(payload, "a" * 64, algorithm="HS256", headers={"kid": "k1"}))


def test_a_remembered_token_still_expires():
    tokens = TokenIssuer(Settings(jwt_keys=KEYS, access_token_ttl=1))
    token, _ = tokens.issue_access(user_id=uuid.uuid4(), tenant_id=uuid.uuid4(), role="customer",
                                   permissions=[], now=int(time.time()))
    tokens.decode_access(token)   # verified and remembered
    time.sleep(2.1)
    with pytest.raises(Unauthorized):
        tokens.decode_access(token)
    with pytest.raises(Unauthorized):   # a forged signature never hits the cache of the real one
        tokens.decode_access(token[:-2] + ("AA" if not token.endswith("AA") else "BB"))
