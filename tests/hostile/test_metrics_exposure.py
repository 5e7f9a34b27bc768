"""Metrics exposure: never public through nginx, optionally on their own listener, and a scrape loop costs no connections.

Before issue 13 every scrape opened a new PostgreSQL connection and a new Redis client, so a
scrape loop (or anyone hammering the public /metrics) could exhaust PostgreSQL's connections.
"""

from __future__ import annotations

import asyncio
import re
import socket
from pathlib import Path

import aiohttp

from ops.serve import run_api

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _backends(db) -> int:
    return await db.fetchval("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()")


async def test_many_concurrent_scrapes_do_not_grow_postgres_connections(make_client, db) -> None:
    client = await make_client(db_pool_min=1, db_pool_max=3)
    assert (await client.get("/metrics")).status == 200            # warm: the pool exists
    before = await _backends(db)
    peak = before
    scrapes = [asyncio.ensure_future(client.get("/metrics")) for _ in range(40)]
    while not all(s.done() for s in scrapes):
        peak = max(peak, await _backends(db))
        await asyncio.sleep(0.005)
    answers = [await s for s in scrapes]
    assert {r.status for r in answers} == {200}
    # The API's own figures (the cluster-wide queue figures are the workers' to export).
    assert b"http_requests_total" in await answers[0].read()
    # The app's pool may grow to its maximum (3); one connection per scrape would add ~40.
    assert peak - before <= 3, (before, peak)
    assert await _backends(db) - before <= 3


async def test_metrics_port_serves_metrics_and_the_api_port_does_not(base_settings) -> None:
    api_port, metrics_port = _free_port(), _free_port()
    settings = base_settings.with_(host="127.0.0.1", port=api_port, metrics_port=metrics_port)
    stop, ready = asyncio.Event(), asyncio.Event()
    server = asyncio.create_task(run_api(settings, stop, on_ready=ready.set))
    try:
        await asyncio.wait_for(ready.wait(), 30)
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{api_port}/healthz") as r:
                assert r.status == 200
            async with http.get(f"http://127.0.0.1:{api_port}/metrics") as r:
                assert r.status == 404
            async with http.get(f"http://127.0.0.1:{metrics_port}/metrics") as r:
                text = await r.text()
                assert r.status == 200 and "http_requests_total" in text and "process_cpu_seconds_total" in text
            async with http.get(f"http://127.0.0.1:{metrics_port}/api/v1/products") as r:
                assert r.status == 404           # the metrics listener serves nothing else
    finally:
        stop.set()
        await asyncio.wait_for(server, 30)


def test_the_shipped_nginx_never_passes_metrics_through() -> None:
    conf = (ROOT / "deploy" / "nginx.conf").read_text()
    assert re.search(r"location\s+(\^~|=)\s*/metrics\s*\{\s*return\s+404;", conf), conf
    assert not re.search(r"^\s*(server|proxy_pass)\b[^\n#]*:9102", conf, re.M)
