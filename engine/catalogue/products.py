"""Reading products: the listing page, the detail, and the rows behind them.

Invariant: a customer never receives a product that is deleted or whose stored status is not
ACTIVE (it is PRODUCT_NOT_FOUND to them); staff (see access.sees_hidden) do.
"""

from __future__ import annotations

import json
from typing import Any, Iterable
from uuid import UUID

import asyncpg

from engine import price_lists
from engine.catalogue import views as v
from engine.catalogue.access import price_for, sees_hidden
from engine.catalogue.listing import ProductListing, count_query, page_query
from engine.domain.errors import ProductNotFound
from engine.domain.principal import Principal

RELATED_LIMIT = 4


async def list_products(conn: asyncpg.Connection, principal: Principal,
                        q: ProductListing) -> tuple[list[v.Product], int]:
    """One page of products and the total matching the listing's filters."""
    if q.category_ids == ():
        return [], 0
    sql, args = count_query(q)
    total = await conn.fetchval(sql, *args)
    if total == 0 or (q.page - 1) * q.page_size >= total:
        return [], total
    sql, args = page_query(q)
    rows = await conn.fetch(sql, *args)
    return await render_products(conn, principal, rows), total


async def render_products(conn: asyncpg.Connection, principal: Principal,
                          rows: list[asyncpg.Record]) -> list[v.Product]:
    images = await _images_of(conn, [r["id"] for r in rows])
    views = [product_view(principal, r, images.get(r["id"], [])) for r in rows]
    await price_lists.personalise(conn, principal, views)
    return views


async def _images_of(conn: asyncpg.Connection, ids: list[UUID]) -> dict[UUID, list[asyncpg.Record]]:
    out: dict[UUID, list[asyncpg.Record]] = {}
    if not ids:
        return out
    for r in await conn.fetch(
            "SELECT id, product_id, url, thumbnail_url, alt, is_primary, position FROM product_images"
            " WHERE product_id = ANY($1::uuid[]) ORDER BY product_id, position, id", ids):
        out.setdefault(r["product_id"], []).append(r)
    return out


def stock_quantity(row: Any) -> int | None:
    return row["stock_available"] if row["track_inventory"] else None


def product_view(principal: Principal, r: Any, images: Iterable[Any]) -> v.Product:
    category = (v.CategoryRef(id=r["category_id"], name=r["category_name"], slug=r["category_slug"])
                if r["category_id"] is not None else None)
    return v.Product(
        id=r["id"], name=r["name"], slug=r["slug"], description=r["description"],
        short_description=r["short_description"],
        price=v.plain(price_for(principal, r["price"])), compare_at_price=v.plain(r["compare_at_price"]),
        currency=r["currency"], sku=r["sku"],
        status=v.shown_status(r["status"], r["track_inventory"], r["stock_available"]),  # type: ignore[arg-type]
        stock_quantity=stock_quantity(r), category=category,
        images=[v.Image(id=i["id"], url=i["url"], thumbnail_url=i["thumbnail_url"], alt=i["alt"],
                        is_primary=i["is_primary"]) for i in images],
        tags=list(r["tags"]),
        rating=v.Rating(average=v.rating_average(r["rating_sum"], r["rating_count"]), count=r["rating_count"]),
        commission_percentage=v.plain(r["commission_percentage"]),  # type: ignore[arg-type]
        career_points_percentage=v.plain(r["career_points_percentage"]),  # type: ignore[arg-type]
        created_at=r["created_at"], deleted_at=r["deleted_at"])


_DETAIL = """
SELECT p.*, c.name AS category_name, c.slug AS category_slug
  FROM products p LEFT JOIN categories c ON c.id = p.category_id
 WHERE p.id = $1 AND p.tenant_id = $2
"""


async def visible_product(conn: asyncpg.Connection, principal: Principal, product_id: UUID) -> asyncpg.Record:
    """The product row if `principal` may see it, else PRODUCT_NOT_FOUND."""
    row = await conn.fetchrow(_DETAIL, product_id, principal.tenant_id)
    if row is None or not sees_hidden(principal) and (row["deleted_at"] is not None or row["status"] != "ACTIVE"):
        raise ProductNotFound()
    return row


