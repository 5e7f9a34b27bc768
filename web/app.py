"""The aiohttp application factory: `create_app(settings)`.

Shared resources (database pool, Redis, metrics, authenticator, limiter) are opened and closed
by cleanup contexts; each feature module in `web/routes/` contributes a `routes` table and,
optionally, `setup(app)` to add its own resources (actors, services) after the shared ones.
"""

from __future__ import annotations

import importlib
from typing import AsyncIterator

import redis.asyncio as aioredis
from aiohttp import web

from engine.db import Database
from engine.identity.tokens import TokenIssuer
from engine.settings import Settings
from web import keys, openapi
from web.api import RouteTable
from web.auth import Authenticator
from web.errors import error_middleware
from web.metrics import Metrics
from web.middleware import request_context
from web.ratelimit import RateLimiter

# Order matters only for resource set-up: identity first (it installs the real authenticator
# and limiter), then the features that depend on it.
FEATURES = ("system", "identity", "catalogue", "addresses", "cart", "coupons", "orders", "shipping", "payments", "refunds",
            "operations")


def _feature_modules() -> list:
    return [importlib.import_module(f"web.routes.{name}") for name in FEATURES]


def route_tables() -> list[RouteTable]:
    tables: list[RouteTable] = []
    for module in _feature_modules():
        tables += [v for v in vars(module).values() if isinstance(v, RouteTable)]
    return tables


def create_app(settings: Settings) -> web.Application:
    settings.require_secrets()
    app = web.Application(client_max_size=settings.max_body_bytes,
                          middlewares=[request_context, error_middleware])
    app[keys.SETTINGS] = settings
    app[keys.METRICS] = Metrics()
    app[keys.LIMITER] = RateLimiter()
    app.cleanup_ctx.append(_shared_resources)

    tables = route_tables()
    for table in tables:
        table.register(app)
    app[keys.ROUTES] = tables
    app[keys.OPENAPI] = openapi.build(spec for t in tables for spec in t.specs)
    for module in _feature_modules():
        setup = getattr(module, "setup", None)
        if setup is not None:
            setup(app)
    return app


async def _shared_resources(app: web.Application) -> AsyncIterator[None]:
    settings = app[keys.SETTINGS]
    db = Database(settings)
    await db.open()
    app[keys.DB] = db
    app[keys.REDIS] = aioredis.from_url(settings.redis_url or "redis://127.0.0.1:6379/0",
                                        socket_timeout=2, socket_connect_timeout=2,
                                        health_check_interval=10)
    app[keys.AUTH] = Authenticator(settings, db, TokenIssuer(settings))
    try:
        yield
    finally:
        await app[keys.REDIS].aclose()
        await db.close()
