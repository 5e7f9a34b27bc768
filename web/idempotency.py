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
from engine.domain.errors import DomainError
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
    engine.idempotency.ResponseKey (None without a key) and claims the key and stores its
    response, as a record (see `records`), in its own statement: no claim before it (`_own`).
    Otherwise the key is claimed first and the response stored after compute returns. Either
    way web renders the answer from the same data, first answer and replays alike."""
    key = req.idempotency_key
    if key is None:
        return _render(await (compute(None) if stores_response else compute()), status)
    app = req.app
    db, settings = app[keys.DB], app[keys.SETTINGS]
    principal = req.principal
    digest = _digest(req.request, req.body)
    # Long enough for a first request that waits on actors and then commits.
    wait = settings.actor_ask_timeout + settings.db_command_timeout
    # The first request cannot outlive its deadline (plus one statement being cancelled): after
    # that its key is free.
    lease = settings.request_timeout + settings.db_command_timeout
    if stores_response:
        owner = idempotency.ResponseKey(principal.tenant_id, principal.scope, key, status, digest,
                                        ttl=float(settings.idempotency_ttl_seconds), lease=float(lease))
        task = asyncio.ensure_future(_own(req, compute, owner, status, wait))
        task.add_done_callback(_consume_exception)
        return await asyncio.shield(task)
    stored = await idempotency.claim(db, principal.tenant_id, principal.scope, key, digest,
                                     ttl=settings.idempotency_ttl_seconds, wait=wait, lease=lease)
    if stored is not None:
        await app[keys.LIMITER].refund(req.request)
        return _replayed(stored)
    # The first request runs to its end even if the caller stops waiting (the request deadline,
    # a client gone): a request cancelled between its commit and `complete` would otherwise give
    # its key up, and a retry would run it again.
    task = asyncio.ensure_future(_run_once(compute, status, db, principal.tenant_id, principal.scope, key))
    task.add_done_callback(_consume_exception)
    return await asyncio.shield(task)


async def _own(req: Req, compute: Callable[..., Awaitable[Any]], owner: idempotency.ResponseKey, status: int,
               wait: float) -> web.Response:
    """The owner claims the key in its own statement (issue 14). It succeeded: its answer is
    stored. It failed: maybe because the key's first request answered already (a retry finds
    the cart emptied, or the statement found the key's row) or holds the key, so the key's row
    decides - its answer replayed, IDEMPOTENCY_KEY_REUSED for another request's key, CONFLICT
    while still in progress - and only a key nobody holds lets this request's own error stand."""
    try:
        return _render(await compute(owner), status)
    except Exception as error:
        try:
            stored = await idempotency.answer(req.app[keys.DB], owner.tenant_id, owner.scope, owner.key,
                                              owner.digest, wait=wait)
        except DomainError:
            raise
        except Exception:  # noqa: BLE001 - the key's row could not be read: the request's own error stands
            raise error from None
        if stored is None:
            raise
        await req.app[keys.LIMITER].refund(req.request)
        return _replayed(stored)


async def _run_once(compute: Callable[[], Awaitable[Any]], status: int, db: Any,
                    tenant_id: Any, scope: str, key: str) -> web.Response:
    try:
        response = _render(await compute(), status)
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
