"""Idempotency keys: a retried money-moving request has exactly one effect and one answer.

A key belongs to (tenant, caller scope, key): two callers may use the same key string. The
protocol, each step one statement:

1. `claim`: INSERT the key row as "in progress" (no response yet) with the request's hash.
   Exactly one request wins the INSERT (primary key); it does the work.
2. The winner either `complete`s the row with the response (status + body bytes), or, when
   the request failed, `abandon`s it (deletes the row) so a retry runs again: failed
   validations and errors are never stored, only successful (2xx) responses.
3. A request that finds the row answers from it:
   - a different request hash -> IDEMPOTENCY_KEY_REUSED (422), whatever the row's state;
   - a stored response -> that response, byte for byte;
   - still in progress -> it polls until the first request finishes (then replays its
     answer, or, if the first one failed and gave the key up, claims it and runs itself).
     After `wait` seconds it answers CONFLICT (409): "still in progress, retry".
An in-progress row older than `lease` seconds belongs to a request that died (process crash
between claim and complete); it may be taken over, so a key is never stuck for its whole TTL.
Rows live `ttl` seconds; expired rows are ignored and replaced on the next claim.

Checkout and POST /orders skip step 1 (`ResponseKey`): their order statement (`place_orders`,
migration 0019) inserts the key's row itself, with the answer, in the order's transaction - the
primary key catches a duplicate from another process, and that order alone fails (KeyTaken) -
so no claim round trip comes first. When such a request fails, its caller reads the key's row
(`answer`): a first request's stored answer is the reply (the retry found the cart emptied, or
the statement found the key), another request's key is IDEMPOTENCY_KEY_REUSED. Their rows are
never "in progress": the row and its answer commit together.
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from engine.db import Database
from engine.domain.errors import Conflict, IdempotencyKeyReused

POLL_SECONDS = 0.05


@dataclass(frozen=True, slots=True)
class StoredResponse:
    """A stored answer: the response bytes (`body`), or a typed record of the engine's
    (`kind` names its type, `record` is its JSON) that web renders, first answer and replays alike."""

    status: int
    body: bytes = b""
    kind: str | None = None
    record: bytes | None = None


@dataclass(frozen=True, slots=True)
class ResponseKey:
    """The request's key, handed to an owner that claims it and stores its response inside its
    own statement (checkout does, `place_orders`: the answer is a record of its result): the
    effect and its answer commit together, so no crash between them can leave a retry without
    the first answer, and no claim round trip comes before. `status` is the HTTP status the
    answer is stored with; `digest`, `ttl` and `lease` as for `claim`. When the statement finds
    the key held by another request, the owner raises KeyTaken and its caller answers from the
    key's row (`answer`)."""

    tenant_id: UUID
    scope: str
    key: str
    status: int
    digest: bytes
    ttl: float
    lease: float


class KeyTaken(Conflict):
    """Another request holds this Idempotency-Key (the order statement found its row)."""

    def __init__(self) -> None:
        super().__init__("A request with this Idempotency-Key is still in progress; retry shortly.",
                         extra={"retry_after": 1})


def request_hash(*parts: bytes | str) -> bytes:
    """A digest of what makes two requests "the same": method, path, canonical body."""
    h = hashlib.sha256()
    for part in parts:
        data = part.encode() if isinstance(part, str) else part
        h.update(len(data).to_bytes(8, "big"))
        h.update(data)
    return h.digest()


async def _try_claim(db: Database, tenant_id: UUID, scope: str, key: str, digest: bytes, *,
                     ttl: int, lease: float) -> StoredResponse | None:
    """None: the caller owns the key now. Else the row's state: a stored response, or one of
    the sentinels below. Raises IdempotencyKeyReused."""
    # One statement: insert the key, or take over a row that expired or whose owner died
    # (lease over, no response). A live row is left alone and nothing is returned.
    async with db.connection() as conn:
        won = await conn.fetchval(
            "INSERT INTO idempotency_keys (tenant_id, scope, key, request_hash, expires_at)"
            " VALUES ($1, $2, $3, $4, now() + make_interval(secs => $5))"
            " ON CONFLICT (tenant_id, scope, key) DO UPDATE SET request_hash = EXCLUDED.request_hash,"
            "   expires_at = EXCLUDED.expires_at, created_at = now(), response_status = NULL, response_body = NULL,"
            "   response_kind = NULL, response_record = NULL"
            " WHERE idempotency_keys.expires_at <= now() OR (idempotency_keys.response_status IS NULL"
            "       AND idempotency_keys.created_at < now() - make_interval(secs => $6))"
            " RETURNING true",
            tenant_id, scope, key, digest, float(ttl), float(lease))
    if won:
        return None
    return await _existing(db, tenant_id, scope, key, digest)


