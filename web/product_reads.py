"""`GET /products/{id}` from memory: the per-process document cache, ETag / If-None-Match,
Cache-Control, and the listener that keeps the cache honest across processes.

- Anonymous reads (engine.catalogue.access.shares_public_view) are served from the cache: the
  encoded response and its ETag. For `CATALOGUE_CACHE_SECONDS` after it was read (or confirmed)
  a document is served without a database trip; after that one small probe (stock, status,
  rating, edits) confirms it or a full read replaces it; after `CATALOGUE_CACHE_MAX_SECONDS` it
  is read again in full; a product-change notification (engine.catalogue.changes) drops it at
  once. A matching `If-None-Match` answers `304` without a database trip while the document is
  fresh, and after a probe otherwise.
  `Cache-Control: public, no-cache`: shared caches may keep the body but must revalidate, which
  costs us a 304 from memory, so the staleness bound stays ours alone.
- Signed-in reads (another price may apply) and staff reads bypass the cache, get an ETag too
  and `Cache-Control: private, no-store`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from typing import AsyncIterator
from uuid import UUID

from aiohttp import web

from engine.catalogue import service as catalogue
from engine.catalogue.access import shares_public_view
from engine.catalogue.changes import ProductChangeListener
from engine.catalogue.product_cache import ProductDocuments
from web import keys
from web.api import Req
from web.envelope import encode

Document = tuple[bytes, str]  # (encoded envelope, ETag)
PRODUCT_CACHE: web.AppKey[ProductDocuments[Document]] = web.AppKey("product_cache")
_PUBLIC = "public, no-cache"
_PRIVATE = "private, no-store"
# Who is asking and what they accept change the answer: credentials, tenant, compression.
_VARY = "Authorization, X-API-Key, X-Tenant, Accept-Encoding"


def etag_of(body: bytes) -> str:
    return '"' + hashlib.blake2b(body, digest_size=12).hexdigest() + '"'


def matches(if_none_match: str | None, etag: str) -> bool:
    """RFC 9110 weak comparison: `W/` is ignored; `*` matches any current document."""
    if not if_none_match:
        return False
    for tag in if_none_match.split(","):
        tag = tag.strip()
        if tag == "*" or tag.removeprefix("W/") == etag:
            return True
    return False


async def product_response(req: Req, product_id: UUID) -> web.Response:
    cache = req.app[PRODUCT_CACHE]
    principal = req.principal
    public = shares_public_view(principal) and cache.enabled
    doc: Document | None = None
    entry = cache.get(principal.tenant_id, product_id, time.monotonic()) if public else None
    if entry is not None and entry.is_fresh(time.monotonic()):
        doc = entry.value
    elif entry is not None:  # stale: one small read says whether the document still holds
        if await catalogue.detail_probe(req.app[keys.DB], principal.tenant_id, product_id) == entry.probe:
            cache.confirm(entry, time.monotonic())
            doc = entry.value
    if doc is None:
        ticket = cache.ticket()
        detail, probe = await catalogue.product_document(req.app[keys.DB], principal, product_id)
        body = encode({"success": True, "data": detail})
        doc = (body, etag_of(body))
        if public:
            cache.put(principal.tenant_id, product_id, doc, probe, time.monotonic(), ticket)
    body, etag = doc
    headers = {"ETag": etag, "Cache-Control": _PUBLIC if public else _PRIVATE, "Vary": _VARY}
    if matches(req.request.headers.get("If-None-Match"), etag):
        return web.Response(status=304, headers=headers)
    return web.Response(body=body, headers=headers, content_type="application/json")


def forget(app: web.Application, product_ids: list[UUID]) -> None:
    """Drop this process's copies at once (the writer reads its own write); the notification
    sent in the write's transaction tells the other processes."""
    app[PRODUCT_CACHE].invalidate(product_ids)


def setup(app: web.Application) -> None:
    settings = app[keys.SETTINGS]
    app[PRODUCT_CACHE] = ProductDocuments(fresh=settings.catalogue_cache_seconds,
                                          ttl=max(settings.catalogue_cache_seconds, settings.catalogue_cache_max_seconds),
                                          max_entries=settings.catalogue_cache_size)
    app.cleanup_ctx.append(_listen_for_changes)


async def _listen_for_changes(app: web.Application) -> AsyncIterator[None]:
    cache = app[PRODUCT_CACHE]
    if not cache.enabled:
        yield
        return
    listener = ProductChangeListener(app[keys.DB].dsn, cache.invalidate, cache.clear)
    task = asyncio.create_task(listener.run(), name="product-change-listener")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
