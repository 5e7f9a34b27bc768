"""The per-process product-document cache (pure: no I/O; the caller passes `now`).

Invariant: a document is served without a database trip for at most `fresh` seconds after it
was read or last confirmed; after that, until `ttl` seconds after it was read, it is served only
when a probe of the data it depends on (stock, status, rating, the row's edits: see
engine.catalogue.products.detail_probe) still equals the probe read with the document; never
after `ttl`, and never after an invalidation of its product that this process has received.
A read that began before an invalidation can not put its (possibly older) document in
afterwards: `put` needs the ticket taken before the read, and an invalidation of that product
(or a `clear`) since the ticket voids it. Invalidations of other products do not, so a stream of
changes elsewhere does not stop a hot product from being cached.

The cache is a plain bounded dict in insertion order: when full, the oldest entry goes. What is
stored is opaque to it (the web layer keeps the encoded response and its ETag).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, Iterable, TypeVar
from uuid import UUID

T = TypeVar("T")


@dataclass(slots=True)
class Entry(Generic[T]):
    tenant_id: UUID
    value: T
    probe: object
    fresh_until: float
    expires: float

    def is_fresh(self, now: float) -> bool:
        return now < self.fresh_until


class ProductDocuments(Generic[T]):
    def __init__(self, *, fresh: float, ttl: float, max_entries: int) -> None:
        self.fresh = min(fresh, ttl)
        self.ttl = ttl
        self.max_entries = max_entries
        self._entries: dict[UUID, Entry[T]] = {}
        self._generation = 0
        self._floor = 0                       # tickets older than this are void for every product
        self._changed: dict[UUID, int] = {}   # product -> generation of its last invalidation (bounded)
        self.hits = self.confirmed = self.misses = self.invalidations = 0

    @property
    def enabled(self) -> bool:
        return self.fresh > 0 and self.max_entries > 0

    def get(self, tenant_id: UUID, product_id: UUID, now: float) -> Entry[T] | None:
        """The entry (fresh, or to be confirmed by a probe first), or None past its TTL."""
        entry = self._entries.get(product_id)
        if entry is None or entry.tenant_id != tenant_id:
            self.misses += 1
            return None
        if entry.expires <= now:
            del self._entries[product_id]
            self.misses += 1
            return None
        self.hits += 1
        return entry

    def confirm(self, entry: Entry[T], now: float) -> None:
        """A probe read after the entry went stale equals the entry's own: fresh again. (An entry
        invalidated meanwhile is no longer in the cache; confirming it changes nothing.)"""
        self.confirmed += 1
        entry.fresh_until = min(now + self.fresh, entry.expires)

    def ticket(self) -> int:
        """Take before reading the document from the database; hand it to `put`."""
        self._generation += 1  # a ticket is never equal to an invalidation taken after it
        return self._generation

    def put(self, tenant_id: UUID, product_id: UUID, value: T, probe: object, now: float, ticket: int) -> bool:
        """Keep `value` unless an invalidation arrived since `ticket` was taken."""
        if not self.enabled or ticket < self._floor or self._changed.get(product_id, -1) >= ticket:
            return False
        self._entries.pop(product_id, None)
        while len(self._entries) >= self.max_entries:
            del self._entries[next(iter(self._entries))]
        self._entries[product_id] = Entry(tenant_id, value, probe, now + self.fresh, now + self.ttl)
        return True

    def invalidate(self, product_ids: Iterable[UUID]) -> None:
        self._generation += 1
        self.invalidations += 1
        if len(self._changed) > self.max_entries:  # keep the bookkeeping bounded: void every older ticket
            self._changed.clear()
            self._floor = self._generation
        for pid in product_ids:
            self._entries.pop(pid, None)
            self._changed[pid] = self._generation

    def clear(self) -> None:
        """Forget everything (the change feed was interrupted: changes may have been missed)."""
        self._generation += 1
        self._floor = self._generation
        self._changed.clear()
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)