async def _existing(db: Database, tenant_id: UUID, scope: str, key: str, digest: bytes) -> StoredResponse | None:
    async with db.connection() as conn:
        row = await conn.fetchrow(
            "SELECT request_hash, response_status, response_body, response_kind, response_record::text AS record"
            " FROM idempotency_keys"
            " WHERE tenant_id = $1 AND scope = $2 AND key = $3 AND expires_at > now()",
            tenant_id, scope, key)
    if row is None:
        return _GONE
    if bytes(row["request_hash"]) != digest:
        raise IdempotencyKeyReused()
    if row["response_status"] is None:
        return _IN_PROGRESS
    return _answer(row)


def _answer(row: Any) -> StoredResponse:
    record = row["record"]
    if record is not None:
        return StoredResponse(row["response_status"], kind=row["response_kind"], record=record.encode())
    return StoredResponse(row["response_status"], bytes(row["response_body"]))


# Row states while waiting; never returned by `claim`.
_GONE = StoredResponse(-1, b"")
_IN_PROGRESS = StoredResponse(-2, b"")


async def claim(db: Database, tenant_id: UUID, scope: str, key: str, digest: bytes, *,
                        ttl: int, wait: float, lease: float = 120.0) -> StoredResponse | None:
    """Claim the key, waiting up to `wait` seconds for a concurrent first request with it.

    None: the caller owns the key. StoredResponse: the first request's answer to replay.
    Conflict (409) when the first request is still running after `wait` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    while True:
        got = await _try_claim(db, tenant_id, scope, key, digest, ttl=ttl, lease=lease)
        if got is not _IN_PROGRESS and got is not _GONE:
            return got
        if loop.time() >= deadline:
            raise Conflict("A request with this Idempotency-Key is still in progress; retry shortly.",
                           extra={"retry_after": 1})
        await asyncio.sleep(POLL_SECONDS)


async def answer(db: Database, tenant_id: UUID, scope: str, key: str, digest: bytes, *,
                 wait: float) -> StoredResponse | None:
    """After an owner's request failed (see ResponseKey): the key's stored answer to replay, or
    None when no request holds the key (the failure is this request's own). Raises
    IdempotencyKeyReused for another request's key, Conflict when it is still in progress after
    `wait` seconds (a request that claimed the key the old way, before its work)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    while True:
        got = await _existing(db, tenant_id, scope, key, digest)
        if got is _GONE:
            return None
        if got is not _IN_PROGRESS:
            return got
        if loop.time() >= deadline:
            raise Conflict("A request with this Idempotency-Key is still in progress; retry shortly.",
                           extra={"retry_after": 1})
        await asyncio.sleep(POLL_SECONDS)


async def stored(db: Database, tenant_id: UUID, scope: str, key: str, digest: bytes) -> StoredResponse | None:
    """The stored answer for this key and this very request, if there is one (read only: for a
    replay that must be answered even when the caller's rate-limit budget is spent)."""
    async with db.connection() as conn:
        row = await conn.fetchrow(
            "SELECT response_status, response_body, response_kind, response_record::text AS record"
            " FROM idempotency_keys WHERE tenant_id = $1 AND scope = $2"
            " AND key = $3 AND request_hash = $4 AND expires_at > now() AND response_status IS NOT NULL",
            tenant_id, scope, key, digest)
    return None if row is None else _answer(row)


async def complete(db: Database, tenant_id: UUID, scope: str, key: str, response: StoredResponse) -> None:
    """Store the owner's response; every later request with the key replays it."""
    async with db.connection() as conn:
        await conn.execute(
            "UPDATE idempotency_keys SET response_status = $4, response_body = $5"
            " WHERE tenant_id = $1 AND scope = $2 AND key = $3 AND response_status IS NULL",
            tenant_id, scope, key, response.status, response.body)


async def abandon(db: Database, tenant_id: UUID, scope: str, key: str) -> None:
    """The owner failed: give the key up so a retry runs the request again."""
    async with db.connection() as conn:
        await conn.execute(
            "DELETE FROM idempotency_keys WHERE tenant_id = $1 AND scope = $2 AND key = $3"
            " AND response_status IS NULL", tenant_id, scope, key)


async def purge_expired(db: Database, *, limit: int = 10_000) -> int:
    """Delete up to `limit` expired keys (the scheduler may call it); returns how many."""
    async with db.connection() as conn:
        return await conn.fetchval(
            "WITH gone AS (DELETE FROM idempotency_keys WHERE ctid IN ("
            "  SELECT ctid FROM idempotency_keys WHERE expires_at <= now() LIMIT $1) RETURNING 1)"
            " SELECT count(*) FROM gone", limit)
