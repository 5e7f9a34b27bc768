"""The aiohttp application factory: `create_app(settings)`.

Shared resources (database pool, Redis, metrics, authenticator, limiter) are opened and closed
by cleanup contexts; the actor services several features share start next (web.resources);
each feature module in `web/routes/` contributes a `routes` table and, optionally, `setup(app)`
to add resources only it uses. No feature relies on another's set-up having run first.
"""

from __future__ import annotations

import importlib
from typing import AsyncIterator

import redis.asyncio as aioredis
from aiohttp import web

from engine.db import Database
from engine.identity.tokens import TokenIssuer
from engine.payments.config import check as check_payments
from engine.settings import Settings
from web import keys, openapi, resources
from web.api import ROUTES, RouteTable
from web.auth import Authenticator
from web.errors import error_middleware
from web.idempotency import stored_replay
from web.metrics import Metrics
from web.middleware import request_context
from web.ratelimit import RateLimiter

# The order of the OpenAPI document. Set-up does not depend on it: shared resources come from
# _shared_resources and web.resources, before any feature's `setup`.
FEATURES = ("system", "identity", "catalogue", "addresses", "cart", "coupons", "orders", "shipping", "payments", "refunds",
            "price_lists", "operations", "webhooks")


def _feature_modules() -> list:
    return [importlib.import_module(f"web.routes.{name}") for name in FEATURES]


def route_tables() -> list[RouteTable]:
    tables: list[RouteTable] = []
    for module in _feature_modules():
        tables += [v for v in vars(module).values() if isinstance(v, RouteTable)]
    return tables


def create_app(settings: Settings) -> web.Application:
    settings.require_secrets()
    check_payments(settings)
    app = web.Application(client_max_size=settings.max_body_bytes,
                          middlewares=[request_context, error_middleware])
    app[keys.SETTINGS] = settings
    app[keys.METRICS] = Metrics()
    app[keys.LIMITER] = RateLimiter()
    app.cleanup_ctx.append(_shared_resources)
    resources.setup(app)

    tables = route_tables()
    for table in tables:
        table.register(app)
    app[ROUTES] = tables
    app[keys.STORED_REPLAY] = stored_replay
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
    app[keys.REDIS] = aioredis.from_url(settings.redis_address,
                                        socket_timeout=2, socket_connect_timeout=2,
                                        health_check_interval=10)
    app[keys.AUTH] = Authenticator(settings, db, TokenIssuer(settings))
    try:
        yield
    finally:
        await app[keys.REDIS].aclose()
        await db.close()
