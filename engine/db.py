"""The database port: one asyncpg pool per process, and the one place transactions open.

`Database.transaction()` is the unit of work: it commits when the block ends normally and
rolls back on any exception. Connection failures surface as `ServiceUnavailable`, so the API
answers 503 with Retry-After instead of a 500 while PostgreSQL is down.
"""

from __future__ import annotations

import contextlib
import json
from typing import AsyncIterator

import asyncpg

from engine.domain.errors import ServiceUnavailable, ValidationError
from engine.settings import Settings

# Errors that mean "the database is not reachable right now", not "your query is wrong".
UNAVAILABLE_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    ConnectionError,
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.TooManyConnectionsError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    asyncpg.exceptions.ConnectionFailureError,
    asyncpg.exceptions.InterfaceError,
    TimeoutError,
)


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Release without asyncpg's default reset query (advisory unlock, CLOSE ALL, UNLISTEN,
    RESET ALL): one round trip per release that nothing here needs, since pooled connections
    never take session locks, listen or SET. An open transaction is still rolled back
    (asyncpg does that before calling this)."""


async def _init_connection(conn: asyncpg.Connection) -> None:
    for typ in ("json", "jsonb"):
        await conn.set_type_codec(typ, encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


class Database:
    """A lazily connected asyncpg pool that turns outages into ServiceUnavailable."""

    def __init__(self, settings: Settings, dsn: str | None = None) -> None:
        self._settings = settings
        self._dsn = dsn or settings.database_url
        self._pool: asyncpg.Pool | None = None

    @property
    def dsn(self) -> str:
        if not self._dsn:
            raise RuntimeError("DATABASE_URL is not configured")
        return self._dsn

    async def open(self) -> None:
        if self._pool is None:
            self._pool = await asyncpg.create_pool(
                self.dsn,
                min_size=self._settings.db_pool_min,
                max_size=self._settings.db_pool_max,
                command_timeout=self._settings.db_command_timeout,
                statement_cache_size=self._settings.db_statement_cache_size,
                init=_init_connection,
                reset=_keep_session,
            )

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise RuntimeError("Database.open() was not awaited")
        return self._pool

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[asyncpg.Connection]:
        """A pooled connection, no transaction (single statements, reads)."""
        try:
            async with self.pool.acquire(timeout=self._settings.db_command_timeout) as conn:
                yield conn
        except asyncpg.DataError as exc:
            # A value the client sent that PostgreSQL cannot hold (out of range, bad encoding):
            # a 400, never a 500. Handlers should validate first; this is the safety net.
            raise ValidationError("A value is out of range or malformed.",
                                  details={"body": [exc.__class__.__name__]}) from exc
        except UNAVAILABLE_ERRORS as exc:
            raise ServiceUnavailable("The database is unavailable; retry shortly.",
                                     extra={"retry_after": self._settings.dependency_retry_after}) from exc

    @contextlib.asynccontextmanager
    async def transaction(self, *, isolation: str = "read_committed") -> AsyncIterator[asyncpg.Connection]:
        """The unit of work: commit on normal exit, roll back on any exception."""
        async with self.connection() as conn:
            try:
                async with conn.transaction(isolation=isolation):
                    yield conn
            except UNAVAILABLE_ERRORS as exc:
                raise ServiceUnavailable("The database is unavailable; retry shortly.",
                                         extra={"retry_after": self._settings.dependency_retry_after}) from exc

    async def ping(self) -> bool:
        try:
            async with self.connection() as conn:
                await conn.fetchval("SELECT 1", timeout=2)
            return True
        except Exception:
            return False
