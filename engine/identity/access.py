"""Changing what an account may do: its role, its staff permissions, whether it may sign in.

Invariant: the change takes effect on the account's next request in every API process. The
UPDATE bumps `users.auth_version` (trigger, migration 0012), so every access token issued
before it is refused; after the commit the new version is published to Redis
(engine.identity.account_versions). If that publish fails, PostgreSQL still holds the truth
and Redis's old copy is believed for at most ACCOUNT_VERSION_TTL seconds.

Rules (pure, below): permissions belong to staff only (a customer or partner has none); staff
given no permissions get none ('*' must be asked for); a caller may grant only permissions it
holds itself, only a holder of '*' may change an account that holds '*', and nobody changes
their own access through the API (so the last administrator cannot lock everyone out by a
slip; the operator's CLI can).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable
from uuid import UUID

from engine.db import Database
from engine.domain.errors import Forbidden, UserNotFound, ValidationError
from engine.identity import accounts, api_keys
from engine.identity.account_versions import AccountVersions, signed
from engine.identity.accounts import Account
from engine.identity.sessions import REDIS_DOWN
from engine.domain.principal import ROLES

MAX_PERMISSIONS = api_keys.MAX_SCOPES


@dataclass(frozen=True, slots=True)
class AccessChange:
    role: str
    permissions: frozenset[str]
    disabled: bool | None = None     # None: leave the account's state as it is


def check_change(change: AccessChange) -> AccessChange:
    """The change, validated; raises ValidationError."""
    if change.role not in ROLES:
        raise ValidationError("Invalid input data.", details={"role": [f"must be one of {', '.join(ROLES)}"]})
    if change.role != "staff" and change.permissions:
        raise ValidationError("Invalid input data.", details={"permissions": ["only staff hold permissions"]})
    explicit = change.permissions - {"*"}
    if explicit:
        api_keys.check_scopes(explicit)
    if len(change.permissions) > MAX_PERMISSIONS:
        raise ValidationError("Invalid input data.", details={"permissions": [f"at most {MAX_PERMISSIONS}"]})
    return change


def check_grant(caller_permissions: frozenset[str], target: Account, change: AccessChange) -> None:
    """A caller cannot hand out more than it holds, nor touch an account that holds more."""
    if "*" in caller_permissions:
        return
    if "*" in target.permissions:
        raise Forbidden("Only a holder of '*' may change an account holding '*'.")
    if not change.permissions <= caller_permissions:
        raise Forbidden("You cannot grant permissions you do not hold.")


async def change_access(db: Database, versions: AccountVersions | None, tenant_id: UUID, user_id: UUID,
                        change: AccessChange, *, caller_permissions: frozenset[str] = frozenset({"*"}),
                        caller_id: UUID | None = None,
                        on_redis_down: Callable[[str, BaseException], None] = lambda what, exc: None,
                        ) -> tuple[Account, bool]:
    """Apply the change; returns (the account after it, whether Redis heard of it at once)."""
    change = check_change(change)
    if caller_id is not None and caller_id == user_id:
        raise Forbidden("You cannot change your own access; ask another staff member.")
    async with db.transaction() as conn:
        target = await conn.fetchrow("SELECT 1 FROM users WHERE id = $1 AND tenant_id = $2 FOR UPDATE",
                                     user_id, tenant_id)
        if target is None:
            raise UserNotFound()
        check_grant(caller_permissions, await accounts.get(conn, tenant_id, user_id), change)
        await conn.execute(
            "UPDATE users SET role = $3, permissions = $4, disabled = coalesce($5, disabled), updated_at = now()"
            " WHERE id = $2 AND tenant_id = $1", tenant_id, user_id, change.role, sorted(change.permissions),
            change.disabled)
        if change.role == "partner":
            await conn.execute("INSERT INTO partner_balances (user_id, tenant_id) VALUES ($1, $2)"
                               " ON CONFLICT DO NOTHING", user_id, tenant_id)
        account = await accounts.get(conn, tenant_id, user_id)
    if versions is None:
        return account, False
    try:
        await versions.publish(account.id, signed(account.auth_version, account.disabled))
    except REDIS_DOWN as exc:
        on_redis_down("account_version_publish", exc)
        return account, False
    return account, True


async def change_access_by_email(db: Database, versions: AccountVersions | None, tenant_slug: str, email: str,
                                 change: AccessChange) -> tuple[Account, bool]:
    """For the CLI: the operator holds every permission."""
    async with db.connection() as conn:
        tenant = await accounts.tenant_by_slug(conn, tenant_slug)
        account = await accounts.find_by_email(conn, tenant.id, email)
    if account is None:
        raise UserNotFound()
    return await change_access(db, versions, tenant.id, account.id, change)
