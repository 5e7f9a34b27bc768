"""Shared fixtures: real PostgreSQL and Redis for every integration and end-to-end test.

Servers: TEST_DATABASE_URL and TEST_REDIS_URL when set (CI machines and developers with their
own servers), otherwise embedded PostgreSQL and Redis started once for the session.
Isolation: the session gets its own freshly migrated database and Redis key prefix; each test
gets its own tenant, so tests never see each other's rows (and tenant isolation is exercised
by every test).
"""

from __future__ import annotations

import os
import secrets
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Iterator
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer
from argon2 import PasswordHasher

from engine.db import Database
from engine.identity.tokens import TokenIssuer
from engine.migrate import migrate
from engine.settings import Settings


def _with_db(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + name))


@pytest.fixture(scope="session")
def server_urls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    pg, rd = os.environ.get("TEST_DATABASE_URL"), os.environ.get("TEST_REDIS_URL")
    if pg and rd:
        yield pg, rd
        return
    from ops.embedded import EmbeddedServers

    with EmbeddedServers(tmp_path_factory.mktemp("servers")) as servers:
        yield servers.postgres.url, servers.redis.url


@pytest.fixture(scope="session")
async def database_url(server_urls: tuple[str, str]) -> AsyncIterator[str]:
    base = server_urls[0]
    name = f"commerce_test_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(_with_db(base, "postgres"))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    url = _with_db(base, name)
    await migrate(url)
    yield url
    admin = await asyncpg.connect(_with_db(base, "postgres"))
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture(scope="session")
def redis_url(server_urls: tuple[str, str]) -> str:
    return server_urls[1]


@pytest.fixture(scope="session")
def base_settings(database_url: str, redis_url: str) -> Settings:
    """Settings for tests: dev secrets, generous rate limits (limiter tests lower them)."""
    return Settings(
        dev_mode=True,
        database_url=database_url,
        redis_url=redis_url,
        redis_prefix=f"test{secrets.token_hex(3)}",
        db_pool_min=1,
        db_pool_max=10,
        rate_catalogue=100_000,
        rate_cart=100_000,
        rate_financial=100_000,
        rate_orders=100_000,
        rate_categories=100_000, rate_shipping=100_000, rate_reviews=100_000, rate_auth=100_000,
        rate_account=100_000, rate_admin=100_000, rate_webhooks=100_000, rate_pages=100_000,
        login_max_failures=1_000_000,  # one test's failed logins must not throttle the next (same address)
        login_max_address_failures=1_000_000,
        log_format="console",
        log_level="warning",
        payment_webhook_secret="test-webhook-secret-0123456789abcdef",
        # The sandbox provider's own copy of the shared webhook secret (engine.payments.config).
        sandbox_provider_secret="test-webhook-secret-0123456789abcdef",
    )


@pytest.fixture
async def database(base_settings: Settings) -> AsyncIterator[Database]:
    """The engine's own unit-of-work port, for calling engine functions directly."""
    engine_db = Database(base_settings.with_(db_pool_max=20))
    await engine_db.open()
    yield engine_db
    await engine_db.close()


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    """A direct pool for arranging and asserting (never to replace the API under test)."""
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=4)
    yield pool
    await pool.close()


# ----------------------------------------------------------------------------- app and client

@dataclass
class Api:
    """A thin HTTP client for tests: `await api.get(path, as_=user)` -> Resp."""

    client: TestClient
    tenant_slug: str

    async def call(self, method: str, path: str, *, as_: "TestUser | None" = None, json: Any = None,
                   data: Any = None, headers: dict[str, str] | None = None,
                   params: Any = None) -> "Resp":
        h = {"X-Tenant": self.tenant_slug}
        if as_ is not None:
            h.update(as_.headers)
        h.update(headers or {})
        async with self.client.request(method, path, json=json, data=data, headers=h, params=params) as r:
            raw = await r.read()
            try:
                body = await r.json(content_type=None)
            except ValueError:
                body = None
            return Resp(r.status, body, dict(r.headers), raw)

    async def get(self, path: str, **kw: Any) -> "Resp":
        return await self.call("GET", path, **kw)

    async def post(self, path: str, **kw: Any) -> "Resp":
        return await self.call("POST", path, **kw)

    async def patch(self, path: str, **kw: Any) -> "Resp":
        return await self.call("PATCH", path, **kw)

    async def put(self, path: str, **kw: Any) -> "Resp":
        return await self.call("PUT", path, **kw)

    async def delete(self, path: str, **kw: Any) -> "Resp":
        return await self.call("DELETE", path, **kw)


@dataclass
class Resp:
    status: int
    body: Any
    headers: dict[str, str]
    raw: bytes

    @property
    def data(self) -> Any:
        assert self.body is not None and self.body.get("success") is True, (self.status, self.body)
        return self.body["data"]

    @property
    def error(self) -> dict[str, Any]:
        assert self.body is not None and self.body.get("success") is False, (self.status, self.body)
        return self.body["error"]


@pytest.fixture
async def make_client(base_settings: Settings) -> AsyncIterator[Any]:
    """Factory: `await make_client(**setting_overrides)` -> a TestClient on a fresh app."""
    from web.app import create_app

    clients: list[TestClient] = []

    async def factory(**overrides: Any) -> TestClient:
        client = TestClient(TestServer(create_app(base_settings.with_(**overrides))))
        await client.start_server()
        clients.append(client)
        return client

    yield factory
    for c in clients:
        await c.close()


@pytest.fixture
async def client(make_client: Any) -> TestClient:
    return await make_client()


# ----------------------------------------------------------------------------- tenants and users

_hasher = PasswordHasher()
_hash_cache: dict[str, str] = {}


def password_hash(password: str) -> str:
    if password not in _hash_cache:
        _hash_cache[password] = _hasher.hash(password)
    return _hash_cache[password]


@dataclass
class TestUser:
    id: uuid.UUID
    tenant_id: uuid.UUID
    email: str
    password: str
    role: str
    token: str
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Tenant:
    """One test's private tenant, with helpers to make users in it."""

    id: uuid.UUID
    slug: str
    pool: asyncpg.Pool
    settings: Settings

    async def user(self, role: str = "customer", *, email: str | None = None, password: str = "password-123",
                   permissions: tuple[str, ...] = (), kyc_status: str = "NONE", name: str = "Test User") -> TestUser:
        email = email or f"{role}-{secrets.token_hex(4)}@example.com"
        if role == "staff" and not permissions:
            permissions = ("*",)
        uid = await self.pool.fetchval(
            "INSERT INTO users (tenant_id, email, password_hash, name, role, permissions, kyc_status)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
            self.id, email, password_hash(password), name, role, list(permissions), kyc_status)
        if role == "partner":
            await self.pool.execute("INSERT INTO partner_balances (user_id, tenant_id) VALUES ($1, $2)", uid, self.id)
        token, _ = TokenIssuer(self.settings).issue_access(
            user_id=uid, tenant_id=self.id, role=role, permissions=frozenset(permissions), now=int(time.time()))
        return TestUser(uid, self.id, email, password, role, token,
                        {"Authorization": f"Bearer {token}", "X-Tenant": self.slug})


@pytest.fixture
async def tenant(db: asyncpg.Pool, base_settings: Settings) -> Tenant:
    slug = f"t-{secrets.token_hex(6)}"
    tid = await db.fetchval("INSERT INTO tenants (slug, name) VALUES ($1, $2) RETURNING id", slug, slug)
    return Tenant(tid, slug, db, base_settings)


@pytest.fixture
async def api(client: TestClient, tenant: Tenant) -> Api:
    return Api(client, tenant.slug)
