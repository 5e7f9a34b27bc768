"""What jobs use (database pool, Redis, payment provider), owned by one worker.

Created empty when the worker is assembled and opened by the DatabasePool middleware on the
AsyncIO middleware's event loop at worker boot, never at import: an asyncpg pool belongs to
the loop it was created on, and every async actor of the process runs on that one loop.
"""

from __future__ import annotations

import asyncio
from typing import Callable

import redis.asyncio as aioredis

from engine.db import Database
from engine.payments import provider_for
from engine.payments.provider import PaymentProvider
from engine.settings import Settings

ProviderFactory = Callable[[Settings, Database], PaymentProvider]


class WorkerResources:
    def __init__(self, settings: Settings, provider_factory: ProviderFactory = provider_for) -> None:
        self.settings = settings
        self._provider_factory = provider_factory
        self._db: Database | None = None
        self._redis: aioredis.Redis | None = None
        self._provider: PaymentProvider | None = None
        self._ready: asyncio.Event | None = None

    async def open(self) -> None:
        db = Database(self.settings)
        await db.open()
        self._db = db
        self._redis = aioredis.from_url(self.settings.redis_address,
                                        socket_timeout=5, socket_connect_timeout=5)
        self._provider = self._provider_factory(self.settings, db)
        self._event().set()

    async def close(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None
        if self._db is not None:
            await self._db.close()
            self._db = None

    def _event(self) -> asyncio.Event:
        if self._ready is None:
            self._ready = asyncio.Event()
        return self._ready

    async def ready(self, timeout: float = 30.0) -> None:
        """Wait for boot to finish (worker threads may take a message a moment before it does)."""
        await asyncio.wait_for(self._event().wait(), timeout)

    @property
    def is_open(self) -> bool:
        return self._db is not None

    @property
    def db(self) -> Database:
        assert self._db is not None, "WorkerResources.open() has not run"
        return self._db

    @property
    def redis(self) -> aioredis.Redis:
        assert self._redis is not None, "WorkerResources.open() has not run"
        return self._redis

    @property
    def provider(self) -> PaymentProvider:
        assert self._provider is not None, "WorkerResources.open() has not run"
        return self._provider
