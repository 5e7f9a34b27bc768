"""The storefront response envelope, used by every response (errors included)."""

from __future__ import annotations

import math
from typing import Any

import msgspec
from aiohttp import web


class Pagination(msgspec.Struct, rename="camel"):
    total: int
    page: int
    page_size: int
    total_pages: int
    has_next: bool
    has_previous: bool

    @classmethod
    def of(cls, total: int, page: int, page_size: int) -> "Pagination":
        pages = math.ceil(total / page_size) if page_size else 0
        return cls(total=total, page=page, page_size=page_size, total_pages=pages,
                   has_next=page < pages, has_previous=page > 1)

    @classmethod
    def whole(cls, total: int) -> "Pagination":
        """A list that is never cut into pages (category tree, shipping methods): one page of
        everything, so every list still carries `meta.pagination` (docs/DECISIONS.md)."""
        return cls.of(total, 1, max(total, 1))


# Money is Decimal inside the engine; JSON shows it as a number in the major unit (2500, 25.99).
# msgspec writes aware UTC datetimes with "Z"; the engine only hands it aware datetimes.
_encoder = msgspec.json.Encoder(decimal_format="number")


def encode(obj: Any) -> bytes:
    return _encoder.encode(obj)


def json_response(body: dict[str, Any] | msgspec.Struct, status: int = 200,
                  headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=encode(body), status=status, headers=headers,
                        content_type="application/json")


def success(data: Any, *, status: int = 200, meta: dict[str, Any] | None = None,
            headers: dict[str, str] | None = None) -> web.Response:
    body: dict[str, Any] = {"success": True, "data": data}
    if meta:
        body["meta"] = meta
    return json_response(body, status, headers)


# The error code of a failure response, for the per-request log line (web.middleware).
ERROR_CODE = web.ResponseKey("error_code", str)


def failure(status: int, code: str, message: str, details: dict[str, list[str]] | None = None,
            headers: dict[str, str] | None = None, extra: dict[str, Any] | None = None) -> web.Response:
    error: dict[str, Any] = {"code": code, "message": message}
    if details:
        error["details"] = details
    if extra:
        error.update(extra)
    response = json_response({"success": False, "error": error}, status, headers)
    response[ERROR_CODE] = code
    return response
