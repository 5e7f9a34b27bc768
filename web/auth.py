"""Authentication: turns the request's credentials into a Principal.

Bearer JWT access tokens (see engine.identity.tokens); anonymous callers get the tenant named by
`X-Tenant` (a slug) or the default tenant. Bad credentials are always 401, never anonymous.
"""

from __future__ import annotations

from uuid import UUID

from aiohttp import web

from engine.db import Database
from engine.errors import Unauthorized, ValidationError
from engine.identity.tokens import TokenIssuer
from engine.principal import Principal
from engine.settings import Settings


class Authenticator:
    def __init__(self, settings: Settings, db: Database, tokens: TokenIssuer) -> None:
        self.settings = settings
        self.db = db
        self.tokens = tokens
        self._tenants: dict[str, UUID] = {}

    async def tenant_id(self, slug: str) -> UUID:
        """Tenant id by slug; unknown slugs are 400 (anonymous callers choose their tenant)."""
        cached = self._tenants.get(slug)
        if cached is not None:
            return cached
        async with self.db.connection() as conn:
            tid = await conn.fetchval("SELECT id FROM tenants WHERE slug = $1", slug)
        if tid is None:
            raise ValidationError("Unknown tenant.", details={"X-Tenant": ["unknown tenant"]})
        self._tenants[slug] = tid
        return tid

    async def authenticate(self, request: web.Request, *, required: bool = False) -> Principal:
        header = request.headers.get("Authorization")
        if header:
            scheme, _, token = header.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise Unauthorized("Authorization must be a Bearer token.")
            claims = self.tokens.decode_access(token.strip())
            return Principal(tenant_id=claims.tenant_id, user_id=claims.user_id, role=claims.role,
                             permissions=claims.permissions, token_id=claims.jti,
                             token_expires_at=claims.expires_at)
        slug = request.headers.get("X-Tenant") or self.settings.default_tenant
        return Principal(tenant_id=await self.tenant_id(slug))
