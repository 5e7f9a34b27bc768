"""A flash sale served by two real OS processes (this test's app and a second API process
started with `ops.serve`), each with its own actors, against one database: never oversold."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import aiohttp

from tests.conftest import Resp
from tests.integration.conftest_orders import make_buyer, make_product, make_shipping_method, stock_of

ROOT = Path(__file__).resolve().parents[2]
_SERVER = ("import asyncio, sys; from engine.settings import Settings; from ops.serve import run_api, stop_event_on_signals\n"
           "async def main():\n"
           "    await run_api(Settings.from_env(), stop_event_on_signals())\n"
           "asyncio.run(main())\n")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_two_os_processes_sell_exactly_the_stock(api, tenant, db, base_settings):
    port = _free_port()
    env = {**os.environ, "DATABASE_URL": base_settings.database_url, "REDIS_URL": base_settings.redis_url,
           "REDIS_PREFIX": base_settings.redis_prefix, "DEV_MODE": "true", "PORT": str(port),
           "PAYMENT_WEBHOOK_SECRET": base_settings.payment_webhook_secret or "x", "RATE_FINANCIAL": "100000",
           "RATE_ORDERS": "100000", "RATE_CART": "100000", "LOG_LEVEL": "warning", "DB_POOL_MAX": "10"}
    proc = subprocess.Popen([sys.executable, "-c", _SERVER], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as http:
            deadline = time.monotonic() + 30
            while True:
                try:
                    async with http.get(f"{base}/healthz") as r:
                        if r.status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                assert proc.poll() is None, proc.stderr.read().decode()[-2000:] if proc.stderr else ""
                assert time.monotonic() < deadline, "second API process did not start"
                await asyncio.sleep(0.1)

            pid = await make_product(db, tenant.id, price="100", stock=10)
            method = await make_shipping_method(db, tenant.id)
            buyers = [await make_buyer(tenant, db, [(pid, 1)]) for _ in range(100)]

            async def remote(b) -> Resp:
                async with http.post(f"{base}/api/v1/cart/checkout", json=b.body(method), headers=b.user.headers) as r:
                    raw = await r.read()
                    return Resp(r.status, await r.json(content_type=None), dict(r.headers), raw)

            results = await asyncio.gather(*(
                remote(b) if i % 2 else api.post("/api/v1/cart/checkout", as_=b.user, json=b.body(method))
                for i, b in enumerate(buyers)))
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    assert [r.status for r in results].count(201) == 10, {r.status for r in results}
    assert all(r.status == 201 or r.error["code"] == "INSUFFICIENT_STOCK" for r in results)
    assert await db.fetchval("SELECT count(*) FROM orders WHERE tenant_id = $1", tenant.id) == 10
    assert await stock_of(db, pid) == {"on_hand": 10, "available": 0, "reserved": 10, "sold": 0}
