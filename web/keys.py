"""Typed application keys: every shared resource hangs off the app, none is a module global."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import redis.asyncio as aioredis
from aiohttp import web

from engine.db import Database
from engine.domain.principal import Principal
from engine.identity.sessions import Sessions
from engine.settings import Settings

if TYPE_CHECKING:
    from web.auth import Authenticator
    from web.metrics import Metrics
    from web.ratelimit import RateLimiter

SETTINGS = web.AppKey("settings", Settings)
DB = web.AppKey("db", Database)
REDIS = web.AppKey("redis", aioredis.Redis)
METRICS: web.AppKey["Metrics"] = web.AppKey("metrics")
AUTH: web.AppKey["Authenticator"] = web.AppKey("auth")
LIMITER: web.AppKey["RateLimiter"] = web.AppKey("limiter")
OPENAPI: web.AppKey[dict[str, Any]] = web.AppKey("openapi")
# Sign-up, login, refresh and logout (engine.identity.sessions): the API and the operations page.
SESSIONS = web.AppKey("identity_sessions", Sessions)
# The stored answer to a keyed request, if any (web.idempotency.stored_replay): web.api answers
# a replay from it when the budget is spent, without importing the module built on top of it.
STORED_REPLAY: web.AppKey[Any] = web.AppKey("stored_replay")

# Per-request storage.
REQUEST_ID = web.RequestKey("request_id", str)
PRINCIPAL = web.RequestKey("principal", Principal)
