"""Token attacks and login enumeration: a forged, expired, confused or revoked credential never works.

alg none, algorithm confusion, unknown kid, wrong key, expired, wrong audience and issuer, a
refresh token used as an access token, refresh-token reuse (revokes the family), logout; and the
login answer (and its timing) is the same for an unknown user and a wrong password.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import statistics
import time
import uuid

import pytest

from engine.identity.tokens import DEV_KEYS, TokenIssuer, parse_keys
from tests.conftest import Api

ME = "/api/v1/me"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forge(header: dict, claims: dict, secret: bytes | None, digest=hashlib.sha256) -> str:
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
    sig = b"" if secret is None else hmac.new(secret, signing_input.encode(), digest).digest()
    return f"{signing_input}.{_b64(sig)}"


@pytest.fixture
def signing(base_settings) -> tuple[str, bytes]:
    return parse_keys(base_settings.jwt_keys or DEV_KEYS)[0]


@pytest.fixture
async def victim(tenant):
    return await tenant.user("customer", password="correct-horse-battery")


def _claims(user, settings, **changes) -> dict:
    now = int(time.time())
    claims = {"sub": str(user.id), "tid": str(user.tenant_id), "role": "staff", "perms": ["*"], "typ": "access",
              "iss": settings.jwt_issuer, "aud": settings.jwt_audience, "iat": now, "exp": now + 600,
              "jti": uuid.uuid4().hex}
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


async def _me(api: Api, token: str) -> int:
    r = await api.get(ME, headers={"Authorization": f"Bearer {token}"})
    if r.status == 401:
        assert r.error["code"] == "UNAUTHORIZED"
    return r.status


async def test_control_a_well_formed_token_works(api, victim, base_settings, signing) -> None:
    kid, secret = signing
    token = forge({"alg": "HS256", "typ": "JWT", "kid": kid}, _claims(victim, base_settings, role="customer", perms=[]), secret)
    assert await _me(api, token) == 200


@pytest.mark.parametrize("attack", ["alg-none", "alg-None", "hs512", "rs256-with-hmac", "no-kid", "unknown-kid",
                                    "wrong-secret", "expired", "wrong-aud", "wrong-iss", "no-exp", "refresh-typ",
                                    "empty-signature", "other-tenant-claim"])
async def test_forged_access_tokens_are_refused(api, victim, base_settings, signing, attack) -> None:
    kid, secret = signing
    header = {"alg": "HS256", "typ": "JWT", "kid": kid}
    claims = _claims(victim, base_settings)
    key: bytes | None = secret
    digest = hashlib.sha256
    if attack in ("alg-none", "alg-None"):
        header["alg"], key = ("none" if attack == "alg-none" else "None"), None
    elif attack == "hs512":
        header["alg"], digest = "HS512", hashlib.sha512
    elif attack == "rs256-with-hmac":
        header["alg"] = "RS256"
    elif attack == "no-kid":
        header.pop("kid")
    elif attack == "unknown-kid":
        header["kid"] = "attacker"
    elif attack == "wrong-secret":
        key = b"x" * 48
    elif attack == "expired":
        claims.update(iat=int(time.time()) - 7200, exp=int(time.time()) - 3600)
    elif attack == "wrong-aud":
        claims["aud"] = "someone-else"
    elif attack == "wrong-iss":
        claims["iss"] = "evil-issuer"
    elif attack == "no-exp":
        claims.pop("exp")
    elif attack == "refresh-typ":
        claims["typ"] = "refresh"
    elif attack == "other-tenant-claim":
        claims["tid"] = str(uuid.uuid4())
    token = forge(header, claims, key, digest)
    if attack == "empty-signature":
        token = token.rsplit(".", 1)[0] + "."
    assert await _me(api, token) == 401


async def _login(api: Api, email: str, password: str):
    return await api.post("/api/v1/auth/login", json={"email": email, "password": password})


async def test_refresh_token_is_not_an_access_token(api, victim) -> None:
    pair = (await _login(api, victim.email, victim.password)).data
    assert await _me(api, pair["refreshToken"]) == 401
    assert await _me(api, pair["accessToken"]) == 200


async def test_refresh_reuse_revokes_the_whole_family(api, victim) -> None:
    first = (await _login(api, victim.email, victim.password)).data
    second = (await api.post("/api/v1/auth/refresh", json={"refreshToken": first["refreshToken"]})).data
    reuse = await api.post("/api/v1/auth/refresh", json={"refreshToken": first["refreshToken"]})
    assert reuse.status == 401
    # The thief's (or the victim's) newer token dies with the family.
    again = await api.post("/api/v1/auth/refresh", json={"refreshToken": second["refreshToken"]})
    assert again.status == 401
    assert await _me(api, second["accessToken"]) == 401


async def test_logout_kills_the_access_token(api, victim) -> None:
    pair = (await _login(api, victim.email, victim.password)).data
    r = await api.delete("/api/v1/auth/logout", headers={"Authorization": f"Bearer {pair['accessToken']}"})
    assert r.status == 200
    assert await _me(api, pair["accessToken"]) == 401
    r = await api.post("/api/v1/auth/refresh", json={"refreshToken": pair["refreshToken"]})
    assert r.status == 401


async def test_token_minted_for_another_deployment_is_refused(api, victim, base_settings) -> None:
    other = TokenIssuer(base_settings.with_(jwt_keys="k9:another-deployments-secret-0123456789abcdef", dev_mode=False))
    token, _ = other.issue_access(user_id=victim.id, tenant_id=victim.tenant_id, role="customer",
                                  permissions=frozenset(), now=int(time.time()))
    assert await _me(api, token) == 401


async def test_login_does_not_reveal_which_accounts_exist(make_client, tenant) -> None:
    client = await make_client(login_max_failures=10_000)
    api = Api(client, tenant.slug)
    # Registered through the API, so the account's hash has the engine's own parameters.
    victim = (await api.post("/api/v1/auth/register", json={"email": f"timing-{uuid.uuid4().hex[:6]}@example.com",
                                                            "password": "correct-horse-battery"})).data["user"]
    victim_email = victim["email"]
    await _login(api, victim_email, "warm-up-wrong")  # warm caches on both paths
    await _login(api, "warm-up@nowhere.test", "x")
    unknown, wrong = [], []
    answers = set()
    for i in range(15):
        for bucket, email in ((unknown, f"ghost-{i}@nowhere.test"), (wrong, victim_email)):
            started = time.perf_counter()
            r = await _login(api, email, f"wrong-password-{i}")
            bucket.append(time.perf_counter() - started)
            answers.add((r.status, r.error["code"], r.error["message"]))
    assert len(answers) == 1, answers
    assert answers.pop()[0] == 401
    a, b = statistics.median(unknown), statistics.median(wrong)
    assert abs(a - b) <= 0.5 * max(a, b) + 0.02, f"median unknown {a * 1000:.1f} ms vs wrong password {b * 1000:.1f} ms"
