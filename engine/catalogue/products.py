"""Reading products: the listing page, the detail, and the rows behind them.

Invariant: a customer never receives a product that is deleted or whose stored status is not
ACTIVE (it is PRODUCT_NOT_FOUND to them); staff (see access.sees_hidden) do.
"""

from __future__ import annotations

from typing import Any, Iterable
from uuid import UUID

import asyncpg

from engine.catalogue import views as v
from engine.catalogue.access import price_for, sees_hidden
from engine.catalogue.categories import ancestors
from engine.catalogue.listing import ProductListing, count_query, page_query
from engine.errors import ProductNotFound
from engine.principal import Principal

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
    return [product_view(principal, r, images.get(r["id"], [])) for r in rows]


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


async def product_detail(conn: asyncpg.Connection, principal: Principal, product_id: UUID) -> v.ProductDetail:
    r = await visible_product(conn, principal, product_id)
    images = await conn.fetch(
        "SELECT id, url, thumbnail_url, alt, is_primary, position FROM product_images"
        " WHERE product_id = $1 ORDER BY position, id", product_id)
    variants = await conn.fetch(
        "SELECT pv.id, pv.name, pv.sku, pv.price, pv.attributes, s.available"
        "  FROM product_variants pv LEFT JOIN stock s ON s.variant_id = pv.id"
        " WHERE pv.product_id = $1 AND pv.deleted_at IS NULL ORDER BY pv.position, pv.id", product_id)
    category = None
    if r["category_id"] is not None:
        trail = [v.CategoryRef(id=a["id"], name=a["name"], slug=a["slug"])
                 for a in await ancestors(conn, principal.tenant_id, r["category_id"])]
        category = v.DetailCategory(id=r["category_id"], name=r["category_name"], slug=r["category_slug"],
                                    breadcrumb=trail)
    related = await _related(conn, principal, r)
    return v.ProductDetail(
        id=r["id"], name=r["name"], slug=r["slug"], description=r["description"],
        short_description=r["short_description"],
        price=v.plain(price_for(principal, r["price"])),  # type: ignore[arg-type]
        compare_at_price=v.plain(r["compare_at_price"]), currency=r["currency"], sku=r["sku"],
        status=v.shown_status(r["status"], r["track_inventory"], r["stock_available"]),  # type: ignore[arg-type]
        stock_quantity=stock_quantity(r), track_inventory=r["track_inventory"], weight=r["weight_grams"],
        dimensions=v.Dimensions(length=v.plain(r["length_cm"]), width=v.plain(r["width_cm"]),
                                height=v.plain(r["height_cm"])),
        category=category,
        images=[v.DetailImage(id=i["id"], url=i["url"], thumbnail_url=i["thumbnail_url"], alt=i["alt"],
                              is_primary=i["is_primary"], position=i["position"]) for i in images],
        variants=[v.Variant(id=x["id"], name=x["name"], sku=x["sku"],
                            price=v.plain(price_for(principal, x["price"])),  # type: ignore[arg-type]
                            stock_quantity=(x["available"] or 0) if r["track_inventory"] else None,
                            attributes={k: str(val) for k, val in x["attributes"].items()}) for x in variants],
        attributes={k: str(val) for k, val in r["attributes"].items()},
        tags=list(r["tags"]),
        rating=v.RatingSummary(average=v.rating_average(r["rating_sum"], r["rating_count"]),
                               count=r["rating_count"], distribution=v.Distribution.of(list(r["rating_distribution"]))),
        commission_percentage=v.plain(r["commission_percentage"]),  # type: ignore[arg-type]
        career_points_percentage=v.plain(r["career_points_percentage"]),  # type: ignore[arg-type]
        related_products=related, created_at=r["created_at"], updated_at=r["updated_at"],
        max_per_order=r["max_per_order"], deleted_at=r["deleted_at"])


async def _related(conn: asyncpg.Connection, principal: Principal, r: Any) -> list[v.RelatedProduct]:
    """Best sellers of the same category (visible ones only, whoever asks)."""
    if r["category_id"] is None:
        return []
    rows = await conn.fetch(
        "SELECT p.id, p.name, p.slug, p.price,"
        "       (SELECT i.thumbnail_url FROM product_images i WHERE i.product_id = p.id"
        "         ORDER BY i.is_primary DESC, i.position, i.id LIMIT 1) AS thumbnail_url"
        "  FROM products p"
        " WHERE p.tenant_id = $1 AND p.category_id = $2 AND p.deleted_at IS NULL AND p.status = 'ACTIVE'"
        "   AND p.id <> $3"
        " ORDER BY p.units_sold DESC, p.id LIMIT $4",
        principal.tenant_id, r["category_id"], r["id"], RELATED_LIMIT)
    return [v.RelatedProduct(id=x["id"], name=x["name"], slug=x["slug"],
                             price=v.plain(price_for(principal, x["price"])),  # type: ignore[arg-type]
                             thumbnail_url=x["thumbnail_url"]) for x in rows]
