"""The ceiling for catalogue reads: a bare aiohttp + asyncpg endpoint doing the same primary-key
select (and the same filtered page) as the engine, with nothing else (no envelope types, auth,
limiter, middleware). Run N processes on one port like the engine:
`python -m loadtests.bench.bare_server --dsn URL --port P --processes N`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import signal
import uuid

import asyncpg
from aiohttp import web

_BY_ID = ("SELECT id, name, slug, description, price, currency, sku, status, stock_available, rating_count,"
          " created_at FROM products WHERE id = $1 AND tenant_id = $2 AND deleted_at IS NULL")
_PAGE = ("SELECT id, name, price, stock_available, count(*) OVER () AS total FROM products"
         " WHERE tenant_id = $1 AND category_id = $2 AND status = 'ACTIVE' AND deleted_at IS NULL"
         " AND price BETWEEN $3 AND $4 ORDER BY price, id LIMIT 20")


def _row(r: asyncpg.Record) -> dict:
    return {k: (str(v) if not isinstance(v, (int, str, type(None))) else v) for k, v in r.items()}


def make_app(dsn: str) -> web.Application:
    app = web.Application()
    key = web.AppKey("pool", asyncpg.Pool)
    tenant = web.AppKey("tenant", uuid.UUID)

    async def pool(app: web.Application):
        app[key] = await asyncpg.create_pool(dsn, min_size=2, max_size=20)
        app[tenant] = await app[key].fetchval("SELECT id FROM tenants WHERE slug = 'default'")
        yield
        await app[key].close()

    async def by_id(request: web.Request) -> web.Response:
        row = await request.app[key].fetchrow(_BY_ID, uuid.UUID(request.match_info["id"]), request.app[tenant])
        if row is None:
            return web.json_response({"success": False}, status=404)
        return web.json_response({"success": True, "data": _row(row)}, dumps=json.dumps)

    async def page(request: web.Request) -> web.Response:
        q = request.query
        rows = await request.app[key].fetch(_PAGE, request.app[tenant], uuid.UUID(q["categoryId"]),
                                            int(q["minPrice"]), int(q["maxPrice"]))
        return web.json_response({"success": True, "data": [_row(r) for r in rows],
                                  "meta": {"total": rows[0]["total"] if rows else 0}})

    app.cleanup_ctx.append(pool)
    app.router.add_get("/api/v1/products/{id}", by_id)
    app.router.add_get("/api/v1/products", page)
    app.router.add_get("/readyz", lambda r: web.json_response({"status": "ready"}))
    return app


def _serve(dsn: str, port: int, reuse: bool) -> None:
    async def main() -> None:
        runner = web.AppRunner(make_app(dsn), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port, reuse_port=reuse or None).start()
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            asyncio.get_running_loop().add_signal_handler(sig, stop.set)
        await stop.wait()
        await runner.cleanup()

    asyncio.run(main())


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--dsn", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--processes", type=int, default=1)
    a = p.parse_args()
    if a.processes <= 1:
        _serve(a.dsn, a.port, False)
        return
    ctx = multiprocessing.get_context("spawn")
    kids = [ctx.Process(target=_serve, args=(a.dsn, a.port, True)) for _ in range(a.processes)]
    for k in kids:
        k.start()
    signal.signal(signal.SIGTERM, lambda *_: [k.terminate() for k in kids if k.is_alive()])
    signal.signal(signal.SIGINT, lambda *_: [k.terminate() for k in kids if k.is_alive()])
    for k in kids:
        k.join()


if __name__ == "__main__":
    main()
