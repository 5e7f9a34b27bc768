"""Server-to-server API keys: belong to one tenant, carry scopes and a plan, stored hashed.

Invariants: the plaintext exists only in the answer to `create` (shown once); the table holds
its SHA-256 (keys are 256-bit random, so a fast hash cannot be brute-forced) and a short
prefix to tell keys apart. A revoked key never authenticates again; revocation is a column,
read on every request, so it holds at once in every API process.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import asyncpg

from engine.db import Database
from engine.domain.errors import ApiKeyNotFound, ValidationError
from engine.identity.accounts import tenant_by_slug

PLANS = ("standard", "enterprise")
KEY_PREFIX = "ck_"
PREFIX_SHOWN = 11          # "ck_" + 8 characters
MAX_SCOPES = 32
_SCOPE = re.compile(r"^[a-z][a-z_-]{0,39}:[a-z][a-z_-]{0,19}$")


@dataclass(frozen=True, slots=True)
class ApiKey:
    id: UUID
    tenant_id: UUID
    name: str
    prefix: str
    scopes: frozenset[str]
    plan: str
    created_at: datetime
    revoked_at: datetime | None


def digest(plaintext: str) -> bytes:
    return hashlib.sha256(plaintext.encode()).digest()


def check_scopes(scopes: list[str] | tuple[str, ...] | frozenset[str]) -> frozenset[str]:
    """Scopes are explicit `resource:action` names; '*' is for staff users, never for keys."""
    bad = [s for s in scopes if not _SCOPE.match(s)]
    if bad or len(set(scopes)) > MAX_SCOPES:
        raise ValidationError("Invalid input data.",
                              details={"scopes": [f"each scope is resource:action (e.g. products:read), at most {MAX_SCOPES}"]})
    return frozenset(scopes)


def check_plan(plan: str) -> str:
    if plan not in PLANS:
        raise ValidationError("Invalid input data.", details={"plan": [f"must be one of {', '.join(PLANS)}"]})
    return plan


_COLUMNS = "id, tenant_id, name, prefix, scopes, plan, created_at, revoked_at"


def _key(row: asyncpg.Record) -> ApiKey:
    return ApiKey(row["id"], row["tenant_id"], row["name"], row["prefix"], frozenset(row["scopes"]),
                  row["plan"], row["created_at"], row["revoked_at"])


async def create(conn: asyncpg.Connection, tenant_id: UUID, name: str, scopes: frozenset[str] | list[str],
                 plan: str, created_by: UUID | None = None) -> tuple[ApiKey, str]:
    """A new key; returns it with its plaintext, which is never retrievable again."""
    scopes = check_scopes(list(scopes))
    plan = check_plan(plan)
    plaintext = KEY_PREFIX + secrets.token_urlsafe(32)
    row = await conn.fetchrow(
        f"INSERT INTO api_keys (tenant_id, name, prefix, key_hash, scopes, plan, created_by)"
        f" VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {_COLUMNS}",
        tenant_id, name, plaintext[:PREFIX_SHOWN], digest(plaintext), sorted(scopes), plan, created_by)
    return _key(row), plaintext


async def page(conn: asyncpg.Connection, tenant_id: UUID, limit: int, offset: int) -> tuple[list[ApiKey], int]:
    total = await conn.fetchval("SELECT count(*) FROM api_keys WHERE tenant_id = $1", tenant_id)
    rows = await conn.fetch(f"SELECT {_COLUMNS} FROM api_keys WHERE tenant_id = $1"
                            " ORDER BY created_at DESC, id LIMIT $2 OFFSET $3", tenant_id, limit, offset)
    return [_key(r) for r in rows], total


async def revoke(conn: asyncpg.Connection, tenant_id: UUID, key_id: UUID) -> ApiKey:
    """Revoke a key of this tenant (idempotent); another tenant's key is not found."""
    row = await conn.fetchrow(
        f"UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()) WHERE id = $1 AND tenant_id = $2"
        f" RETURNING {_COLUMNS}", key_id, tenant_id)
    if row is None:
        raise ApiKeyNotFound()
    return _key(row)


async def authenticate(conn: asyncpg.Connection, plaintext: str) -> ApiKey | None:
    """The live key with this plaintext, or None."""
    if not plaintext.startswith(KEY_PREFIX) or len(plaintext) > 200:
        return None
    row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL",
                              digest(plaintext))
    return _key(row) if row else None


# ----------------------------------------------------------------------------- for the CLI

async def create_api_key(db: Database, tenant_slug: str, name: str, scopes: list[str] | tuple[str, ...],
                         plan: str = "standard") -> tuple[UUID, str]:
    """`commerce apikey create`: returns (id, plaintext); print the plaintext once."""
    if not 1 <= len(name) <= 200:
        raise ValidationError("Invalid input data.", details={"name": ["must be 1-200 characters"]})
    async with db.transaction() as conn:
        tenant = await tenant_by_slug(conn, tenant_slug)
        key, plaintext = await create(conn, tenant.id, name, list(scopes), plan)
    return key.id, plaintext


async def list_api_keys(db: Database, tenant_slug: str) -> list[ApiKey]:
    """`commerce apikey list`: every key of the tenant, newest first (revoked ones included)."""
    async with db.connection() as conn:
        tenant = await tenant_by_slug(conn, tenant_slug)
        keys, _ = await page(conn, tenant.id, 10_000, 0)
    return keys


async def revoke_api_key(db: Database, tenant_slug: str, key_id: UUID) -> ApiKey:
    """`commerce apikey revoke`: effective on the very next request in every process."""
    async with db.transaction() as conn:
        tenant = await tenant_by_slug(conn, tenant_slug)
        return await revoke(conn, tenant.id, key_id)
