"""Hearing, in every process, that units came back to a stock row.

Migration 0013 sends `NOTIFY stock_up, '<stock id>'` whenever a stock row's `available` rises
(a release, an expiry, a cancel, a restock, a refund's return). The product actors use it to
forget that a row was sold out (engine.stock). One dedicated connection per process listens;
when it drops, `on_reset` is called (notices may have been missed while it was down) and it
reconnects. Notices are hints that shorten a wait, never the truth: the sold-out memory has
its own deadline (SOLD_OUT_RECHECK_MS) for when none arrives.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Callable
from uuid import UUID

import asyncpg

log = logging.getLogger(__name__)

CHANNEL = "stock_up"


class StockSignals:
    def __init__(self, dsn: str, on_up: Callable[[UUID], None], on_reset: Callable[[], None],
                 *, retry_seconds: float = 1.0) -> None:
        self._dsn = dsn
        self._on_up = on_up
        self._on_reset = on_reset
        self._retry = retry_seconds
        self._task: asyncio.Task[None] | None = None
        self.listening = asyncio.Event()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="stock-signals")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _heard(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        try:
            stock_id = UUID(payload)
        except ValueError:
            return
        self._on_up(stock_id)

    async def _run(self) -> None:
        while True:
            conn = None
            try:
                conn = await asyncpg.connect(self._dsn)
                closed = asyncio.Event()
                conn.add_termination_listener(lambda _c: closed.set())
                await conn.add_listener(CHANNEL, self._heard)
                self._on_reset()  # whatever happened before we listened is unknown
                self.listening.set()
                await closed.wait()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("stock signal listener lost its connection; reconnecting", exc_info=True)
            finally:
                self.listening.clear()
                self._on_reset()
                if conn is not None and not conn.is_closed():
                    with contextlib.suppress(Exception):
                        await asyncio.shield(conn.close(timeout=1))
            await asyncio.sleep(self._retry)
