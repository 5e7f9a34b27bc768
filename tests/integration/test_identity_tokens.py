"""Over HTTP: every forged, expired or misdirected access token is a 401 on a protected route."""

from __future__ import annotations

import pytest

from engine.identity.tokens import DEV_KEYS
from tests.unit.test_identity_tokens import claims, forged_tokens, sign

# One forgery signs HS512 with the (short for SHA-512) dev key on purpose.
pytestmark = pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")


async def test_every_forged_token_is_401(api, tenant):
    kid, secret = DEV_KEYS.split(":", 1)  # the test app signs with the dev key
    user = await tenant.user("customer")
    base = {"sub": str(user.id), "tid": str(tenant.id)}
    good = sign(claims(**base), secret=secret, kid=kid)
    r = await api.get("/api/v1/me", headers={"Authorization": f"Bearer {good}"})
    assert r.status == 200, "the control token must work, or the test proves nothing"
    for name, token in forged_tokens(secret, kid, **base).items():
        r = await api.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
        assert r.status == 401 and r.error["code"] == "UNAUTHORIZED", (name, r.body)
    for header in ("Basic dXNlcjpwYXNz", "Bearer", "Bearer  ", good):
        r = await api.get("/api/v1/me", headers={"Authorization": header})
        assert r.status == 401, header


async def test_a_refresh_token_is_not_an_access_token(api, tenant):
    user = await tenant.user("customer")
    r = await api.post("/api/v1/auth/login", json={"email": user.email, "password": user.password})
    r = await api.get("/api/v1/me", headers={"Authorization": f"Bearer {r.data['refreshToken']}"})
    assert r.status == 401
