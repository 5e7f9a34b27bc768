"""Product changes, told to every API process through PostgreSQL's LISTEN/NOTIFY.

`notify_product_changed(conn, ids)` is called inside the transaction that changed the products:
PostgreSQL delivers a notification only when that transaction commits (never on rollback), so a
listener never drops a cached document before the change is visible, and never for a change
that did not happen. `ProductChangeListener` keeps one dedicated connection per process
listening on the channel. Notifications are not stored: while that connection is down they are
lost, so on every (re)connect the listener calls `on_reset` (the cache forgets everything);
the cache's TTL bounds staleness in the meantime.
"""

from __future__ import annotations

import asyncio
import contextlib
import structlog
from typing import Callable, Iterable
from uuid import UUID

import asyncpg

CHANNEL = "catalogue_product_changed"
APPLICATION_NAME = "product-change-listener"  # how an operator finds these connections in pg_stat_activity
_PER_NOTIFY = 200  # ids per notification: 200 × 37 bytes stays well under the 8000-byte payload limit
log = structlog.get_logger("catalogue")


async def notify_product_changed(conn: asyncpg.Connection, product_ids: Iterable[UUID]) -> None:
    """Tell every process's product cache that these products changed. Call it inside the
    writing transaction, after the write (delivered on commit, dropped on rollback)."""
    ids = sorted({str(i) for i in product_ids})
    for start in range(0, len(ids), _PER_NOTIFY):
        await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, ",".join(ids[start:start + _PER_NOTIFY]))


def parse_payload(payload: str) -> list[UUID]:
    """The product ids of one notification; anything malformed is skipped, not fatal."""
    out = []
    for part in payload.split(","):
        try:
            out.append(UUID(part))
        except ValueError:
            continue
    return out


class ProductChangeListener:
    """One LISTEN connection; calls `on_change(ids)` per notification and `on_reset()` after
    every (re)connect. A ping every `check_every` seconds finds a silently dead connection."""

    def __init__(self, dsn: str, on_change: Callable[[list[UUID]], None], on_reset: Callable[[], None], *,
                 retry_after: float = 1.0, check_every: float = 5.0) -> None:
        self._dsn = dsn
        self._on_change = on_change
        self._on_reset = on_reset
        self._retry_after = retry_after
        self._check_every = check_every
        self.connected = asyncio.Event()

    def _deliver(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        self._on_change(parse_payload(payload))

    async def run(self) -> None:
        """Listen until cancelled, reconnecting after any failure (backing off to 10 s while
        PostgreSQL stays away, so an outage is not a log line a second)."""
        delay = self._retry_after
        while True:
            conn = None
            try:
                conn = await asyncpg.connect(self._dsn, timeout=self._check_every,
                                             server_settings={"application_name": APPLICATION_NAME})
                lost = asyncio.Event()
                conn.add_termination_listener(lambda _c: lost.set())
                await conn.add_listener(CHANNEL, self._deliver)
                self._on_reset()  # whatever was cached may have missed changes while we were away
                self.connected.set()
                delay = self._retry_after
                while not lost.is_set():
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(lost.wait(), self._check_every)
                    if not lost.is_set():
                        await conn.fetchval("SELECT 1", timeout=self._check_every)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - any failure: reconnect; the TTL bounds staleness meanwhile
                log.warning("product_change_listener_lost", error=f"{type(exc).__name__}: {exc}")
            finally:
                self.connected.clear()
                if conn is not None:
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(conn.close(), 2)
            self._on_reset()
            await asyncio.sleep(delay)
            delay = min(10.0, delay * 2)
