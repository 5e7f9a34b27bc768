"""Declared routes: each route states its body, query, response types, errors, auth, permission
and rate-limit policy once. The same declaration drives request decoding, authorisation,
rate limiting, response rendering and the OpenAPI document.

    routes = RouteTable()

    @routes.post("/cart/items", body=AddCartItem, response=AddCartItemResult, status=201,
                 auth=REQUIRED, policy="cart", errors=("PRODUCT_NOT_FOUND", "INSUFFICIENT_STOCK"),
                 tag="Cart", summary="Add item to cart")
    async def add_item(req: Req) -> AddCartItemResult: ...

A handler returns the `data` of the envelope (a msgspec Struct, dict or list), a `Reply` when it
needs another status, meta or headers, or an aiohttp response for non-JSON pages.
"""

from __future__ import annotations

import asyncio
import functools
import re
import uuid
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

import msgspec
from aiohttp import web

from engine.domain.errors import Forbidden, RateLimited, ServiceUnavailable, Unauthorized, ValidationError
from engine.domain.principal import Principal
from web import keys
from web.envelope import success
from web.ratelimit import RATE_LIMIT_HEADERS

NONE, PUBLIC, OPTIONAL, REQUIRED = "none", "public", "optional", "required"
_NO_TENANT = uuid.UUID(int=0)
_PARAM = re.compile(r"\{(\w+)\}")


class Reply:
    """A handler's answer when the declared status alone is not enough."""

    __slots__ = ("data", "status", "meta", "headers")

    def __init__(self, data: Any, *, status: int | None = None, meta: dict[str, Any] | None = None,
                 headers: dict[str, str] | None = None) -> None:
        self.data, self.status, self.meta, self.headers = data, status, meta, headers


@dataclass(slots=True)
class Req:
    """Everything a handler needs, decoded and checked before the handler runs."""

    request: web.Request
    principal: Principal
    params: dict[str, Any]
    body: Any = None
    query: Any = None

    @property
    def app(self) -> web.Application:
        return self.request.app

    @property
    def tenant_id(self) -> uuid.UUID:
        return self.principal.tenant_id

    @property
    def idempotency_key(self) -> str | None:
        key = self.request.headers.get("Idempotency-Key")
        if key is not None and not (1 <= len(key) <= 255 and key.isprintable()):
            raise ValidationError("Idempotency-Key must be 1-255 printable characters.",
                                  details={"Idempotency-Key": ["must be 1-255 printable characters"]})
        return key


Handler = Callable[[Req], Awaitable[Any]]


@dataclass(slots=True)
class RouteSpec:
    method: str
    path: str                       # relative to the table's prefix, e.g. "/products/{id}"
    handler: Handler
    summary: str = ""
    tag: str = "Misc"
    body: Any = None                # msgspec type of the JSON body
    query: Any = None               # msgspec Struct of the query string
    response: Any = None            # msgspec type of `data`
    status: int = 200
    errors: tuple[str, ...] = ()    # documented error codes
    auth: str = PUBLIC
    permission: str | None = None   # e.g. "products:write": a staff permission or key scope
    policy: str | None = None       # rate-limit policy name (web.ratelimit.POLICIES); every route has one
    user_policy: str | None = None  # the policy for signed-in users, when theirs differs
    idempotent: bool = False        # accepts Idempotency-Key
    paginated: bool = False
    text_params: tuple[str, ...] = ()  # path params that are not UUIDs
    raw: bool = False               # handler returns its own aiohttp response (HTML pages)
    content_type: str = "text/html"  # what a raw route answers, for the OpenAPI document
    full_path: str = ""


