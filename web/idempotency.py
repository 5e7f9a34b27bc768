"""`Idempotency-Key` for handlers: `return await idempotent(req, compute, status=201)`.

Without the header the request simply runs. With it, the first request runs `compute` and its
successful (2xx) response is stored byte for byte; a retry with the same key and the same
request (method, path, decoded body) gets those bytes back with `Idempotent-Replayed: true`;
the same key with another request is 422 IDEMPOTENCY_KEY_REUSED; a retry that arrives while
the first is still running waits for its answer (409 CONFLICT if it takes too long). Failed
requests (any error) store nothing, so a corrected retry runs again. See engine.idempotency.

A replay costs nothing against the caller's rate limit: the retry after a lost response is the
very case the key exists for. An admitted replay gives its slot back (`LIMITER.refund`), and a
keyed request refused by the limiter is answered from its stored response if it has one
(`stored_replay`, called by web.api before the 429 is sent).
"""

from __future__ import annotations

import asyncio
from typing import Any, Awaitable, Callable

import msgspec
from aiohttp import web

from engine import idempotency
from web import keys
from web.api import Reply, Req, RouteSpec, decode_body
from web.envelope import success

REPLAYED_HEADER = "Idempotent-Replayed"


def _render(result: Any, status: int) -> web.Response:
    if isinstance(result, web.Response):
        return result
    if isinstance(result, Reply):
        return success(result.data, status=result.status or status, meta=result.meta, headers=result.headers)
    return success(result, status=status)


# Renderers of the engine's stored response records, by kind (`records`): a record turned into
# what a handler returns (the envelope's data or a Reply), rendered as the first answer was.
_RECORDS: dict[str, Callable[[bytes], Any]] = {}


def records(kind: str, render: Callable[[bytes], Any]) -> None:
    """Register how a stored record of `kind` (its JSON) becomes the handler's result."""
    _RECORDS[kind] = render


async def idempotent(req: Req, compute: Callable[..., Awaitable[Any]], *, status: int = 200,
                     stores_response: bool = False) -> web.Response:
    """Run `compute()` (returning the envelope's data or a Reply) at most once per key.

    `stores_response=True`: compute is called as `compute(key)` with an
    engine.idempotency.ResponseKey (None without a key) and may store its response, as a record
    (see `records`), inside its own transaction; otherwise the response is stored after compute
    returns. Either way web renders the answer, once per request, from the same data."""
    key = req.idempotency_key
    if key is None:
        return _render(await (compute(None) if stores_response else compute()), status)
    app = req.app
    db, settings = app[keys.DB], app[keys.SETTINGS]
    principal = req.principal
    digest = _digest(req.request, req.body)
    # Long enough for a first request that waits on actors and then commits.
    wait = settings.actor_ask_timeout + settings.db_command_timeout
    stored = await idempotency.claim(db, principal.tenant_id, principal.scope, key, digest,
                                     ttl=settings.idempotency_ttl_seconds, wait=wait,
                                     # The first request cannot outlive its deadline (plus one
                                     # statement being cancelled): after that its key is free.
                                     lease=settings.request_timeout + settings.db_command_timeout)
    if stored is not None:
        await app[keys.LIMITER].refund(req.request)
        return _replayed(stored)
    # The first request runs to its end even if the caller stops waiting (the request deadline,
    # a client gone): a checkout cancelled between its commit and `complete` would otherwise give
    # its key up, and a retry would find the cart already emptied instead of the order it made.
    owner = None
    if stores_response:
        owner = idempotency.ResponseKey(principal.tenant_id, principal.scope, key, status)
        work: Callable[[], Awaitable[Any]] = lambda: compute(owner)  # noqa: E731
    else:
        work = compute
    task = asyncio.ensure_future(_run_once(work, status, db, principal.tenant_id, principal.scope, key, owner))
    task.add_done_callback(_consume_exception)
    return await asyncio.shield(task)


async def _run_once(compute: Callable[[], Awaitable[Any]], status: int, db: Any,
                    tenant_id: Any, scope: str, key: str, owner: idempotency.ResponseKey | None) -> web.Response:
    try:
        result = await compute()
        response = _render(result, status)
        if owner is not None and owner.stored:
            return response  # stored as a record with the effect, in one transaction
    except BaseException:
        await idempotency.abandon(db, tenant_id, scope, key)
        raise
    if 200 <= response.status < 300 and isinstance(response.body, bytes):
        await idempotency.complete(db, tenant_id, scope, key, idempotency.StoredResponse(response.status, response.body))
    else:
        await idempotency.abandon(db, tenant_id, scope, key)
    return response


def _digest(request: web.Request, body: Any) -> bytes:
    encoded = msgspec.json.encode(body) if body is not None else b""
    return idempotency.request_hash(request.method, request.path, encoded)


def _replayed(stored: idempotency.StoredResponse) -> web.Response:
    body = stored.body
    if stored.record is not None:  # the engine's record: rendered as its first answer was
        rendered = _render(_RECORDS[stored.kind or ""](stored.record), stored.status)
        assert isinstance(rendered.body, bytes)
        body = rendered.body
    return web.Response(body=body, status=stored.status, content_type="application/json",
                        headers={REPLAYED_HEADER: "true"})


async def stored_replay(request: web.Request, spec: RouteSpec, principal: Any) -> web.Response | None:
    """The stored answer to this keyed request, or None (no key, nothing stored yet, another
    request under the key, or a body that does not decode: then the refusal stands)."""
    key = request.headers.get("Idempotency-Key")
    if not spec.idempotent or key is None or principal.is_anonymous:
        return None
    try:
        body = await decode_body(request, spec.body) if spec.body is not None else None
    except Exception:  # noqa: BLE001 - any decoding problem: not a replay, the 429 is the answer
        return None
    stored = await idempotency.stored(request.app[keys.DB], principal.tenant_id, principal.scope, key,
                                      _digest(request, body))
    return None if stored is None else _replayed(stored)


def _consume_exception(task: "asyncio.Future[Any]") -> None:
    # The caller may have stopped waiting; its error is then nobody's to raise.
    if not task.cancelled():
        task.exception()
