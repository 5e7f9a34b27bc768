"""How a product listing becomes SQL: filters, visibility, sort and pagination (no I/O).

Invariants:
- customers see only visible products: `deleted_at IS NULL AND status = 'ACTIVE'` (the derived
  OUT_OF_STOCK status is a subset of stored ACTIVE); staff may ask for DRAFT / ARCHIVED /
  deleted ones;
- every ordering ends with the product id in the same direction, so equal keys keep a stable
  order and pages never repeat or skip an item;
- every predicate is index-friendly (see migration 0003): equality on (tenant_id, status),
  ranges on the sort key, `tags @>` and `search_vector @@` on GIN indexes;
- values only ever travel as bind parameters; identifiers come from fixed tables below.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from uuid import UUID

SORT_COLUMNS = {
    "price": "p.price",
    "name": "p.name",
    "createdAt": "p.created_at",
    "popularity": "p.units_sold",
    "stock": "p.stock_available",
}
# Without an explicit direction: cheapest / A-Z / least stock first, newest / best-selling first.
DEFAULT_ORDER = {"price": "asc", "name": "asc", "stock": "asc", "createdAt": "desc", "popularity": "desc"}

_OUT_OF_STOCK = "(p.status = 'ACTIVE' AND p.track_inventory AND p.stock_available = 0)"
# Written so an index holding (status, stock_available) INCLUDE (track_inventory) can answer it.
_IN_STOCK_ACTIVE = "(p.status = 'ACTIVE' AND (p.stock_available > 0 OR NOT p.track_inventory))"
_WORD = re.compile(r"\w+", re.UNICODE)


def search_query(text: str) -> str | None:
    """User text -> a prefix tsquery ('run sho' -> 'run:* & sho:*'); None when no word is left.
    Only word characters survive, so the tsquery syntax cannot be injected."""
    words = _WORD.findall(text.lower())[:10]
    return " & ".join(f"{w}:*" for w in words) if words else None


@dataclass(frozen=True, slots=True)
class ProductListing:
    """A validated listing request. `status` is the API status (OUT_OF_STOCK derived)."""

    tenant_id: UUID
    page: int = 1
    page_size: int = 20
    staff: bool = False
    include_deleted: bool = False
    status: str | None = None
    active: bool | None = None
    category_ids: tuple[UUID, ...] | None = None   # a category and its descendants
    min_price: Decimal | None = None
    max_price: Decimal | None = None
    tags: tuple[str, ...] = ()
    search: str | None = None                       # already a tsquery (see search_query)
    sort: str | None = None
    order: str | None = None
    exclude_id: UUID | None = None


def where_clause(q: ProductListing) -> tuple[str, list[object]]:
    """(SQL after WHERE, bind values) of the listing's filters."""
    args: list[object] = [q.tenant_id]
    parts = ["p.tenant_id = $1"]

    def bind(value: object) -> str:
        args.append(value)
        return f"${len(args)}"

    if not (q.staff and q.include_deleted):
        parts.append("p.deleted_at IS NULL")
    if not q.staff:
        parts.append("p.status = 'ACTIVE'")
    if q.status == "ACTIVE":
        parts.append(_IN_STOCK_ACTIVE)
    elif q.status == "OUT_OF_STOCK":
        parts.append(_OUT_OF_STOCK)
    elif q.status in ("DRAFT", "ARCHIVED"):
        parts.append(f"p.status = {bind(q.status)}")
    if q.active is True:
        parts.append(_IN_STOCK_ACTIVE)
    elif q.active is False:
        # Customers only see stored-ACTIVE products, so "not active" is the out-of-stock slice
        # (spelled as the partial index's predicate so the planner can use it).
        parts.append(f"NOT {_IN_STOCK_ACTIVE}" if q.staff else _OUT_OF_STOCK)
    if q.category_ids is not None:
        parts.append(f"p.category_id = ANY({bind(list(q.category_ids))}::uuid[])")
    if q.min_price is not None:
        parts.append(f"p.price >= {bind(q.min_price)}")
    if q.max_price is not None:
        parts.append(f"p.price <= {bind(q.max_price)}")
    if q.tags:
        parts.append(f"p.tags @> {bind(list(q.tags))}::text[]")
    if q.search is not None:
        parts.append(f"p.search_vector @@ to_tsquery('simple', {bind(q.search)})")
    if q.exclude_id is not None:
        parts.append(f"p.id <> {bind(q.exclude_id)}")
    return " AND ".join(parts), args


def order_clause(q: ProductListing, args: list[object]) -> str:
    """ORDER BY text. Relevance first when searching without an explicit sort."""
    if q.sort is None and q.search is not None:
        args.append(q.search)
        return f"ts_rank_cd(p.search_vector, to_tsquery('simple', ${len(args)})) DESC, p.id"
    sort = q.sort or "createdAt"
    direction = (q.order or DEFAULT_ORDER[sort]).upper()
    if direction not in ("ASC", "DESC"):
        raise ValueError(direction)
    return f"{SORT_COLUMNS[sort]} {direction}, p.id {direction}"


PRODUCT_COLUMNS = """
    p.id, p.name, p.slug, p.description, p.short_description, p.price, p.compare_at_price,
    p.currency, p.sku, p.status, p.track_inventory, p.stock_available, p.tags,
    p.rating_count, p.rating_sum, p.commission_percentage, p.career_points_percentage,
    p.created_at, p.deleted_at, p.category_id,
    c.name AS category_name, c.slug AS category_slug
"""


def page_query(q: ProductListing) -> tuple[str, list[object]]:
    """The SELECT of one page, as a deferred join: the inner query picks the page's ids from an
    index alone (ORDER BY ... LIMIT/OFFSET over narrow index entries), the outer one reads just
    those rows, with their category, in the same order."""
    where, args = where_clause(q)
    order = order_clause(q, args)
    args.append(q.page_size)
    limit = f"${len(args)}"
    args.append((q.page - 1) * q.page_size)
    offset = f"${len(args)}"
    sql = (f"SELECT {PRODUCT_COLUMNS} FROM (SELECT p.id FROM products p WHERE {where}"
           f" ORDER BY {order} LIMIT {limit} OFFSET {offset}) page"
           f" JOIN products p ON p.id = page.id LEFT JOIN categories c ON c.id = p.category_id ORDER BY {order}")
    return sql, args


def count_query(q: ProductListing) -> tuple[str, list[object]]:
    where, args = where_clause(q)
    return f"SELECT count(*) FROM products p WHERE {where}", args
