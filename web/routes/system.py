"""Liveness, readiness, metrics, and the API's own description."""

from __future__ import annotations

from pathlib import Path

import msgspec
from aiohttp import web

from web import keys
from web.api import NONE, Req, RouteTable
from web.envelope import failure

_STATIC = Path(__file__).resolve().parent.parent / "static"
_DOCS_PAGE = _STATIC / "docs.html"

routes = RouteTable(prefix="")
api_routes = RouteTable()


class Health(msgspec.Struct):
    status: str


class Readiness(msgspec.Struct):
    status: str
    postgres: bool
    redis: bool


@routes.get("/healthz", policy="unlimited", auth=NONE, response=Health, tag="System", summary="Process is alive")
async def healthz(req: Req) -> Health:
    return Health(status="ok")


@routes.get("/readyz", policy="unlimited", auth=NONE, response=Readiness, tag="System", summary="PostgreSQL and Redis are reachable",
            errors=("SERVICE_UNAVAILABLE",))
async def readyz(req: Req) -> web.StreamResponse | Readiness:
    pg = await req.app[keys.DB].ping()
    try:
        rd = bool(await req.app[keys.REDIS].ping())
    except Exception:
        rd = False
    if pg and rd:
        return Readiness(status="ready", postgres=True, redis=True)
    settings = req.app[keys.SETTINGS]
    return failure(503, "SERVICE_UNAVAILABLE", "Not ready: " + ", ".join(
        name for name, up in (("postgres", pg), ("redis", rd)) if not up) + " unreachable.",
        headers={"Retry-After": str(settings.dependency_retry_after)},
        extra={"postgres": pg, "redis": rd})


@routes.get("/metrics", policy="unlimited", auth=NONE, tag="System", raw=True, errors=("NOT_FOUND",),
            summary="Prometheus metrics (404 here when METRICS_PORT gives them their own listener)",
            content_type="text/plain; version=0.0.4")
async def metrics(req: Req) -> web.StreamResponse:
    if req.app[keys.SETTINGS].metrics_port:
        raise web.HTTPNotFound()
    return await _scrape(req.app)


async def _scrape(app: web.Application) -> web.Response:
    await app[keys.METRICS].refresh()
    body = app[keys.METRICS].render()
    return web.Response(body=body, headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"})


def metrics_listener(api: web.Application) -> web.Application:
    """The app of the METRICS_PORT listener: /metrics alone, read from the API app's registry
    and refreshed through its pools (so a scrape opens no connection of its own)."""
    app = web.Application()

    async def scrape(_request: web.Request) -> web.StreamResponse:
        return await _scrape(api)

    app.router.add_get("/metrics", scrape)
    return app


@api_routes.get("/openapi.json", policy="pages", auth=NONE, tag="System", summary="This API's OpenAPI 3.1 document", raw=True,
                content_type="application/json")
async def openapi(req: Req) -> web.StreamResponse:
    return web.json_response(req.app[keys.OPENAPI])


@routes.get("/docs", policy="pages", auth=NONE, tag="System", summary="Human-readable API reference", raw=True)
async def docs(req: Req) -> web.StreamResponse:
    return web.Response(body=_DOCS_PAGE.read_bytes(), content_type="text/html")


# Queue depths, outbox lag and dead letters are cluster-wide figures: the worker's metrics
# endpoint exports them (workers/metrics.py), once, instead of every API replica repeating them.


def _docs_assets() -> dict[str, Path]:
    """The files /docs needs: Swagger UI from the swagger-ui-bundle-v2 package (kept current
    by the lock file, no CDN), and our initializer."""
    from swagger_ui_bundle import swagger_ui_path

    ui = Path(swagger_ui_path)
    assets = {name: ui / name for name in ("swagger-ui-bundle.js", "swagger-ui.css", "favicon-32x32.png")}
    assets["docs-init.js"] = _STATIC / "docs-init.js"
    return assets


def setup(app: web.Application) -> None:
    """Serve /docs/assets/<name>: a fixed list of files, cached for a day."""
    for name, path in _docs_assets().items():
        async def asset(request: web.Request, path: Path = path) -> web.StreamResponse:
            return web.FileResponse(path, headers={"Cache-Control": "public, max-age=86400"})

        app.router.add_get(f"/docs/assets/{name}", asset)
