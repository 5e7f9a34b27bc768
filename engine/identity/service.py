"""What the identity handlers ask of the store, each in its own connection or transaction.

The functions in accounts.py and api_keys.py take a connection so they can join a caller's
transaction (sign-up, sessions); a handler calls these instead, so transactions open in the
engine and never in web/.
"""

from __future__ import annotations

from uuid import UUID

from engine.db import Database
from engine.identity import accounts, api_keys
from engine.identity.accounts import Account, Tenant
from engine.identity.api_keys import ApiKey


async def tenant(db: Database, tenant_id: UUID) -> Tenant:
    async with db.connection() as conn:
        return await accounts.tenant_by_id(conn, tenant_id)


async def account_and_tenant(db: Database, tenant_id: UUID, user_id: UUID) -> tuple[Account, Tenant]:
    """A user of the tenant (USER_NOT_FOUND otherwise) and the tenant, read together."""
    async with db.connection() as conn:
        return await accounts.get(conn, tenant_id, user_id), await accounts.tenant_by_id(conn, tenant_id)


async def record_kyc(db: Database, tenant_id: UUID, user_id: UUID, status: str) -> tuple[Account, Tenant]:
    """Set a user's KYC status; the account as it now is, and its tenant."""
    async with db.transaction() as conn:
        account = await accounts.set_kyc_status(conn, tenant_id, user_id, status)
        return account, await accounts.tenant_by_id(conn, tenant_id)


async def create_key(db: Database, tenant_id: UUID, name: str, scopes: frozenset[str], plan: str,
                     created_by: UUID | None) -> tuple[ApiKey, str]:
    """A new API key and its plaintext (shown once)."""
    async with db.transaction() as conn:
        return await api_keys.create(conn, tenant_id, name, scopes, plan, created_by)


async def key_page(db: Database, tenant_id: UUID, *, page: int, page_size: int) -> tuple[list[ApiKey], int]:
    """One page of the tenant's keys, newest first, and the total."""
    async with db.connection() as conn:
        return await api_keys.page(conn, tenant_id, page_size, (page - 1) * page_size)


async def revoke_key(db: Database, tenant_id: UUID, key_id: UUID) -> ApiKey:
    async with db.transaction() as conn:
        return await api_keys.revoke(conn, tenant_id, key_id)
