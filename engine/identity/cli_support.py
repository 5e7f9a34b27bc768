"""What `commerce user create|set-access` and `commerce apikey create|list|revoke` call: each opens
a small pool from the settings, does one thing, and closes it."""

from __future__ import annotations

import contextlib
from typing import Any, AsyncIterator
from uuid import UUID

import redis.asyncio as aioredis

from engine.db import Database
from engine.identity import accounts, api_keys
from engine.identity.access import AccessChange, change_access_by_email
from engine.identity.account_versions import AccountVersions
from engine.settings import Settings


@contextlib.asynccontextmanager
async def _database(settings: Settings) -> AsyncIterator[Database]:
    db = Database(settings.with_(db_pool_min=1, db_pool_max=2))
    await db.open()
    try:
        yield db
    finally:
        await db.close()


async def create_user(settings: Settings, *, email: str, password: str, role: str, tenant_slug: str = "default",
                      permissions: list[str] | tuple[str, ...] = (), name: str = "") -> UUID:
    """A user of any role; staff without explicit permissions get '*'. Returns the user id."""
    async with _database(settings) as db:
        account = await accounts.create_user(db, email, password, role, tenant_slug, name=name,
                                             permissions=tuple(permissions))
    return account.id


async def set_access(settings: Settings, *, email: str, role: str, tenant_slug: str = "default",
                     permissions: list[str] | tuple[str, ...] = (), disabled: bool | None = None) -> tuple[UUID, bool]:
    """Change a user's role, permissions and (when given) disabled state. Returns (user id,
    whether Redis heard of it at once; if not, API processes notice within ACCOUNT_VERSION_TTL)."""
    redis = aioredis.from_url(settings.redis_url or "redis://127.0.0.1:6379/0", socket_timeout=2,
                              socket_connect_timeout=2)
    try:
        versions = AccountVersions(redis, settings.redis_prefix, settings.account_version_ttl)
        async with _database(settings) as db:
            account, published = await change_access_by_email(
                db, versions, tenant_slug, email, AccessChange(role, frozenset(permissions), disabled))
    finally:
        await redis.aclose()
    return account.id, published


async def create_api_key(settings: Settings, *, tenant_slug: str, name: str, scopes: list[str] | tuple[str, ...],
                         plan: str = "standard") -> tuple[UUID, str]:
    """(id, plaintext): print the plaintext once, it is never retrievable again."""
    async with _database(settings) as db:
        return await api_keys.create_api_key(db, tenant_slug, name, scopes, plan)


async def list_api_keys(settings: Settings, *, tenant_slug: str) -> list[dict[str, Any]]:
    """One dict per key (id, name, prefix, plan, scopes, status, created), newest first."""
    async with _database(settings) as db:
        found = await api_keys.list_api_keys(db, tenant_slug)
    return [{"id": k.id, "name": k.name, "prefix": k.prefix, "plan": k.plan, "scopes": ",".join(sorted(k.scopes)),
             "status": "revoked" if k.revoked_at else "active", "created": k.created_at.isoformat()}
            for k in found]


async def revoke_api_key(settings: Settings, *, tenant_slug: str, key_id: str | UUID) -> bool:
    """True when an active key of the tenant was revoked now; False when there is no such key
    or it was already revoked."""
    try:
        kid = key_id if isinstance(key_id, UUID) else UUID(str(key_id))
    except ValueError:
        return False
    async with _database(settings) as db:
        before = {k.id: k for k in await api_keys.list_api_keys(db, tenant_slug)}.get(kid)
        if before is None or before.revoked_at is not None:
            return False
        await api_keys.revoke_api_key(db, tenant_slug, kid)
    return True
