"""Sign-up, login, refresh and logout: the use cases that hand out and take back tokens.

Invariants:
- Login answers an unknown email, a wrong password and a disabled account identically
  (InvalidCredentials, after one argon2 verification each), so neither the body nor the time
  tells them apart.
- Failed logins are throttled per (account, address) and, more slowly, per address, in one
  atomic Redis step taken before any hash is computed (engine.identity.login_throttle).
- Refresh rotates; a reused refresh token revokes its family and the family's access tokens.
- Logout denies the access token and its session in Redis (so every process refuses them on
  the next request) and revokes the refresh family in PostgreSQL. If Redis cannot record the
  denial, logout fails (503) rather than pretending.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable
from uuid import UUID

from redis.exceptions import RedisError

from engine.db import Database
from engine.domain.errors import InvalidCredentials, RateLimited, ServiceUnavailable, Unauthorized
from engine.identity import accounts, refresh
from engine.identity.accounts import Account
from engine.identity.login_throttle import LoginThrottle
from engine.identity.passwords import Passwords
from engine.identity.revocation import Revocations
from engine.identity.tokens import AccessClaims, TokenIssuer
from engine.domain.principal import Principal
from engine.settings import Settings

REDIS_DOWN = (RedisError, OSError, TimeoutError)


@dataclass(frozen=True, slots=True)
class Session:
    access_token: str
    claims: AccessClaims
    refresh_token: str
    expires_in: int


class Sessions:
    def __init__(self, settings: Settings, db: Database, tokens: TokenIssuer, passwords: Passwords,
                 revocations: Revocations, throttle: LoginThrottle,
                 on_redis_down: Callable[[str, BaseException], None] = lambda what, exc: None) -> None:
        self._settings = settings
        self._db = db
        self._tokens = tokens
        self._passwords = passwords
        self._revocations = revocations
        self._throttle = throttle
        self._on_redis_down = on_redis_down  # logs and counts; the engine itself does not log

    def _issue(self, tenant_id: UUID, user_id: UUID, role: str, permissions: frozenset[str],
               refresh_token: str, family_id: UUID, now: int, version: int) -> Session:
        token, claims = self._tokens.issue_access(user_id=user_id, tenant_id=tenant_id, role=role,
                                                  permissions=permissions, now=now, session_id=family_id,
                                                  version=version)
        return Session(token, claims, refresh_token, self._tokens.ttl)

    async def _start(self, account: Account, now: int) -> Session:
        async with self._db.transaction() as conn:
            token, family = await refresh.start_family(conn, account.tenant_id, account.id,
                                                       self._settings.refresh_token_ttl)
        return self._issue(account.tenant_id, account.id, account.role, account.permissions, token, family, now,
                           account.auth_version)

    async def register(self, tenant_id: UUID, email: str, password: str, name: str, now: int) -> tuple[Account, Session]:
        """A customer account in this tenant, logged in at once."""
        email = accounts.check_email(email)
        accounts.check_password(password)
        password_hash = await self._passwords.hash(password)
        async with self._db.transaction() as conn:
            account = await accounts.insert(conn, tenant_id=tenant_id, email=email, password_hash=password_hash,
                                            name=name.strip(), role="customer")
        return account, await self._start(account, now)

    async def login(self, tenant_id: UUID, email: str, password: str, address: str, now: int) -> tuple[Account, Session]:
        blocked = await self._throttle_attempt(tenant_id, email, address)
        if blocked:
            raise RateLimited("Too many failed logins; retry later.", extra={"retry_after": blocked})
        async with self._db.connection() as conn:
            account = await accounts.find_by_email(conn, tenant_id, email)
        ok = await self._passwords.verify_or_dummy(account.password_hash if account else None, password)
        if not ok or account is None or account.disabled:
            raise InvalidCredentials()  # the attempt was already counted as a failure
        await self._throttle_succeeded(tenant_id, email, address)
        if self._passwords.needs_rehash(account.password_hash):
            new_hash = await self._passwords.hash(password)
            async with self._db.transaction() as conn:
                await accounts.set_password_hash(conn, tenant_id, account.id, new_hash)
        return account, await self._start(account, now)

    async def refresh(self, token: str, now: int) -> Session:
        try:
            grant = await refresh.rotate(self._db, token, self._settings.refresh_token_ttl)
        except refresh.Reused as reused:
            try:
                await self._revocations.revoke_session(reused.family_id)
            except REDIS_DOWN as exc:  # the refresh family is revoked in PostgreSQL regardless
                self._on_redis_down("revoke_session", exc)
            raise Unauthorized("Refresh token was already used; the session has been revoked.") from None
        return self._issue(grant.tenant_id, grant.user_id, grant.role, grant.permissions,
                           grant.refresh_token, grant.family_id, now, grant.auth_version)

    async def logout(self, principal: Principal, session_id: UUID | None, now: int) -> None:
        """Deny the caller's access token and its session (`session_id`: the token's `sid`)."""
        if principal.token_id is None or principal.user_id is None:
            raise Unauthorized("Logout needs a bearer access token.")
        claims_session = session_id
        try:
            await self._revocations.revoke_token(principal.token_id, principal.token_expires_at or now, now)
            if claims_session is not None:
                await self._revocations.revoke_session(claims_session)
        except REDIS_DOWN as exc:
            self._on_redis_down("logout", exc)
            raise ServiceUnavailable("Cannot record the logout right now; retry shortly.",
                                     extra={"retry_after": self._settings.dependency_retry_after}) from exc
        if claims_session is not None:
            async with self._db.transaction() as conn:
                await refresh.revoke_family(conn, claims_session, principal.user_id)

    async def _throttle_attempt(self, tenant_id: UUID, email: str, address: str) -> int:
        try:
            return await self._throttle.attempt(tenant_id, email, address)
        except REDIS_DOWN as exc:  # fail open: argon2 still slows guessing; logged and counted
            self._on_redis_down("login_throttle", exc)
            return 0

    async def _throttle_succeeded(self, tenant_id: UUID, email: str, address: str) -> None:
        try:
            await self._throttle.succeeded(tenant_id, email, address)
        except REDIS_DOWN as exc:
            self._on_redis_down("login_throttle", exc)
