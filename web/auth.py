"""Authentication: turns the request's credentials into a Principal.

- `Authorization: Bearer <jwt>`: an access token (see engine.identity.tokens), refused when its
  `jti` or session is on the Redis deny list (logout, refresh-token theft), or when its `ver` is
  no longer its account's version (role, permissions or account state changed since it was
  issued; account disabled or gone). The tenant is the token's; `X-Tenant` is ignored.
- `X-API-Key: ck_...` (or `Authorization: ApiKey ck_...`): a server-to-server key; the
  Principal has the key's tenant, scopes (as permissions) and plan, and no user or role.
- Neither: anonymous, in the tenant named by `X-Tenant` (a slug) or the default tenant.
Bad credentials are always 401, never anonymous; both kinds at once are 401 too.

No PostgreSQL on the request path of a bearer token: one Redis round trip (one script) answers
"revoked?" and "which version is the account at?" together. Only when Redis has no copy of the
account's version (expired after ACCOUNT_VERSION_TTL, or Redis lost it) does the request ask
PostgreSQL, the source of truth, and publish the answer (engine.identity.account_versions):
a miss costs one query and never lets a stale token through.

Redis unavailable: the version comes from PostgreSQL (so a demoted or disabled account is still
refused at once); the deny list cannot be read, so reads (GET/HEAD) go on (logged and counted;
access tokens live one hour at most) and anything else is 503 with Retry-After.
"""

from __future__ import annotations

from typing import Any, Callable
from uuid import UUID

from aiohttp import web

from engine.db import Database
from engine.domain.errors import ServiceUnavailable, Unauthorized, ValidationError
from engine.identity import account_versions, api_keys
from engine.identity.account_versions import AccountVersions
from engine.identity.revocation import Revocations
from engine.identity.sessions import REDIS_DOWN
from engine.identity.tokens import TokenIssuer
from engine.domain.principal import Principal
from engine.settings import Settings
from web.ratelimit import Breaker

# The refresh family (`sid`) of the bearer token of this request, for logout.
SESSION_ID: web.RequestKey[Any] = web.RequestKey("session_id")
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_MAX_SLUG = 63


class Authenticator:
    def __init__(self, settings: Settings, db: Database, tokens: TokenIssuer,
                 revocations: Revocations | None = None,
                 on_redis_down: Callable[[str, BaseException], None] = lambda what, exc: None,
                 versions: AccountVersions | None = None) -> None:
        self.settings = settings
        self.db = db
        self.tokens = tokens
        self.revocations = revocations
        self.versions = versions
        self._on_redis_down = on_redis_down
        self._breaker = Breaker()
        self._tenants: dict[str, UUID] = {}

    async def tenant_id(self, slug: str) -> UUID:
        """Tenant id by slug; unknown slugs are 400 (anonymous callers choose their tenant)."""
        cached = self._tenants.get(slug)
        if cached is not None:
            return cached
        if len(slug) > _MAX_SLUG:
            raise ValidationError("Unknown tenant.", details={"X-Tenant": ["unknown tenant"]})
        async with self.db.connection() as conn:
            tid = await conn.fetchval("SELECT id FROM tenants WHERE slug = $1", slug)
        if tid is None:
            raise ValidationError("Unknown tenant.", details={"X-Tenant": ["unknown tenant"]})
        self._tenants[slug] = tid
        return tid

    async def authenticate(self, request: web.Request, *, required: bool = False) -> Principal:
        header = request.headers.get("Authorization")
        key = request.headers.get("X-API-Key")
        scheme, _, value = (header or "").partition(" ")
        if scheme.lower() == "apikey":  # `Authorization: ApiKey <key>`: the same credential as X-API-Key
            if key:
                raise Unauthorized("Send the API key in one header, not both.")
            return await self._api_key(value.strip())
        if header and key:
            raise Unauthorized("Send either a bearer token or an API key, not both.")
        if header:
            return await self._bearer(request, header)
        if key:
            return await self._api_key(key.strip())
        slug = request.headers.get("X-Tenant") or self.settings.default_tenant
        return Principal(tenant_id=await self.tenant_id(slug))

    async def _bearer(self, request: web.Request, header: str) -> Principal:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("Authorization must be a Bearer token.")
        claims = self.tokens.decode_access(token.strip())
        version, redis_ok = None, False
        if self.revocations is not None and self.versions is not None:
            try:
                if self._breaker.is_open:
                    raise ConnectionError("Redis failed less than a second ago")
                revoked, version = await self.revocations.check(
                    claims.jti, claims.session_id, self.versions.key(claims.user_id))
                redis_ok = True
            except REDIS_DOWN as exc:
                if not self._breaker.is_open:
                    self._breaker.trip()
                self._on_redis_down("revocation_check", exc)
                if request.method not in SAFE_METHODS:
                    raise ServiceUnavailable("Cannot verify the access token right now; retry shortly.",
                                             extra={"retry_after": self.settings.dependency_retry_after}) from exc
                revoked = False
            if revoked:
                raise Unauthorized("Access token has been revoked.")
        if version is None:
            version = await self._version_from_database(claims.tenant_id, claims.user_id, publish=redis_ok)
        if version is None or version < 0:
            raise Unauthorized("Account is disabled or no longer exists.")
        if version != claims.version:
            raise Unauthorized("Access token is out of date (the account changed); refresh it or sign in again.")
        request[SESSION_ID] = claims.session_id
        return Principal(tenant_id=claims.tenant_id, user_id=claims.user_id, role=claims.role,
                         permissions=claims.permissions, token_id=claims.jti,
                         token_expires_at=claims.expires_at)

    async def _version_from_database(self, tenant_id: UUID, user_id: UUID, *, publish: bool) -> int | None:
        """The account's signed version from PostgreSQL (Redis had no copy or is down); published
        to Redis when it is up, so the next request of this account needs no query."""
        async with self.db.connection() as conn:
            version = await account_versions.load(conn, tenant_id, user_id)
        if version is not None and publish and self.versions is not None:
            try:
                await self.versions.publish(user_id, version)
            except REDIS_DOWN as exc:  # the next request asks PostgreSQL again; nothing is wrong
                self._on_redis_down("account_version_publish", exc)
        return version

    async def _api_key(self, plaintext: str) -> Principal:
        async with self.db.connection() as conn:
            key = await api_keys.authenticate(conn, plaintext)
        if key is None:
            raise Unauthorized("Invalid or revoked API key.")
        return Principal(tenant_id=key.tenant_id, api_key_id=key.id, plan=key.plan, permissions=key.scopes)
