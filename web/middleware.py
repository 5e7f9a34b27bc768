"""Request ids, the canonical log line, metrics, and the JSON depth / body-size guards."""

from __future__ import annotations

import re
import time
from random import getrandbits

import structlog
from aiohttp import web

from web import keys
from web.envelope import ERROR_CODE
from web.ratelimit import RATE_LIMIT_HEADERS

log = structlog.get_logger("web")
_SAFE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def _route_label(request: web.Request) -> str:
    info = request.match_info.route.resource
    return info.canonical if info is not None else "unmatched"


@web.middleware
async def request_context(request: web.Request, handler):  # type: ignore[no-untyped-def]
    """Outermost middleware: bind the request id, time the request, write one log line."""
    incoming = request.headers.get("X-Request-ID", "")
    # A fresh id needs to be unique, not unguessable: no urandom syscall per request.
    request_id = incoming if incoming and _SAFE_ID.match(incoming) else f"{getrandbits(128):032x}"
    request[keys.REQUEST_ID] = request_id
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(request_id=request_id)
    started = time.perf_counter()
    response: web.StreamResponse | None = None
    try:
        response = await handler(request)
        return response
    finally:
        elapsed = time.perf_counter() - started
        status = response.status if response is not None else 500
        if response is not None:
            response.headers["X-Request-ID"] = request_id
            for name, value in request.get(RATE_LIMIT_HEADERS, {}).items():
                response.headers.setdefault(name, value)
        route = _route_label(request)
        request.app[keys.METRICS].observe_request(request.method, route, status, elapsed)
        principal = request.get(keys.PRINCIPAL)
        log.info("request", method=request.method, path=request.path, route=route, status=status,
                 duration_ms=round(elapsed * 1000, 2),
                 error=response.get(ERROR_CODE) if response is not None else "INTERNAL_ERROR",
                 user_id=str(principal.user_id) if principal is not None and principal.user_id else None,
                 tenant_id=str(principal.tenant_id) if principal is not None else None)
