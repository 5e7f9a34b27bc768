"""Liveness, readiness, metrics, and the API's own description."""

from __future__ import annotations

from pathlib import Path

import msgspec
from aiohttp import web

from web import keys
from web.api import NONE, Req, RouteTable
from web.envelope import failure

_DOCS_PAGE = Path(__file__).resolve().parent.parent / "static" / "docs.html"

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


def setup(app: web.Application) -> None:
    """Background-job figures (queue depths, dead letters, outbox lag) on /metrics."""
    from prometheus_client import Gauge

    metrics, settings = app[keys.METRICS], app[keys.SETTINGS]
    depth = Gauge("job_queue_messages", "Messages per job queue and state (ready, delayed, dead)",
                  ["queue", "state"], registry=metrics.registry)
    lag_rows = Gauge("outbox_lag_rows", "Outbox rows due but not yet sent", registry=metrics.registry)
    lag_age = Gauge("outbox_lag_seconds", "Age of the oldest due, unsent outbox row", registry=metrics.registry)
    dead = Gauge("job_dead_letters", "Dead-lettered jobs across all queues", registry=metrics.registry)

    async def refresh() -> None:
        # The one place web reads worker state; allowed by the import contract in pyproject.toml.
        from workers.operations import queue_stats

        stats = await queue_stats(settings, redis=app[keys.REDIS], db=app[keys.DB])
        for key, value in stats.items():
            parts = key.split(".")
            if parts[0] == "queue" and len(parts) == 3:
                depth.labels(parts[1], parts[2]).set(value)
        lag_rows.set(stats.get("outbox.lag_count", 0))
        lag_age.set(stats.get("outbox.lag_seconds", 0))
        dead.set(stats.get("dead_letters.total", 0))

    metrics.add_refresher(refresh)