# The whole detail in one statement (one round trip instead of five): the product row, and its
# images, live variants, breadcrumb and related products as arrays of anonymous records (asyncpg
# decodes them to tuples with their real types). jsonb inside a record reaches asyncpg in binary
# form, which the connection's json codec cannot read, so variant attributes travel as text.
# Related products: the best sellers come from the category index (an index-only scan of the
# category's entries); `units_sold + 0` stops the planner from walking the tenant-wide popularity
# index instead (it misjudges the correlated category filter and scans every product). An index
# on (tenant_id, category_id, units_sold DESC, id) for live ACTIVE products would make this a
# 4-row read; with it, drop the `+ 0`.
_FULL_DETAIL = """
SELECT p.*, c.name AS category_name, c.slug AS category_slug,
       ARRAY(SELECT ROW(i.id, i.url, i.thumbnail_url, i.alt, i.is_primary, i.position)
               FROM product_images i WHERE i.product_id = p.id ORDER BY i.position, i.id) AS detail_images,
       ARRAY(SELECT ROW(pv.id, pv.name, pv.sku, pv.price, pv.attributes::text, s.available)
               FROM product_variants pv LEFT JOIN stock s ON s.variant_id = pv.id
              WHERE pv.product_id = p.id AND pv.deleted_at IS NULL ORDER BY pv.position, pv.id) AS detail_variants,
       ARRAY(WITH RECURSIVE up AS (
                 SELECT a.id, a.parent_id, a.name, a.slug, 0 AS depth
                   FROM categories a WHERE a.id = p.category_id AND a.tenant_id = p.tenant_id
                 UNION ALL
                 SELECT b.id, b.parent_id, b.name, b.slug, up.depth + 1
                   FROM categories b JOIN up ON b.id = up.parent_id
                  WHERE b.tenant_id = p.tenant_id AND up.depth < 100)
             SELECT ROW(up.id, up.name, up.slug) FROM up ORDER BY up.depth DESC) AS detail_breadcrumb,
       ARRAY(SELECT ROW(o.id, o.name, o.slug, o.price,
                        (SELECT i.thumbnail_url FROM product_images i WHERE i.product_id = o.id
                          ORDER BY i.is_primary DESC, i.position, i.id LIMIT 1))
               FROM (SELECT t.id, t.units_sold FROM products t
                      WHERE t.tenant_id = p.tenant_id AND t.category_id = p.category_id
                        AND t.status = 'ACTIVE' AND t.deleted_at IS NULL AND t.id <> p.id
                      ORDER BY t.units_sold + 0 DESC, t.id LIMIT $3) best
               JOIN products o ON o.id = best.id
              ORDER BY best.units_sold DESC, best.id) AS detail_related,
       ARRAY(SELECT s.available FROM stock s WHERE s.product_id = p.id ORDER BY s.id) AS probe_stock
  FROM products p LEFT JOIN categories c ON c.id = p.category_id
 WHERE p.id = $1 AND p.tenant_id = $2
"""

# What a product's document depends on that changes without an edit of the product (stock on
# every sale, rating on every review), plus its edits (`updated_at`). One primary-key read and
# one index read of its stock rows: a cached document is still right while its probe is unchanged
# (related products and the category trail excepted: the cache's TTL bounds those).
_PROBE = """
SELECT p.updated_at, p.deleted_at, p.status, p.rating_count, p.rating_sum, p.stock_available,
       ARRAY(SELECT s.available FROM stock s WHERE s.product_id = p.id ORDER BY s.id) AS probe_stock
  FROM products p WHERE p.id = $1 AND p.tenant_id = $2
"""


