"""Access tokens: JWT, one fixed algorithm (HS256), every claim required when decoding.

Signing keys carry a `kid`; the first configured key signs, every configured key verifies,
so a key is rotated by putting the new one first and retired by removing it.

Every token carries `ver`, the account's authorisation version when it was issued (migration
0012); web/auth.py refuses a token whose version is no longer the account's. Tokens issued
before versions existed have none and count as version 1, the column's starting value.

A verified token is remembered (per process, bounded, until it expires), so a client's repeated
requests with one token pay the signature check and claim parsing once: about 100 us of CPU
per decode before, well under 1 us on a hit. Only the exact token string that verified can hit,
and expiry is checked on every hit.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from uuid import UUID

import jwt

from engine.domain.errors import Unauthorized
from engine.settings import Settings, SettingsError

ALGORITHM = "HS256"
ACCESS = "access"
REQUIRED_CLAIMS = ["exp", "iat", "iss", "aud", "sub", "jti", "typ", "tid"]
DEV_KEYS = "dev-1:dev-only-signing-key-not-for-production-000000"
VERIFIED_CACHE_SIZE = 10_000


def parse_keys(spec: str) -> list[tuple[str, bytes]]:
    """'kid:secret,kid2:secret2' -> [(kid, secret)]; secrets shorter than 32 bytes are refused."""
    keys = []
    for part in spec.split(","):
        kid, sep, secret = part.strip().partition(":")
        if not sep or not kid or len(secret) < 32:
            raise SettingsError("JWT_KEYS entries must be kid:secret with a secret of at least 32 characters")
        keys.append((kid, secret.encode()))
    return keys


@dataclass(frozen=True, slots=True)
class AccessClaims:
    user_id: UUID
    tenant_id: UUID
    role: str
    permissions: frozenset[str]
    jti: str
    expires_at: int
    session_id: UUID | None = None   # the refresh family this token was issued with (logout revokes it)
    version: int = 1                 # the account's auth_version at issue (claim `ver`)


class TokenIssuer:
    def __init__(self, settings: Settings) -> None:
        spec = settings.jwt_keys or (DEV_KEYS if settings.dev_mode else None)
        if not spec:
            raise SettingsError("JWT_KEYS is required outside dev mode")
        self._keys = parse_keys(spec)
        self._by_kid = dict(self._keys)
        self._issuer = settings.jwt_issuer
        self._audience = settings.jwt_audience
        self._ttl = settings.access_token_ttl
        self._verified: dict[str, AccessClaims] = {}

    @property
    def ttl(self) -> int:
        return self._ttl

    def issue_access(self, *, user_id: UUID, tenant_id: UUID, role: str, permissions: frozenset[str] | list[str],
                     now: int, session_id: UUID | None = None, version: int = 1) -> tuple[str, AccessClaims]:
        kid, secret = self._keys[0]
        jti = secrets.token_urlsafe(16)
        exp = now + self._ttl
        payload = {
            "sub": str(user_id), "tid": str(tenant_id), "role": role, "perms": sorted(permissions),
            "typ": ACCESS, "iss": self._issuer, "aud": self._audience, "iat": now, "exp": exp, "jti": jti,
            "ver": version,
        }
        if session_id is not None:
            payload["sid"] = str(session_id)
        token = jwt.encode(payload, secret, algorithm=ALGORITHM, headers={"kid": kid})
        return token, AccessClaims(user_id, tenant_id, role, frozenset(permissions), jti, exp, session_id, version)

    def decode_access(self, token: str) -> AccessClaims:
        """Verify signature, algorithm, kid, expiry, issuer, audience and type; else Unauthorized."""
        claims = self._verified.get(token)
        if claims is not None:
            if claims.expires_at > time.time():
                return claims
            self._verified.pop(token, None)
            raise Unauthorized("Access token has expired.")
        claims = self._verify(token)
        if len(self._verified) >= VERIFIED_CACHE_SIZE:
            # Oldest first (insertion order): a full cache costs one more verification, never memory.
            self._verified.pop(next(iter(self._verified)))
        self._verified[token] = claims
        return claims

    def _verify(self, token: str) -> AccessClaims:
        try:
            header = jwt.get_unverified_header(token)
            if header.get("alg") != ALGORITHM:
                raise Unauthorized("Unsupported token algorithm.")
            secret = self._by_kid.get(header.get("kid", ""))
            if secret is None:
                raise Unauthorized("Unknown signing key.")
            claims = jwt.decode(token, secret, algorithms=[ALGORITHM], audience=self._audience,
                                issuer=self._issuer, options={"require": REQUIRED_CLAIMS})
            if claims.get("typ") != ACCESS:
                raise Unauthorized("Not an access token.")
            perms = claims.get("perms", [])
            if not isinstance(perms, list) or not all(isinstance(p, str) for p in perms):
                raise Unauthorized()
            sid = claims.get("sid")
            version = claims.get("ver", 1)
            if type(version) is not int:
                raise Unauthorized()
            return AccessClaims(UUID(claims["sub"]), UUID(claims["tid"]), str(claims.get("role", "")),
                                frozenset(perms), str(claims["jti"]), int(claims["exp"]),
                                UUID(sid) if sid is not None else None, version)
        except jwt.ExpiredSignatureError:
            raise Unauthorized("Access token has expired.") from None
        except (jwt.PyJWTError, ValueError, KeyError, TypeError):
            raise Unauthorized() from None