@dataclass
class RouteTable:
    prefix: str = "/api/v1"
    specs: list[RouteSpec] = field(default_factory=list)

    def route(self, method: str, path: str, **kw: Any) -> Callable[[Handler], Handler]:
        def deco(fn: Handler) -> Handler:
            spec = RouteSpec(method=method, path=path, handler=fn, **kw)
            spec.full_path = self.prefix + path
            self.specs.append(spec)
            return fn
        return deco

    def get(self, path: str, **kw: Any) -> Callable[[Handler], Handler]:
        return self.route("GET", path, **kw)

    def post(self, path: str, **kw: Any) -> Callable[[Handler], Handler]:
        return self.route("POST", path, **kw)

    def put(self, path: str, **kw: Any) -> Callable[[Handler], Handler]:
        return self.route("PUT", path, **kw)

    def patch(self, path: str, **kw: Any) -> Callable[[Handler], Handler]:
        return self.route("PATCH", path, **kw)

    def delete(self, path: str, **kw: Any) -> Callable[[Handler], Handler]:
        return self.route("DELETE", path, **kw)

    def register(self, app: web.Application) -> None:
        for spec in self.specs:
            app.router.add_route(spec.method, spec.full_path, _endpoint(spec), name=None)


# The tables an app was built from (openapi and the rate-limit policy check read them). Kept next
# to RouteTable rather than in web.keys, which web.api itself imports.
ROUTES: web.AppKey[list[RouteTable]] = web.AppKey("routes")


# ----------------------------------------------------------------------------- decoding

def _field_path(message: str) -> tuple[str, str]:
    """Split msgspec's message into (field path, human message)."""
    path = ""
    m = re.search(r" - at `\$\.?(.*?)`$", message)
    if m:
        path = m.group(1)
        message = message[: m.start()]
    m = re.search(r"(unknown|missing required) field `(.+?)`", message)
    if m:
        path = f"{path}.{m.group(2)}" if path else m.group(2)
        message = "unknown field" if m.group(1) == "unknown" else "required"
    return path or "body", message


def validation_error(exc: msgspec.ValidationError, root: str = "") -> ValidationError:
    path, message = _field_path(str(exc))
    if root and path == "body":
        path = root
    return ValidationError("Invalid input data.", details={path: [message]})


# A JSON string (escapes included) or one bracket: strings are skipped whole, so brackets
# inside them never count.
_JSON_NESTING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]')


def json_depth(raw: bytes, limit: int) -> int:
    """The deepest nesting of arrays and objects in `raw`, counted up to just past `limit`
    (MAX_JSON_DEPTH); a body with no more brackets than the limit is not scanned at all."""
    if raw.count(b"[") + raw.count(b"{") <= limit:
        return 0
    depth = deepest = 0
    for token in _JSON_NESTING.finditer(raw):
        c = token.group()[:1]
        if c in (b"[", b"{"):
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > limit:
                    break
        elif c in (b"]", b"}"):
            depth -= 1
    return deepest


async def decode_body(request: web.Request, typ: Any) -> Any:
    if request.content_type != "application/json":
        if not request.can_read_body:
            raise ValidationError("A JSON body is required.", details={"body": ["required"]})
        raise web.HTTPUnsupportedMediaType()
    raw = await request.read()  # client_max_size turns an oversized body into 413
    if not raw.strip():
        raise ValidationError("A JSON body is required.", details={"body": ["required"]})
    if b"\\u0000" in raw or b"\\U0000" in raw:
        raise ValidationError("NUL characters are not allowed.", details={"body": ["contains NUL"]})
    max_depth = request.app[keys.SETTINGS].max_json_depth
    if json_depth(raw, max_depth) > max_depth:
        raise ValidationError("JSON is nested too deeply.",
                              details={"body": [f"nested deeper than {max_depth} levels"]})
    try:
        return msgspec.json.decode(raw, type=typ)
    except msgspec.ValidationError as exc:
        raise validation_error(exc) from None
    except msgspec.DecodeError as exc:
        raise ValidationError("Malformed JSON.", details={"body": [str(exc)]}) from None
    except UnicodeDecodeError:
        raise ValidationError("The body is not valid UTF-8.", details={"body": ["invalid UTF-8"]}) from None
    except RecursionError:
        raise ValidationError("JSON is nested too deeply.", details={"body": ["nested too deeply"]}) from None


@functools.cache
def _query_names(typ: Any) -> frozenset[str]:
    return frozenset(f.encode_name for f in msgspec.structs.fields(typ))


