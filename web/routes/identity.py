"""Identity: sign-up, login, refresh, logout, the current user, API keys, KYC decisions.

`setup(app)` installs the real authenticator (deny list in Redis, disabled users, API keys) and
the Redis rate limiter in place of the skeleton's placeholders.
"""

from __future__ import annotations

import datetime as dt
import time
from decimal import Decimal
from typing import Annotated, AsyncIterator, Literal

import msgspec
import structlog
from aiohttp import web
from prometheus_client import Counter

from engine.domain.errors import Forbidden
from engine.identity import api_keys, service
from engine.identity.access import AccessChange, change_access
from engine.identity.account_versions import AccountVersions
from engine.identity.accounts import Account, Tenant
from engine.identity.login_throttle import LoginThrottle
from engine.identity.passwords import MAX_LENGTH, Passwords
from engine.identity.revocation import Revocations
from engine.identity.sessions import Session, Sessions
from engine.identity.tokens import TokenIssuer
from web import keys
from web.api import PUBLIC, REQUIRED, ROUTES, Reply, Req, RouteTable
from web.auth import SESSION_ID, Authenticator
from web.envelope import Pagination
from web.ratelimit import POLICIES, RedisRateLimiter, client_address

log = structlog.get_logger("identity")
routes = RouteTable()
VERSIONS = web.AppKey("account_versions", AccountVersions)
TROUBLE: web.AppKey["_RedisTrouble"] = web.AppKey("identity_redis_trouble")

Email = Annotated[str, msgspec.Meta(min_length=3, max_length=254)]
Password = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_LENGTH)]
Name = Annotated[str, msgspec.Meta(max_length=200)]
Scope = Annotated[str, msgspec.Meta(min_length=3, max_length=64)]


# ----------------------------------------------------------------------------- types

class RegisterIn(msgspec.Struct, forbid_unknown_fields=True, rename="camel"):
    email: Email
    password: Password
    name: Name = ""


class LoginIn(msgspec.Struct, forbid_unknown_fields=True, rename="camel"):
    email: Email
    password: Password


class RefreshIn(msgspec.Struct, forbid_unknown_fields=True, rename="camel"):
    refresh_token: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]


class TenantOut(msgspec.Struct, rename="camel"):
    id: str
    slug: str
    name: str


class Me(msgspec.Struct, rename="camel"):
    id: str
    email: str
    name: str
    role: str
    tenant: TenantOut
    kyc_status: str
    permissions: list[str]
    avatar_url: str | None
    partner_balance: Decimal | None     # partners only
    career_points: Decimal | None       # partners only
    created_at: dt.datetime


class TokenPair(msgspec.Struct, rename="camel"):
    access_token: str
    refresh_token: str
    token_type: str
    expires_in: int


class AuthResult(msgspec.Struct, rename="camel"):
    access_token: str
    refresh_token: str
    token_type: str
    expires_in: int
    user: Me


class LoggedOut(msgspec.Struct, rename="camel"):
    message: str


class ApiKeyIn(msgspec.Struct, forbid_unknown_fields=True, rename="camel"):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=200, pattern=r"\S")]
    scopes: Annotated[list[Scope], msgspec.Meta(max_length=api_keys.MAX_SCOPES)] = []
    plan: Literal["standard", "enterprise"] = "standard"


class ApiKeyOut(msgspec.Struct, rename="camel"):
    id: str
    name: str
    prefix: str
    scopes: list[str]
    plan: str
    active: bool
    created_at: dt.datetime
    revoked_at: dt.datetime | None


class ApiKeyCreated(msgspec.Struct, rename="camel"):
    id: str
    name: str
    prefix: str
    scopes: list[str]
    plan: str
    active: bool
    created_at: dt.datetime
    revoked_at: dt.datetime | None
    key: str                            # the plaintext: shown once, never again


class ApiKeyList(msgspec.Struct, rename="camel"):
    api_keys: list[ApiKeyOut]


class PageQuery(msgspec.Struct, rename="camel"):
    page: Annotated[int, msgspec.Meta(ge=1, le=1_000_000)] = 1
    page_size: Annotated[int, msgspec.Meta(ge=1, le=100)] = 20


class AccessIn(msgspec.Struct, forbid_unknown_fields=True, rename="camel"):
    role: Literal["customer", "partner", "staff"]
    permissions: Annotated[list[Annotated[str, msgspec.Meta(min_length=1, max_length=64)]],
                           msgspec.Meta(max_length=32)] = []
    disabled: bool | None = None        # omitted: the account's state is left as it is


class KycIn(msgspec.Struct, forbid_unknown_fields=True, rename="camel"):
    kyc_status: Literal["NONE", "PENDING", "VERIFIED", "REJECTED"]


def _me(a: Account, t: Tenant) -> Me:
    return Me(id=str(a.id), email=a.email, name=a.name, role=a.role,
              tenant=TenantOut(id=str(t.id), slug=t.slug, name=t.name), kyc_status=a.kyc_status,
              permissions=sorted(a.permissions), avatar_url=a.avatar_url,
              partner_balance=a.partner_balance if a.role == "partner" else None,
              career_points=a.career_points if a.role == "partner" else None, created_at=a.created_at)