def _probe_of(r: Any) -> tuple:
    # stock_available too: the document shows it, and it follows reservations only within the
    # summary's bound (engine.stock_summary), after the stock rows themselves.
    return (r["updated_at"], r["deleted_at"], r["status"], r["rating_count"], r["rating_sum"], r["stock_available"],
            tuple(r["probe_stock"]))


async def detail_probe(conn: asyncpg.Connection, tenant_id: UUID, product_id: UUID) -> tuple | None:
    """The probe of a product's document as it is now (None: the product is gone)."""
    r = await conn.fetchrow(_PROBE, product_id, tenant_id)
    return None if r is None else _probe_of(r)


async def product_detail(conn: asyncpg.Connection, principal: Principal, product_id: UUID) -> v.ProductDetail:
    return (await product_document(conn, principal, product_id))[0]


async def product_document(conn: asyncpg.Connection, principal: Principal,
                           product_id: UUID) -> tuple[v.ProductDetail, tuple]:
    """The detail and its probe, read in one statement (so the probe describes this detail)."""
    r = await conn.fetchrow(_FULL_DETAIL, product_id, principal.tenant_id, RELATED_LIMIT)
    if r is None or not sees_hidden(principal) and (r["deleted_at"] is not None or r["status"] != "ACTIVE"):
        raise ProductNotFound()
    detail = detail_view(principal, r)
    await price_lists.personalise(conn, principal, [detail])
    return detail, _probe_of(r)


def detail_view(principal: Principal, r: Any) -> v.ProductDetail:
    """The detail from one `_FULL_DETAIL` row (pure: no I/O)."""
    category = None
    if r["category_id"] is not None:
        category = v.DetailCategory(id=r["category_id"], name=r["category_name"], slug=r["category_slug"],
                                    breadcrumb=[v.CategoryRef(id=a[0], name=a[1], slug=a[2])
                                                for a in r["detail_breadcrumb"]])
    tracked = r["track_inventory"]
    return v.ProductDetail(
        id=r["id"], name=r["name"], slug=r["slug"], description=r["description"],
        short_description=r["short_description"],
        price=v.plain(price_for(principal, r["price"])),  # type: ignore[arg-type]
        compare_at_price=v.plain(r["compare_at_price"]), currency=r["currency"], sku=r["sku"],
        status=v.shown_status(r["status"], tracked, r["stock_available"]),  # type: ignore[arg-type]
        stock_quantity=stock_quantity(r), track_inventory=tracked, weight=r["weight_grams"],
        dimensions=v.Dimensions(length=v.plain(r["length_cm"]), width=v.plain(r["width_cm"]),
                                height=v.plain(r["height_cm"])),
        category=category,
        images=[v.DetailImage(id=i[0], url=i[1], thumbnail_url=i[2], alt=i[3], is_primary=i[4], position=i[5])
                for i in r["detail_images"]],
        variants=[v.Variant(id=x[0], name=x[1], sku=x[2],
                            price=v.plain(price_for(principal, x[3])),  # type: ignore[arg-type]
                            stock_quantity=(x[5] or 0) if tracked else None,
                            attributes={k: str(val) for k, val in json.loads(x[4]).items()})
                  for x in r["detail_variants"]],
        attributes={k: str(val) for k, val in r["attributes"].items()},
        tags=list(r["tags"]),
        rating=v.RatingSummary(average=v.rating_average(r["rating_sum"], r["rating_count"]),
                               count=r["rating_count"], distribution=v.Distribution.of(list(r["rating_distribution"]))),
        commission_percentage=v.plain(r["commission_percentage"]),  # type: ignore[arg-type]
        career_points_percentage=v.plain(r["career_points_percentage"]),  # type: ignore[arg-type]
        related_products=[v.RelatedProduct(id=x[0], name=x[1], slug=x[2],
                                           price=v.plain(price_for(principal, x[3])),  # type: ignore[arg-type]
                                           thumbnail_url=x[4]) for x in r["detail_related"]],
        created_at=r["created_at"], updated_at=r["updated_at"],
        max_per_order=r["max_per_order"], deleted_at=r["deleted_at"])
