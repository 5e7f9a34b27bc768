"""Refresh tokens: opaque, stored only as a SHA-256, rotated on every use, grouped in families.

Invariants:
- A refresh token is good for exactly one rotation: the conditional `UPDATE ... WHERE used_at
  IS NULL` lets one of two concurrent refreshes win; the other sees a used token.
- Presenting a used token means it was copied (theft, or a replayed request): its whole family
  (every token descended from that login) is revoked, so neither party can continue.
- A family is also revoked on logout. Access tokens carry the family id (`sid`) so the
  caller can deny them too (see engine.identity.revocation).
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import timedelta
from uuid import UUID

import asyncpg

from engine.db import Database
from engine.domain.errors import Unauthorized

TOKEN_BYTES = 32


def digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


@dataclass(frozen=True, slots=True)
class Grant:
    """Who a refresh token speaks for, and the fresh token that replaces it."""

    tenant_id: UUID
    user_id: UUID
    role: str
    permissions: frozenset[str]
    family_id: UUID
    refresh_token: str
    auth_version: int = 1


async def _insert(conn: asyncpg.Connection, tenant_id: UUID, user_id: UUID, family_id: UUID, ttl: int) -> str:
    token = secrets.token_urlsafe(TOKEN_BYTES)
    await conn.execute(
        "INSERT INTO refresh_tokens (tenant_id, user_id, family_id, token_hash, expires_at)"
        " VALUES ($1, $2, $3, $4, now() + $5::interval)",
        tenant_id, user_id, family_id, digest(token), timedelta(seconds=ttl))
    return token


async def start_family(conn: asyncpg.Connection, tenant_id: UUID, user_id: UUID, ttl: int) -> tuple[str, UUID]:
    """A new login: a new family and its first token. Returns (token, family id)."""
    family_id = uuid.uuid4()
    return await _insert(conn, tenant_id, user_id, family_id, ttl), family_id


async def revoke_family(conn: asyncpg.Connection, family_id: UUID, user_id: UUID | None = None) -> int:
    """Revoke every live token of the family (of `user_id`, when given). Returns how many."""
    result = await conn.execute(
        "UPDATE refresh_tokens SET revoked_at = now() WHERE family_id = $1 AND revoked_at IS NULL"
        " AND ($2::uuid IS NULL OR user_id = $2)", family_id, user_id)
    return int(result.split()[-1])


class Reused(Exception):
    """A used (or revoked) token was presented again; carries its family for revocation."""

    def __init__(self, family_id: UUID) -> None:
        super().__init__(str(family_id))
        self.family_id = family_id


async def _rotate(conn: asyncpg.Connection, token: str, ttl: int) -> Grant:
    row = await conn.fetchrow(
        """
        UPDATE refresh_tokens rt SET used_at = now()
        FROM users u
        WHERE rt.token_hash = $1 AND rt.used_at IS NULL AND rt.revoked_at IS NULL
          AND rt.expires_at > now() AND u.id = rt.user_id AND u.tenant_id = rt.tenant_id
          AND NOT u.disabled
        RETURNING rt.tenant_id, rt.user_id, rt.family_id, u.role, u.permissions, u.auth_version
        """, digest(token))
    if row is None:
        old = await conn.fetchrow("SELECT family_id, used_at FROM refresh_tokens WHERE token_hash = $1", digest(token))
        if old is not None and old["used_at"] is not None:
            raise Reused(old["family_id"])
        raise Unauthorized("Invalid or expired refresh token.")
    new_token = await _insert(conn, row["tenant_id"], row["user_id"], row["family_id"], ttl)
    return Grant(row["tenant_id"], row["user_id"], row["role"], frozenset(row["permissions"]),
                 row["family_id"], new_token, row["auth_version"])


async def rotate(db: Database, token: str, ttl: int) -> Grant:
    """Exchange a refresh token for a new one of the same family.

    Unknown, expired or revoked tokens, and disabled users, are Unauthorized. A reused token
    revokes its family (in its own transaction, so the revocation survives the refusal) and
    raises `Reused`; the caller must also deny the family's access tokens.
    """
    if not token or len(token) > 200:
        raise Unauthorized("Invalid or expired refresh token.")
    try:
        async with db.transaction() as conn:
            return await _rotate(conn, token, ttl)
    except Reused as reused:
        async with db.transaction() as conn:
            await revoke_family(conn, reused.family_id)
        raise