def _key_out(k: api_keys.ApiKey) -> ApiKeyOut:
    return ApiKeyOut(id=str(k.id), name=k.name, prefix=k.prefix, scopes=sorted(k.scopes), plan=k.plan,
                     active=k.revoked_at is None, created_at=k.created_at, revoked_at=k.revoked_at)


async def _auth_result(req: Req, account: Account, session: Session) -> AuthResult:
    tenant = await service.tenant(req.app[keys.DB], account.tenant_id)
    return AuthResult(access_token=session.access_token, refresh_token=session.refresh_token,
                      token_type="Bearer", expires_in=session.expires_in, user=_me(account, tenant))


def _require_staff(req: Req) -> None:
    # API keys are integrations, not people: they never manage keys or decide KYC.
    if not req.principal.is_staff:
        raise Forbidden("Staff only.")


# ----------------------------------------------------------------------------- sessions

@routes.post("/auth/register", policy="auth", body=RegisterIn, response=AuthResult, status=201, auth=PUBLIC,
             errors=("EMAIL_TAKEN",), tag="Auth", summary="Create a customer account and log in")
async def register(req: Req) -> AuthResult:
    account, session = await req.app[keys.SESSIONS].register(req.tenant_id, req.body.email, req.body.password,
                                                        req.body.name, int(time.time()))
    return await _auth_result(req, account, session)


@routes.post("/auth/login", policy="auth", body=LoginIn, response=AuthResult, auth=PUBLIC,
             errors=("INVALID_CREDENTIALS", "RATE_LIMIT_EXCEEDED"), tag="Auth",
             summary="Exchange email and password for an access token and a refresh token")
async def login(req: Req) -> AuthResult:
    address = client_address(req.request, req.app[keys.SETTINGS])
    account, session = await req.app[keys.SESSIONS].login(req.tenant_id, req.body.email, req.body.password,
                                                     address, int(time.time()))
    return await _auth_result(req, account, session)


@routes.post("/auth/refresh", policy="auth", body=RefreshIn, response=TokenPair, auth=PUBLIC, errors=("UNAUTHORIZED",),
             tag="Auth", summary="Rotate a refresh token; reusing an old one revokes the session")
async def refresh(req: Req) -> TokenPair:
    session = await req.app[keys.SESSIONS].refresh(req.body.refresh_token, int(time.time()))
    return TokenPair(access_token=session.access_token, refresh_token=session.refresh_token,
                     token_type="Bearer", expires_in=session.expires_in)


@routes.delete("/auth/logout", policy="account", response=LoggedOut, auth=REQUIRED, tag="Auth",
               summary="Revoke the current access token and its refresh tokens")
async def logout(req: Req) -> LoggedOut:
    await req.app[keys.SESSIONS].logout(req.principal, req.request.get(SESSION_ID), int(time.time()))
    return LoggedOut(message="Logged out.")


@routes.get("/me", policy="account", response=Me, auth=REQUIRED, tag="Auth", summary="The current user")
async def me(req: Req) -> Me:
    if req.principal.user_id is None:
        raise Forbidden("An API key has no user.")
    account, tenant = await service.account_and_tenant(req.app[keys.DB], req.tenant_id, req.principal.user_id)
    return _me(account, tenant)


# ----------------------------------------------------------------------------- staff

@routes.post("/api-keys", policy="admin", body=ApiKeyIn, response=ApiKeyCreated, status=201, auth=REQUIRED,
             permission="api_keys:write", tag="API keys",
             summary="Create an API key (its plaintext is shown once, in this answer)")
async def create_key(req: Req) -> ApiKeyCreated:
    _require_staff(req)
    scopes = api_keys.check_scopes(req.body.scopes)
    if not req.principal.can("*") and not scopes <= req.principal.permissions:
        raise Forbidden("A key cannot carry scopes its creator does not hold.")
    key, plaintext = await service.create_key(req.app[keys.DB], req.tenant_id, req.body.name.strip(), scopes,
                                            req.body.plan, req.principal.user_id)
    return ApiKeyCreated(**msgspec.structs.asdict(_key_out(key)), key=plaintext)


@routes.get("/api-keys", policy="admin", query=PageQuery, response=ApiKeyList, auth=REQUIRED, permission="api_keys:read",
            paginated=True, tag="API keys", summary="List the tenant's API keys")
async def list_keys(req: Req) -> Reply:
    _require_staff(req)
    q = req.query
    found, total = await service.key_page(req.app[keys.DB], req.tenant_id, page=q.page, page_size=q.page_size)
    return Reply(ApiKeyList(api_keys=[_key_out(k) for k in found]),
                 meta={"pagination": Pagination.of(total, q.page, q.page_size)})


@routes.delete("/api-keys/{id}", policy="admin", response=ApiKeyOut, auth=REQUIRED, permission="api_keys:write",
               errors=("API_KEY_NOT_FOUND",), tag="API keys", summary="Revoke an API key at once")
