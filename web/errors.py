"""The one table from error code to HTTP status, and the one error middleware.

Handlers raise domain errors; nothing else builds an error body. Anything unexpected becomes
a 500 whose body carries the request id and never a stack trace.
"""

from __future__ import annotations

import asyncpg
import structlog
from aiohttp import web

from engine.domain.errors import DomainError
from web import keys
from web.envelope import failure

log = structlog.get_logger("web")

STATUS: dict[str, int] = {
    "VALIDATION_ERROR": 400,
    "UNAUTHORIZED": 401,
    "INVALID_CREDENTIALS": 401,
    "INVALID_SIGNATURE": 401,
    "FORBIDDEN": 403,
    "KYC_REQUIRED": 403,
    "NOT_PURCHASED": 403,
    "NOT_FOUND": 404,
    "METHOD_NOT_ALLOWED": 405,
    "CONFLICT": 409,
    "EMAIL_TAKEN": 409,
    "ALREADY_REVIEWED": 409,
    "REFUND_ALREADY_REQUESTED": 409,
    "TOO_MANY_UNPAID_ORDERS": 409,   # MAX_UNPAID_ORDERS reached (issue 13: stock hoarding)
    "PAYLOAD_TOO_LARGE": 413,
    "UNSUPPORTED_MEDIA_TYPE": 415,
    "IDEMPOTENCY_KEY_REUSED": 422,
    "INVALID_STATUS_TRANSITION": 422,
    "REFUND_FAILED": 422,
    "RATE_LIMIT_EXCEEDED": 429,
    "INTERNAL_ERROR": 500,
    "SERVICE_UNAVAILABLE": 503,
    # 400s named by the storefront document.
    "PRODUCT_UNAVAILABLE": 400,
    "INSUFFICIENT_STOCK": 400,
    "MAX_QUANTITY_EXCEEDED": 400,
    "CART_EMPTY": 400,
    "ITEMS_UNAVAILABLE": 400,
    "INVALID_ADDRESS": 400,
    "INVALID_SHIPPING_METHOD": 400,
    "INVALID_COUPON": 400,
    "INSUFFICIENT_BALANCE": 400,
    "CANNOT_CANCEL": 400,
    "CANNOT_REFUND": 400,
    "REFUND_PERIOD_EXPIRED": 400,
    "NOT_SHIPPED": 400,
    "INVALID_DESTINATION": 400,
    "SHIPPING_NOT_AVAILABLE": 400,
}


def status_of(code: str) -> int:
    """Every *_NOT_FOUND code is 404; anything else must be in the table (400 if forgotten)."""
    if code in STATUS:
        return STATUS[code]
    if code.endswith("_NOT_FOUND"):
        return 404
    return 400


def render_domain_error(exc: DomainError) -> web.Response:
    headers: dict[str, str] = {}
    retry_after = exc.extra.get("retry_after")
    if retry_after is not None:
        headers["Retry-After"] = str(int(retry_after))
    headers.update(exc.extra.get("headers", {}))
    public_extra = {k: v for k, v in exc.extra.items() if k not in ("retry_after", "headers")}
    return failure(status_of(exc.code), exc.code, exc.message, exc.details, headers, public_extra or None)


_HTTP_CODES = {
    400: ("VALIDATION_ERROR", "Bad request."),
    401: ("UNAUTHORIZED", "Authentication required."),
    403: ("FORBIDDEN", "Forbidden."),
    404: ("NOT_FOUND", "No such route."),
    405: ("METHOD_NOT_ALLOWED", "Method not allowed on this route."),
    413: ("PAYLOAD_TOO_LARGE", "Request body is too large."),
    415: ("UNSUPPORTED_MEDIA_TYPE", "Content-Type must be application/json."),
}


def render_http_exception(exc: web.HTTPException) -> web.Response:
    code, message = _HTTP_CODES.get(exc.status, ("VALIDATION_ERROR" if exc.status < 500 else "INTERNAL_ERROR", exc.reason))
    headers = {}
    if exc.status == 405 and "Allow" in exc.headers:
        headers["Allow"] = exc.headers["Allow"]
    return failure(exc.status, code, message, headers=headers)


@web.middleware
async def error_middleware(request: web.Request, handler):  # type: ignore[no-untyped-def]
    try:
        return await handler(request)
    except DomainError as exc:
        return render_domain_error(exc)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return render_http_exception(exc)
    except (asyncpg.CheckViolationError, asyncpg.UniqueViolationError) as exc:
        # A constraint caught what validation should have: still the client's input, so a 4xx,
        # but logged as the bug it is.
        log.warning("constraint_violation_reached_the_edge", path=request.path, constraint=getattr(exc, "constraint_name", None))
        if isinstance(exc, asyncpg.UniqueViolationError):
            return failure(409, "CONFLICT", "That conflicts with an existing record.")
        return failure(400, "VALIDATION_ERROR", "A value is out of range.", {"body": ["violates a constraint"]})
    except Exception:
        request_id = request.get(keys.REQUEST_ID, "-")
        log.exception("unhandled_error", path=request.path, method=request.method)
        return failure(500, "INTERNAL_ERROR", f"Internal error; quote request id {request_id}.",
                       extra={"requestId": request_id})
