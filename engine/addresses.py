"""Saved addresses: a customer's own shipping and billing addresses.

Invariants:
- Every query filters on tenant_id AND user_id: another user's address does not exist
  (`ADDRESS_NOT_FOUND`), it is never "forbidden".
- Deleting is soft (`deleted_at`): orders keep their own address snapshot, and a deleted
  address is invisible everywhere, checkout included.
- At most one live default address per user: setting `is_default` clears it on the others in
  the same transaction, and a user's first address becomes the default (the shop has
  somewhere to ship before the customer thinks about defaults).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import asyncpg

from engine.db import Database
from engine.domain.address import PostalAddress
from engine.domain.errors import AddressNotFound

_COLUMNS = ("id, recipient_name, street, city, region, country, postal_code, phone, is_default,"
            " created_at, updated_at")
FIELDS = tuple(c.strip() for c in _COLUMNS.split(","))   # what an Address is built from
# Fields a customer may set, in the names the store uses.
EDITABLE = ("recipient_name", "street", "city", "region", "country", "postal_code", "phone", "is_default")


@dataclass(frozen=True, slots=True, kw_only=True)
class Address(PostalAddress):
    """An entry of the user's address book: a postal address with its identity and flags."""

    id: UUID
    is_default: bool
    created_at: dt.datetime
    updated_at: dt.datetime


def _address(row: Any) -> Address:
    return Address(**dict(row))


def address_from(row: Any, prefix: str) -> Address | None:
    """The Address in columns `<prefix><field>` of a wider row (a join), None if absent."""
    if row[prefix + "id"] is None:
        return None
    return Address(**{f: row[prefix + f] for f in FIELDS})


async def get_address(conn: asyncpg.Connection, tenant_id: UUID, user_id: UUID, address_id: UUID) -> Address:
    """The user's live address, or `AddressNotFound` (also for another user's or a deleted one)."""
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM addresses WHERE id = $1 AND tenant_id = $2 AND user_id = $3"
        " AND deleted_at IS NULL", address_id, tenant_id, user_id)
    if row is None:
        raise AddressNotFound()
    return _address(row)


async def list_addresses(db: Database, tenant_id: UUID, user_id: UUID, *, page: int,
                         page_size: int) -> tuple[list[Address], int]:
    """One page of the user's live addresses (default first, then newest) and the total."""
    async with db.connection() as conn:
        total = await conn.fetchval(
            "SELECT count(*) FROM addresses WHERE tenant_id = $1 AND user_id = $2 AND deleted_at IS NULL",
            tenant_id, user_id)
        rows = await conn.fetch(
            f"SELECT {_COLUMNS} FROM addresses WHERE tenant_id = $1 AND user_id = $2 AND deleted_at IS NULL"
            " ORDER BY is_default DESC, created_at DESC, id LIMIT $3 OFFSET $4",
            tenant_id, user_id, page_size, (page - 1) * page_size)
    return [_address(r) for r in rows], total


async def read_address(db: Database, tenant_id: UUID, user_id: UUID, address_id: UUID) -> Address:
    async with db.connection() as conn:
        return await get_address(conn, tenant_id, user_id, address_id)


async def _lock_user(conn: asyncpg.Connection, user_id: UUID) -> None:
    # Serialises default-address changes of one user across processes (two tabs creating
    # "first" addresses at once must not both become default).
    await conn.execute("SELECT 1 FROM users WHERE id = $1 FOR UPDATE", user_id)


async def _clear_default(conn: asyncpg.Connection, tenant_id: UUID, user_id: UUID, keep: UUID | None) -> None:
    await conn.execute(
        "UPDATE addresses SET is_default = false, updated_at = now() WHERE tenant_id = $1 AND user_id = $2"
        " AND is_default AND deleted_at IS NULL AND id IS DISTINCT FROM $3", tenant_id, user_id, keep)


async def create_address(db: Database, tenant_id: UUID, user_id: UUID, fields: dict[str, Any]) -> Address:
    """Save a new address; `fields` holds every EDITABLE name (phone may be None)."""
    async with db.transaction() as conn:
        await _lock_user(conn, user_id)
        has_any = await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM addresses WHERE tenant_id = $1 AND user_id = $2 AND deleted_at IS NULL)",
            tenant_id, user_id)
        is_default = bool(fields.get("is_default")) or not has_any
        if is_default:
            await _clear_default(conn, tenant_id, user_id, None)
        row = await conn.fetchrow(
            "INSERT INTO addresses (tenant_id, user_id, recipient_name, street, city, region, country,"
            " postal_code, phone, is_default) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
            f" RETURNING {_COLUMNS}", tenant_id, user_id, fields["recipient_name"], fields["street"],
            fields["city"], fields.get("region") or "", fields["country"], fields["postal_code"],
            fields.get("phone"), is_default)
        return _address(row)


async def update_address(db: Database, tenant_id: UUID, user_id: UUID, address_id: UUID,
                         changes: dict[str, Any]) -> Address:
    """Apply the given EDITABLE fields (absent ones keep their value)."""
    unknown = set(changes) - set(EDITABLE)
    if unknown:
        raise ValueError(f"not editable: {sorted(unknown)}")
    async with db.transaction() as conn:
        await _lock_user(conn, user_id)
        current = await get_address(conn, tenant_id, user_id, address_id)
        if not changes:
            return current
        if changes.get("is_default"):
            await _clear_default(conn, tenant_id, user_id, address_id)
        names = list(changes)
        sets = ", ".join(f"{name} = ${i + 4}" for i, name in enumerate(names))
        row = await conn.fetchrow(
            f"UPDATE addresses SET {sets}, updated_at = now() WHERE id = $1 AND tenant_id = $2"
            f" AND user_id = $3 AND deleted_at IS NULL RETURNING {_COLUMNS}",
            address_id, tenant_id, user_id, *(changes[n] for n in names))
        return _address(row)


async def delete_address(db: Database, tenant_id: UUID, user_id: UUID, address_id: UUID) -> None:
    """Soft delete. A deleted default leaves the user without a default (no guessing)."""
    async with db.transaction() as conn:
        done = await conn.fetchval(
            "UPDATE addresses SET deleted_at = now(), is_default = false, updated_at = now()"
            " WHERE id = $1 AND tenant_id = $2 AND user_id = $3 AND deleted_at IS NULL RETURNING id",
            address_id, tenant_id, user_id)
    if done is None:
        raise AddressNotFound()
