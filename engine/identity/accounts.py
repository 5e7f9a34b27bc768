"""Accounts: tenants by slug, users, sign-up, KYC status. Store functions over asyncpg.

Invariants: an email is unique per tenant, case-insensitively (the `users_tenant_email`
index); every lookup filters on the tenant, so an id from another tenant is "not found".
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from uuid import UUID

import asyncpg

from engine.db import Database
from engine.domain.errors import EmailTaken, TenantNotFound, UserNotFound, ValidationError
from engine.identity.passwords import MAX_LENGTH, MIN_LENGTH, Passwords
from engine.domain.principal import ROLES

KYC_STATUSES = ("NONE", "PENDING", "VERIFIED", "REJECTED")
# Deliberately loose: one @, no spaces, a dot in the domain. Deliverability is the mailer's job.
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")
MAX_EMAIL = 254


@dataclass(frozen=True, slots=True)
class Tenant:
    id: UUID
    slug: str
    name: str


@dataclass(frozen=True, slots=True)
class Account:
    id: UUID
    tenant_id: UUID
    email: str
    name: str
    role: str
    permissions: frozenset[str]
    kyc_status: str
    disabled: bool
    password_hash: str
    avatar_url: str | None
    created_at: datetime
    partner_balance: Decimal | None = None
    career_points: Decimal | None = None
    auth_version: int = 1           # bumped on every role/permissions/disabled change (migration 0012)


_ACCOUNT_SQL = """
    SELECT u.id, u.tenant_id, u.email, u.name, u.role, u.permissions, u.kyc_status, u.disabled,
           u.password_hash, u.avatar_url, u.created_at, pb.balance, pb.career_points, u.auth_version
    FROM users u LEFT JOIN partner_balances pb ON pb.user_id = u.id
"""


def _account(row: asyncpg.Record) -> Account:
    return Account(row["id"], row["tenant_id"], row["email"], row["name"], row["role"],
                   frozenset(row["permissions"]), row["kyc_status"], row["disabled"],
                   row["password_hash"], row["avatar_url"], row["created_at"],
                   row["balance"], row["career_points"], row["auth_version"])


def check_email(email: str) -> str:
    email = email.strip()
    if len(email) > MAX_EMAIL or not _EMAIL.match(email):
        raise ValidationError("Invalid input data.", details={"email": ["must be a valid email address"]})
    return email


def check_password(password: str) -> None:
    if not (MIN_LENGTH <= len(password) <= MAX_LENGTH):
        raise ValidationError("Invalid input data.",
                              details={"password": [f"must be {MIN_LENGTH}-{MAX_LENGTH} characters"]})


async def tenant_by_slug(conn: asyncpg.Connection, slug: str) -> Tenant:
    row = await conn.fetchrow("SELECT id, slug, name FROM tenants WHERE slug = $1", slug)
    if row is None:
        raise TenantNotFound()
    return Tenant(row["id"], row["slug"], row["name"])


async def tenant_by_id(conn: asyncpg.Connection, tenant_id: UUID) -> Tenant:
    row = await conn.fetchrow("SELECT id, slug, name FROM tenants WHERE id = $1", tenant_id)
    if row is None:
        raise TenantNotFound()
    return Tenant(row["id"], row["slug"], row["name"])


async def find_by_email(conn: asyncpg.Connection, tenant_id: UUID, email: str) -> Account | None:
    row = await conn.fetchrow(_ACCOUNT_SQL + " WHERE u.tenant_id = $1 AND lower(u.email) = lower($2)",
                              tenant_id, email.strip())
    return _account(row) if row else None


async def get(conn: asyncpg.Connection, tenant_id: UUID, user_id: UUID) -> Account:
    row = await conn.fetchrow(_ACCOUNT_SQL + " WHERE u.tenant_id = $1 AND u.id = $2", tenant_id, user_id)
    if row is None:
        raise UserNotFound()
    return _account(row)


async def insert(conn: asyncpg.Connection, *, tenant_id: UUID, email: str, password_hash: str, name: str,
                 role: str, permissions: frozenset[str] | tuple[str, ...] = ()) -> Account:
    if role not in ROLES:
        raise ValidationError("Invalid input data.", details={"role": [f"must be one of {', '.join(ROLES)}"]})
    try:
        uid = await conn.fetchval(
            "INSERT INTO users (tenant_id, email, password_hash, name, role, permissions)"
            " VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
            tenant_id, email, password_hash, name, role, sorted(permissions))
    except asyncpg.UniqueViolationError:
        raise EmailTaken() from None
    if role == "partner":
        await conn.execute("INSERT INTO partner_balances (user_id, tenant_id) VALUES ($1, $2)", uid, tenant_id)
    return await get(conn, tenant_id, uid)


async def set_password_hash(conn: asyncpg.Connection, tenant_id: UUID, user_id: UUID, password_hash: str) -> None:
    await conn.execute("UPDATE users SET password_hash = $3, updated_at = now() WHERE id = $2 AND tenant_id = $1",
                       tenant_id, user_id, password_hash)


async def set_kyc_status(conn: asyncpg.Connection, tenant_id: UUID, user_id: UUID, status: str) -> Account:
    if status not in KYC_STATUSES:
        raise ValidationError("Invalid input data.", details={"kycStatus": [f"must be one of {', '.join(KYC_STATUSES)}"]})
    done = await conn.fetchval(
        "UPDATE users SET kyc_status = $3, updated_at = now() WHERE id = $2 AND tenant_id = $1 RETURNING id",
        tenant_id, user_id, status)
    if done is None:
        raise UserNotFound()
    return await get(conn, tenant_id, user_id)


async def create_user(db: Database, email: str, password: str, role: str, tenant_slug: str, *,
                      name: str = "", permissions: tuple[str, ...] = (),
                      passwords: Passwords | None = None) -> Account:
    """For the CLI and seeding: a user of any role in the tenant named by `tenant_slug`.
    Staff created without permissions get '*' (all)."""
    email = check_email(email)
    check_password(password)
    if role == "staff" and not permissions:
        permissions = ("*",)
    password_hash = await (passwords or Passwords()).hash(password)
    async with db.transaction() as conn:
        tenant = await tenant_by_slug(conn, tenant_slug)
        return await insert(conn, tenant_id=tenant.id, email=email, password_hash=password_hash,
                            name=name, role=role, permissions=frozenset(permissions))
