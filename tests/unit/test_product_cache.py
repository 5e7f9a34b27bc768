"""The product-document cache: TTL, tickets against a read racing an invalidation, bounds."""

from __future__ import annotations

import uuid

from engine.catalogue.changes import parse_payload
from engine.catalogue.product_cache import ProductDocuments
from web.product_reads import etag_of, matches

T1, T2 = uuid.uuid4(), uuid.uuid4()
P, Q = uuid.uuid4(), uuid.uuid4()


def test_served_until_ttl_then_gone() -> None:
    c: ProductDocuments[str] = ProductDocuments(ttl=1.0, max_entries=10)
    assert c.put(T1, P, "doc", 100.0, c.ticket())
    assert c.get(T1, P, 100.9) == "doc"
    assert c.get(T1, P, 101.0) is None


def test_other_tenant_misses() -> None:
    c: ProductDocuments[str] = ProductDocuments(ttl=5.0, max_entries=10)
    c.put(T1, P, "doc", 0.0, c.ticket())
    assert c.get(T2, P, 1.0) is None and c.get(T1, P, 1.0) == "doc"


def test_invalidation_drops_and_voids_reads_begun_before_it() -> None:
    c: ProductDocuments[str] = ProductDocuments(ttl=5.0, max_entries=10)
    c.put(T1, P, "old", 0.0, c.ticket())
    ticket = c.ticket()           # a read of P starts ...
    c.invalidate([P])             # ... P changes meanwhile ...
    assert c.get(T1, P, 1.0) is None
    assert not c.put(T1, P, "maybe old", 1.0, ticket)  # ... so its result is not kept
    assert c.put(T1, P, "new", 1.0, c.ticket())
    assert c.get(T1, P, 1.0) == "new"


def test_invalidation_of_another_product_does_not_void_a_read() -> None:
    c: ProductDocuments[str] = ProductDocuments(ttl=5.0, max_entries=10)
    ticket = c.ticket()
    c.invalidate([Q])
    assert c.put(T1, P, "doc", 0.0, ticket)


def test_clear_voids_every_read_in_flight() -> None:
    c: ProductDocuments[str] = ProductDocuments(ttl=5.0, max_entries=10)
    c.put(T1, Q, "q", 0.0, c.ticket())
    ticket = c.ticket()
    c.clear()
    assert len(c) == 0 and not c.put(T1, P, "doc", 0.0, ticket)


def test_bounded_oldest_goes_first() -> None:
    c: ProductDocuments[int] = ProductDocuments(ttl=5.0, max_entries=3)
    ids = [uuid.uuid4() for _ in range(5)]
    for i, pid in enumerate(ids):
        c.put(T1, pid, i, 0.0, c.ticket())
    assert len(c) == 3
    assert c.get(T1, ids[0], 0.0) is None and c.get(T1, ids[4], 0.0) == 4


def test_bookkeeping_of_invalidations_stays_bounded_and_safe() -> None:
    c: ProductDocuments[str] = ProductDocuments(ttl=5.0, max_entries=2)
    ticket = c.ticket()
    for _ in range(10):
        c.invalidate([uuid.uuid4()])
    c.invalidate([P])
    assert len(c._changed) <= 3
    assert not c.put(T1, P, "doc", 0.0, ticket)


def test_disabled_cache_keeps_nothing() -> None:
    c: ProductDocuments[str] = ProductDocuments(ttl=0.0, max_entries=10)
    assert not c.put(T1, P, "doc", 0.0, c.ticket()) and c.get(T1, P, 0.0) is None


def test_if_none_match_comparison() -> None:
    tag = etag_of(b"body")
    assert matches(tag, tag) and matches(f'W/{tag}', tag) and matches(f'"x", {tag}', tag) and matches("*", tag)
    assert not matches(None, tag) and not matches('"other"', tag) and etag_of(b"body2") != tag


def test_notification_payload_skips_garbage() -> None:
    assert parse_payload(f"{P},nonsense,{Q}") == [P, Q]