def decode_query(request: web.Request, typ: Any) -> Any:
    """The query string as `typ`. Parameters `typ` does not name are ignored on every route
    (docs/DECISIONS.md): a cache-buster or a tracking tag must not break a GET."""
    known = _query_names(typ)
    values: dict[str, Any] = {}
    for key in request.query.keys():
        if key not in known or key in values:
            continue
        got = request.query.getall(key)
        if len(got) > 1:
            raise ValidationError("Invalid query parameters.", details={key: ["given more than once"]})
        if "\x00" in got[0]:
            raise ValidationError("Invalid query parameters.", details={key: ["contains NUL"]})
        values[key] = got[0]
    try:
        return msgspec.convert(values, typ, strict=False)
    except msgspec.ValidationError as exc:
        raise validation_error(exc) from None


def decode_params(request: web.Request, spec: RouteSpec) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for name, value in request.match_info.items():
        if name in spec.text_params:
            params[name] = value
            continue
        try:
            params[name] = uuid.UUID(value)
        except ValueError:
            raise ValidationError("Invalid path parameter.", details={name: ["must be a UUID"]}) from None
    return params


# ----------------------------------------------------------------------------- endpoint

def _compress_if_large(request: web.Request, response: web.StreamResponse) -> None:
    """gzip a large body (product lists) for a client that accepts it. Small bodies are not
    worth the CPU; aiohttp moves bodies over its threshold to a thread, off the event loop."""
    if not isinstance(response, web.Response) or not isinstance(response.body, bytes):
        return
    if len(response.body) < request.app[keys.SETTINGS].compress_min_bytes:
        return
    if "gzip" in request.headers.get("Accept-Encoding", "").lower():
        response.enable_compression(web.ContentCoding.gzip)
        if "Accept-Encoding" not in response.headers.get("Vary", ""):
            response.headers.add("Vary", "Accept-Encoding")


def _endpoint(spec: RouteSpec) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def endpoint(request: web.Request) -> web.StreamResponse:
        settings = request.app[keys.SETTINGS]
        try:
            # One deadline for the whole request: each dependency has its own timeout, but a
            # request that waits on several in turn must still answer in bounded time.
            async with asyncio.timeout(settings.request_timeout):
                return await handle(request)
        except TimeoutError:
            raise ServiceUnavailable("The request took too long; retry shortly.",
                                     extra={"retry_after": settings.dependency_retry_after}) from None

    async def handle(request: web.Request) -> web.StreamResponse:
        app = request.app
        if spec.auth == NONE:  # operational routes: no tenant, no credentials, no database
            principal = Principal(tenant_id=_NO_TENANT)
        else:
            principal = await app[keys.AUTH].authenticate(request, required=spec.auth == REQUIRED)
        request[keys.PRINCIPAL] = principal
        if spec.auth == REQUIRED and principal.is_anonymous:
            raise Unauthorized()
        if spec.permission and not principal.can(spec.permission):
            raise Forbidden(f"Requires `{spec.permission}` permission.")
        policy = spec.user_policy if spec.user_policy and principal.user_id is not None else spec.policy
        try:
            limit_headers = await app[keys.LIMITER].check(request, principal, policy)
        except RateLimited:
            if spec.idempotent:
                # A retry of a request whose answer is stored costs nothing: answer it even when
                # the budget is spent.
                replay = await app[keys.STORED_REPLAY](request, spec, principal)
                if replay is not None:
                    return replay
            raise
        request[RATE_LIMIT_HEADERS] = limit_headers
        params = decode_params(request, spec)
        req = Req(request=request, principal=principal, params=params)
        if spec.query is not None:
            req.query = decode_query(request, spec.query)
        if spec.body is not None:
            req.body = await decode_body(request, spec.body)
        result = await spec.handler(req)
        if isinstance(result, web.StreamResponse):
            response = result
        elif isinstance(result, Reply):
            response = success(result.data, status=result.status or spec.status, meta=result.meta,
                               headers=result.headers)
        else:
            response = success(result, status=spec.status)
        response.headers.update(limit_headers)
        _compress_if_large(request, response)
        return response

    endpoint.__name__ = spec.handler.__name__
    return endpoint