async def revoke_key(req: Req) -> ApiKeyOut:
    _require_staff(req)
    return _key_out(await service.revoke_key(req.app[keys.DB], req.tenant_id, req.params["id"]))


@routes.patch("/admin/users/{id}/kyc", policy="admin", body=KycIn, response=Me, auth=REQUIRED, permission="users:write",
              errors=("USER_NOT_FOUND",), tag="Users", summary="Record a KYC decision for a user")
async def set_kyc(req: Req) -> Me:
    _require_staff(req)
    account, tenant = await service.record_kyc(req.app[keys.DB], req.tenant_id, req.params["id"], req.body.kyc_status)
    return _me(account, tenant)


@routes.patch("/admin/users/{id}/access", policy="admin", body=AccessIn, response=Me, auth=REQUIRED, permission="users:write",
              errors=("USER_NOT_FOUND", "VALIDATION_ERROR", "FORBIDDEN"), tag="Users",
              summary="Change a user's role, staff permissions or disabled state; takes effect on their next request")
async def set_access(req: Req) -> Me:
    _require_staff(req)
    change = AccessChange(req.body.role, frozenset(req.body.permissions), req.body.disabled)
    account, _ = await change_access(req.app[keys.DB], req.app[VERSIONS], req.tenant_id, req.params["id"], change,
                                     caller_permissions=req.principal.permissions, caller_id=req.principal.user_id,
                                     on_redis_down=req.app[TROUBLE].identity)
    return _me(account, await service.tenant(req.app[keys.DB], req.tenant_id))


# ----------------------------------------------------------------------------- wiring

class _RedisTrouble:
    """Logs (at most every few seconds per operation) and counts Redis outages we ride through."""

    _LOG_EVERY = 5.0

    def __init__(self, metrics) -> None:  # type: ignore[no-untyped-def]
        self.fail_open_total = Counter("rate_limit_fail_open_total", "Requests served unlimited because Redis was down",
                                       ["policy"], registry=metrics.registry)
        self.refused_total = Counter("rate_limit_refused_total", "Requests refused with 429, by policy",
                                     ["policy"], registry=metrics.registry)
        self.unavailable_total = Counter("identity_redis_unavailable_total",
                                         "Identity operations that found Redis unavailable", ["operation"],
                                         registry=metrics.registry)
        self._last_log: dict[str, float] = {}

    def _log(self, what: str, exc: BaseException, **kw: object) -> None:
        now = time.monotonic()
        if now - self._last_log.get(what, -1e9) >= self._LOG_EVERY:
            self._last_log[what] = now
            log.warning("redis_unavailable", operation=what, error=repr(exc), **kw)

    def identity(self, what: str, exc: BaseException) -> None:
        self.unavailable_total.labels(what).inc()
        self._log(what, exc, fail="open" if what != "logout" else "closed")

    def fail_open(self, policy: str, exc: BaseException) -> None:
        self.fail_open_total.labels(policy).inc()
        self._log("rate_limit", exc, policy=policy, fail="open")

    def refused(self, policy: str) -> None:
        self.refused_total.labels(policy).inc()


def _check_policies(app: web.Application) -> None:
    """A route naming an unknown policy, or none, is a programming error: refuse to start."""
    specs = [s for t in app[ROUTES] for s in t.specs]
    unknown = {p for s in specs for p in (s.policy, s.user_policy) if p and p not in POLICIES}
    if unknown:
        raise RuntimeError(f"unknown rate-limit policies {sorted(unknown)}; known: {', '.join(POLICIES)}")
    undeclared = [f"{s.method} {s.full_path}" for s in specs if s.policy is None]
    if undeclared:
        raise RuntimeError(f"routes without a rate-limit policy: {', '.join(undeclared)}")


async def _identity_resources(app: web.Application) -> AsyncIterator[None]:
    settings, db, redis = app[keys.SETTINGS], app[keys.DB], app[keys.REDIS]
    _check_policies(app)
    trouble = _RedisTrouble(app[keys.METRICS])
    tokens = TokenIssuer(settings)
    revocations = Revocations(redis, settings.redis_prefix, settings.access_token_ttl)
    versions = AccountVersions(redis, settings.redis_prefix, settings.account_version_ttl)
    app[VERSIONS], app[TROUBLE] = versions, trouble
    app[keys.AUTH] = Authenticator(settings, db, tokens, revocations, trouble.identity, versions)
    if settings.rate_limit_enabled:
        app[keys.LIMITER] = RedisRateLimiter(settings, redis, trouble.fail_open, trouble.refused)
    throttle = LoginThrottle(redis, settings.redis_prefix, settings.login_max_failures, settings.login_failure_window,
                             settings.login_max_address_failures)
    app[keys.SESSIONS] = Sessions(settings, db, tokens, Passwords(), revocations, throttle, trouble.identity)
    yield


def setup(app: web.Application) -> None:
    app.cleanup_ctx.append(_identity_resources)
