"""A real receiving HTTP server on 127.0.0.1 for the webhook tests, and the delivery driver."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any
from uuid import UUID

from aiohttp import web

from engine.db import Database
from engine.settings import Settings
from workers import jobs_webhooks


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """Answers each POST with the next of `statuses` (then 200); `hang` makes it never answer."""

    statuses: list[int] = field(default_factory=list)
    hang: bool = False
    got: list[Received] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    url: str = ""
    runner: Any = None

    async def handle(self, request: web.Request) -> web.Response:
        self.got.append(Received(dict(request.headers), await request.read()))
        self.arrived.set()
        if self.hang:
            await asyncio.sleep(3600)
        status = self.statuses.pop(0) if self.statuses else 200
        return web.Response(status=status, text="x" * 100_000)   # more than the cap we read

    async def start(self) -> "Receiver":
        app = web.Application()
        app.router.add_post("/hook", self.handle)
        self.runner = web.AppRunner(app, shutdown_timeout=0.1)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}/hook"
        return self

    async def stop(self) -> None:
        await self.runner.cleanup()


async def deliver(database: Database, settings: Settings, sub_id: UUID | str) -> str:
    """Run the worker job's body (workers.jobs_webhooks.deliver) for one subscription."""
    return await jobs_webhooks.deliver(SimpleNamespace(settings=settings, db=database), UUID(str(sub_id)))
