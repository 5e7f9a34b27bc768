"""The product-document cache: TTL, tickets against a read racing an invalidation, bounds."""

from __future__ import annotations

import uuid

from engine.catalogue.changes import parse_payload
from engine.catalogue.product_cache import ProductDocuments
from web.product_reads import etag_of, matches

T1, T2 = uuid.uuid4(), uuid.uuid4()
P, Q = uuid.uuid4(), uuid.uuid4()


def test_served_until_ttl_then_gone() -> None:
    c: ProductDocuments[str] = ProductDocuments(fresh=1.0, ttl=1.0, max_entries=10)
    assert c.put(T1, P, "doc", None, 100.0, c.ticket())
    assert c.get(T1, P, 100.9).value == "doc"
    assert c.get(T1, P, 101.0) is None


def test_stale_entry_is_confirmed_by_a_probe_but_never_past_its_ttl() -> None:
    c: ProductDocuments[str] = ProductDocuments(fresh=1.0, ttl=10.0, max_entries=10)
    c.put(T1, P, "doc", ("stock", 5), 0.0, c.ticket())
    entry = c.get(T1, P, 0.5)
    assert entry.is_fresh(0.5) and entry.probe == ("stock", 5)
    entry = c.get(T1, P, 2.0)
    assert entry is not None and not entry.is_fresh(2.0)   # the caller probes before serving
    c.confirm(entry, 2.0)
    assert c.get(T1, P, 2.9).is_fresh(2.9)
    c.confirm(c.get(T1, P, 9.5), 9.5)
    assert not c.get(T1, P, 9.99).is_fresh(10.0)  # confirmation never reaches past the TTL
    assert c.get(T1, P, 10.0) is None


def test_other_tenant_misses() -> None:
    c: ProductDocuments[str] = ProductDocuments(fresh=5.0, ttl=5.0, max_entries=10)
    c.put(T1, P, "doc", None, 0.0, c.ticket())
    assert c.get(T2, P, 1.0) is None and c.get(T1, P, 1.0).value == "doc"


def test_invalidation_drops_and_voids_reads_begun_before_it() -> None:
    c: ProductDocuments[str] = ProductDocuments(fresh=5.0, ttl=5.0, max_entries=10)
    c.put(T1, P, "old", None, 0.0, c.ticket())
    ticket = c.ticket()           # a read of P starts ...
    c.invalidate([P])             # ... P changes meanwhile ...
    assert c.get(T1, P, 1.0) is None
    assert not c.put(T1, P, "maybe old", None, 1.0, ticket)  # ... so its result is not kept
    assert c.put(T1, P, "new", None, 1.0, c.ticket())
    assert c.get(T1, P, 1.0).value == "new"


def test_invalidation_of_another_product_does_not_void_a_read() -> None:
    c: ProductDocuments[str] = ProductDocuments(fresh=5.0, ttl=5.0, max_entries=10)
    ticket = c.ticket()
    c.invalidate([Q])
    assert c.put(T1, P, "doc", None, 0.0, ticket)


def test_clear_voids_every_read_in_flight() -> None:
    c: ProductDocuments[str] = ProductDocuments(fresh=5.0, ttl=5.0, max_entries=10)
    c.put(T1, Q, "q", None, 0.0, c.ticket())
    ticket = c.ticket()
    c.clear()
    assert len(c) == 0 and not c.put(T1, P, "doc", None, 0.0, ticket)


def test_bounded_oldest_goes_first() -> None:
    c: ProductDocuments[int] = ProductDocuments(fresh=5.0, ttl=5.0, max_entries=3)
    ids = [uuid.uuid4() for _ in range(5)]
    for i, pid in enumerate(ids):
        c.put(T1, pid, i, None, 0.0, c.ticket())
    assert len(c) == 3
    assert c.get(T1, ids[0], 0.0) is None and c.get(T1, ids[4], 0.0).value == 4


def test_bookkeeping_of_invalidations_stays_bounded_and_safe() -> None:
    c: ProductDocuments[str] = ProductDocuments(fresh=5.0, ttl=5.0, max_entries=2)
    ticket = c.ticket()
    for _ in range(10):
        c.invalidate([uuid.uuid4()])
    c.invalidate([P])
    assert len(c._changed) <= 3
    assert not c.put(T1, P, "doc", None, 0.0, ticket)


def test_disabled_cache_keeps_nothing() -> None:
    c: ProductDocuments[str] = ProductDocuments(fresh=0.0, ttl=0.0, max_entries=10)
    assert not c.put(T1, P, "doc", None, 0.0, c.ticket()) and c.get(T1, P, 0.0) is None


def test_if_none_match_comparison() -> None:
    tag = etag_of(b"body")
    assert matches(tag, tag) and matches(f'W/{tag}', tag) and matches(f'"x", {tag}', tag) and matches("*", tag)
    assert not matches(None, tag) and not matches('"other"', tag) and etag_of(b"body2") != tag


def test_notification_payload_skips_garbage() -> None:
    assert parse_payload(f"{P},nonsense,{Q}") == [P, Q]
