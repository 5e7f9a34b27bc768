"""Access tokens: every forgery and mistake is refused; keys rotate by kid."""

from __future__ import annotations

import base64
import functools
import json
import time
import uuid

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from engine.domain.errors import Unauthorized
from engine.identity.tokens import TokenIssuer, parse_keys
from engine.settings import Settings, SettingsError

K1 = "k1:" + "a" * 64
K2 = "k2:" + "b" * 64
NOW = int(time.time())


def issuer(keys: str = K1) -> TokenIssuer:
    return TokenIssuer(Settings(jwt_keys=keys))


def claims(**over) -> dict:
    c = {"sub": str(uuid.uuid4()), "tid": str(uuid.uuid4()), "role": "customer", "perms": [], "typ": "access",
         "iss": "commerce-engine", "aud": "commerce-api", "iat": NOW, "exp": NOW + 3600, "jti": "j1"}
    c.update(over)
    return {k: v for k, v in c.items() if v is not None}


def sign(payload: dict, secret: str = "a" * 64, kid: str = "k1", alg: str = "HS256") -> str:
    return jwt.encode(payload, secret, algorithm=alg, headers={"kid": kid})


def b64(obj: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()


@functools.cache
def _rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def forged_tokens(secret: str = "a" * 64, kid: str = "k1", **base: str) -> dict[str, str]:
    """Every way an access token must fail, by name (shared with the HTTP test). `secret`/`kid`
    are the verifier's real key and `base` real claims, so each token has only its named flaw."""
    rsa_key = _rsa_key()

    def c(**over):
        return claims(**{**base, **over})

    def s(payload, **kw):
        return sign(payload, **{"secret": secret, "kid": kid, **kw})

    valid = s(c())
    head, _, sig = valid.split(".")
    return {
        "alg none": b64({"alg": "none", "kid": kid, "typ": "JWT"}) + "." + b64(c()) + ".",
        "alg None spelled": b64({"alg": "None", "kid": kid}) + "." + b64(c()) + ".",
        "another key, same kid": s(c(), secret="z" * 64),
        "another algorithm (HS512)": s(c(), alg="HS512"),
        "another algorithm (RS256)": jwt.encode(c(), rsa_key, algorithm="RS256", headers={"kid": kid}),
        "unknown kid": s(c(), kid="k9"),
        "no kid": jwt.encode(c(), secret, algorithm="HS256"),
        "missing exp": s(c(exp=None)),
        "expired": s(c(iat=NOW - 7200, exp=NOW - 3600)),
        "issued in the future": s(c(iat=NOW + 3600, exp=NOW + 7200)),
        "wrong aud": s(c(aud="someone-else")),
        "wrong iss": s(c(iss="evil")),
        "missing jti": s(c(jti=None)),
        "missing tenant": s(c(tid=None)),
        "missing typ": s(c(typ=None)),
        "refresh typ": s(c(typ="refresh")),
        "opaque refresh token": "x" * 43,
        "garbage": "not.a.jwt",
        "sub not a uuid": s(c(sub="admin")),
        "perms not a list": s(c(perms="*")),
        "tampered payload": head + "." + b64(c(role="staff", perms=["*"])) + "." + sig,
    }


def test_a_valid_token_round_trips():
    tokens = issuer()
    uid, tid, sid = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    token, issued = tokens.issue_access(user_id=uid, tenant_id=tid, role="staff", permissions=frozenset({"products:write"}),
                                        now=NOW, session_id=sid)
    got = tokens.decode_access(token)
    assert (got.user_id, got.tenant_id, got.role, got.permissions, got.session_id) == (uid, tid, "staff", {"products:write"}, sid)
    assert got.expires_at == NOW + 3600 and got.jti == issued.jti
    assert jwt.get_unverified_header(token)["kid"] == "k1"


@pytest.mark.parametrize("name", list(forged_tokens()))
def test_forged_or_broken_tokens_are_refused(name):
    with pytest.raises(Unauthorized):
        issuer().decode_access(forged_tokens()[name])


def test_rotation_old_key_verifies_until_retired():
    old = issuer(K1)
    token, _ = old.issue_access(user_id=uuid.uuid4(), tenant_id=uuid.uuid4(), role="customer", permissions=[], now=NOW)
    rotated = issuer(f"{K2},{K1}")  # new key signs, old still verifies
    assert rotated.decode_access(token).role == "customer"
    new_token, _ = rotated.issue_access(user_id=uuid.uuid4(), tenant_id=uuid.uuid4(), role="customer", permissions=[], now=NOW)
    assert jwt.get_unverified_header(new_token)["kid"] == "k2"
    with pytest.raises(Unauthorized):
        issuer(K2).decode_access(token)  # old key retired


def test_short_or_malformed_keys_are_refused():
    for spec in ("k1:short", "nokid", ":" + "a" * 40):
        with pytest.raises(SettingsError):
            parse_keys(spec)
    with pytest.raises(SettingsError):
        TokenIssuer(Settings())  # no keys outside dev mode
