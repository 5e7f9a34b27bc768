"""Pure catalogue rules: listing SQL, search text, slugs, display names, shown numbers, statuses."""

from __future__ import annotations

import uuid
from decimal import Decimal

import msgspec
import pytest

from engine.catalogue.commands import NewProduct, NewReview, ProductChanges, slugify, supplied
from engine.catalogue.listing import ProductListing, count_query, page_query, search_query
from engine.catalogue.reviews import display_name
from engine.catalogue.views import plain, rating_average, shown_status

T = uuid.UUID(int=1)


def test_search_text_becomes_a_safe_prefix_query():
    assert search_query("Run shoe") == "run:* & shoe:*"
    assert search_query("a' | !b & (c)") == "a:* & b:* & c:*"
    assert search_query("!!! ''") is None


def test_customers_only_see_visible_products():
    sql, args = count_query(ProductListing(tenant_id=T))
    assert "p.deleted_at IS NULL" in sql and "p.status = 'ACTIVE'" in sql and args == [T]
    staff_sql, _ = count_query(ProductListing(tenant_id=T, staff=True, include_deleted=True))
    assert "deleted_at" not in staff_sql and "'ACTIVE'" not in staff_sql


@pytest.mark.parametrize("sort,order,expected", [
    (None, None, "p.created_at DESC, p.id DESC"), ("price", None, "p.price ASC, p.id ASC"),
    ("popularity", None, "p.units_sold DESC, p.id DESC"), ("name", "desc", "p.name DESC, p.id DESC"),
    ("stock", "asc", "p.stock_available ASC, p.id ASC"),
])
def test_every_order_ends_with_the_id_in_the_same_direction(sort, order, expected):
    sql, _ = page_query(ProductListing(tenant_id=T, sort=sort, order=order))
    assert sql.endswith(f"ORDER BY {expected}")


def test_relevance_order_only_without_explicit_sort():
    sql, args = page_query(ProductListing(tenant_id=T, search="shoe:*"))
    assert "ts_rank_cd" in sql and args.count("shoe:*") == 2
    sql, _ = page_query(ProductListing(tenant_id=T, search="shoe:*", sort="price"))
    assert "ts_rank_cd" not in sql


def test_filters_are_bound_never_inlined():
    q = ProductListing(tenant_id=T, min_price=Decimal("1.5"), max_price=Decimal(9), tags=("x'; drop",),
                       category_ids=(T,), page=3, page_size=10)
    sql, args = page_query(q)
    assert "drop" not in sql and ["x'; drop"] in args and Decimal("1.5") in args
    assert args[-2:] == [10, 20]  # LIMIT, OFFSET


def test_slugify():
    assert slugify("Premium Health Supplement!") == "premium-health-supplement"
    assert slugify("  Ёлка & Co ") == "co"
    assert slugify("!!!") == "item"


def test_display_name_hides_surname():
    assert display_name("John Doe") == "John D."
    assert display_name("Cher") == "Cher"
    assert display_name("  ") == "Customer"


def test_numbers_shown_without_padding():
    assert str(plain(Decimal("2500.00"))) == "2500" and str(plain(Decimal("25.90"))) == "25.9"
    assert plain(None) is None
    assert rating_average(0, 0) == 0 and rating_average(9, 2) == Decimal("4.5") and rating_average(14, 3) == Decimal("4.7")


def test_out_of_stock_is_derived_from_stored_active():
    assert shown_status("ACTIVE", True, 0) == "OUT_OF_STOCK"
    assert shown_status("ACTIVE", False, 0) == "ACTIVE"
    assert shown_status("DRAFT", True, 0) == "DRAFT"


@pytest.mark.parametrize("price", ["-1", "1e400", "\"NaN\"", "\"Infinity\"", "0.001", "10000000000"])
def test_money_is_bounded(price):
    with pytest.raises(msgspec.ValidationError):
        msgspec.json.decode(f'{{"name": "x", "sku": "s", "price": {price}}}'.encode(), type=NewProduct)


def test_changes_know_what_was_supplied():
    changes = msgspec.json.decode(b'{"price": 5, "shortDescription": null}', type=ProductChanges)
    assert supplied(changes) == {"price": Decimal(5), "short_description": None}


def test_review_bounds():
    ok = msgspec.json.decode(b'{"rating": 3, "content": "ten chars!!"}', type=NewReview)
    assert ok.pros == [] and ok.title is None
    with pytest.raises(msgspec.ValidationError):
        msgspec.json.decode(b'{"rating": 3, "content": "short"}', type=NewReview)
