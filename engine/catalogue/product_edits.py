"""Staff edits of products: create, change the supplied fields, soft delete.

Invariants:
- SKU and slug are unique per tenant among live products (409 CONFLICT otherwise);
- stock rows are created with the product (one without variants, else one per variant) and
  afterwards only moved through engine.stock_levels, which never overwrites reserved or sold;
- a soft-deleted product disappears from listings and customer reads; order items keep their
  own name / sku snapshot, so orders that reference it are unaffected;
- image URLs are stored as given, never fetched by the server.
"""

from __future__ import annotations

from uuid import UUID

import asyncpg

from engine import stock_levels
from engine.catalogue.commands import NewImage, NewProduct, ProductChanges, slugify, supplied
from engine.domain.errors import CategoryNotFound, Conflict, ProductNotFound, ValidationError

_SIMPLE_COLUMNS = {
    "name": "name", "slug": "slug", "sku": "sku", "price": "price", "description": "description",
    "short_description": "short_description", "compare_at_price": "compare_at_price", "currency": "currency",
    "status": "status", "track_inventory": "track_inventory", "weight": "weight_grams",
    "category_id": "category_id", "attributes": "attributes", "tags": "tags",
    "commission_percentage": "commission_percentage", "career_points_percentage": "career_points_percentage",
    "max_per_order": "max_per_order",
}


def _conflict(exc: asyncpg.UniqueViolationError) -> Conflict:
    name = exc.constraint_name or ""
    if "slug" in name:
        return Conflict("A product with this slug already exists.", details={"slug": ["already exists"]})
    if "variant" in name:
        return Conflict("A variant with this SKU already exists.", details={"variants": ["sku already exists"]})
    return Conflict("A product with this SKU already exists.", details={"sku": ["already exists"]})


async def _check_category(conn: asyncpg.Connection, tenant_id: UUID, category_id: UUID | None) -> None:
    if category_id is not None and not await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM categories WHERE id = $1 AND tenant_id = $2)", category_id, tenant_id):
        raise CategoryNotFound(details={"categoryId": ["not found"]})


async def _insert_images(conn: asyncpg.Connection, tenant_id: UUID, product_id: UUID, images: list[NewImage]) -> None:
    if not images:
        return
    # Exactly one primary image: the one marked first, else the first one.
    primary = next((i for i, img in enumerate(images) if img.is_primary), 0)
    await conn.executemany(
        "INSERT INTO product_images (tenant_id, product_id, url, thumbnail_url, alt, position, is_primary)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7)",
        [(tenant_id, product_id, img.url, img.thumbnail_url or img.url, img.alt,
          img.position if img.position is not None else i + 1, i == primary) for i, img in enumerate(images)])


async def create_product(conn: asyncpg.Connection, tenant_id: UUID, cmd: NewProduct, *, currency: str) -> UUID:
    if cmd.variants and cmd.stock_quantity:
        raise ValidationError("Set stock per variant when a product has variants.",
                              details={"stockQuantity": ["set stockQuantity on each variant instead"]})
    if len({x.sku for x in cmd.variants}) != len(cmd.variants):
        raise ValidationError("Variant SKUs must differ.", details={"variants": ["duplicate sku"]})
    await _check_category(conn, tenant_id, cmd.category_id)
    dims = cmd.dimensions
    try:
        product_id = await conn.fetchval(
            "INSERT INTO products (tenant_id, category_id, name, slug, description, short_description, price,"
            " compare_at_price, currency, sku, status, track_inventory, weight_grams, length_cm, width_cm, height_cm,"
            " attributes, tags, commission_percentage, career_points_percentage, max_per_order)"
            " VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18,$19,$20,$21) RETURNING id",
            tenant_id, cmd.category_id, cmd.name, cmd.slug or slugify(cmd.name), cmd.description,
            cmd.short_description, cmd.price, cmd.compare_at_price, cmd.currency or currency, cmd.sku, cmd.status,
            cmd.track_inventory, cmd.weight, dims.length if dims else None, dims.width if dims else None,
            dims.height if dims else None, cmd.attributes, list(dict.fromkeys(cmd.tags)),
            cmd.commission_percentage, cmd.career_points_percentage, cmd.max_per_order)
        for position, variant in enumerate(cmd.variants):
            variant_id = await conn.fetchval(
                "INSERT INTO product_variants (tenant_id, product_id, name, sku, price, attributes, position)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
                tenant_id, product_id, variant.name, variant.sku, variant.price, variant.attributes, position)
            await stock_levels.create_stock(conn, tenant_id=tenant_id, product_id=product_id,
                                            variant_id=variant_id, on_hand=variant.stock_quantity)
    except asyncpg.UniqueViolationError as exc:
        raise _conflict(exc) from None
    if not cmd.variants:
        await stock_levels.create_stock(conn, tenant_id=tenant_id, product_id=product_id, variant_id=None,
                                        on_hand=cmd.stock_quantity)
    await _insert_images(conn, tenant_id, product_id, cmd.images)
    return product_id


async def change_product(conn: asyncpg.Connection, tenant_id: UUID, product_id: UUID, cmd: ProductChanges) -> None:
    """Change only the supplied fields of a live product."""
    if not await conn.fetchval("SELECT EXISTS (SELECT 1 FROM products WHERE id = $1 AND tenant_id = $2"
                               " AND deleted_at IS NULL)", product_id, tenant_id):
        raise ProductNotFound()
    fields = supplied(cmd)
    if "category_id" in fields:
        await _check_category(conn, tenant_id, fields["category_id"])  # type: ignore[arg-type]
    if "tags" in fields:
        fields["tags"] = list(dict.fromkeys(fields["tags"]))  # type: ignore[arg-type]
    sets, args = [], [product_id, tenant_id]
    for name, value in fields.items():
        if name in _SIMPLE_COLUMNS:
            args.append(value)
            sets.append(f"{_SIMPLE_COLUMNS[name]} = ${len(args)}")
    if "dimensions" in fields:
        dims = fields["dimensions"]
        for axis in ("length", "width", "height"):
            args.append(getattr(dims, axis))
            sets.append(f"{axis}_cm = ${len(args)}")
    try:
        await conn.execute(f"UPDATE products SET {', '.join([*sets, 'updated_at = now()'])}"
                           " WHERE id = $1 AND tenant_id = $2", *args)
    except asyncpg.UniqueViolationError as exc:
        raise _conflict(exc) from None
    if "images" in fields:
        await conn.execute("DELETE FROM product_images WHERE product_id = $1", product_id)
        await _insert_images(conn, tenant_id, product_id, fields["images"])  # type: ignore[arg-type]
    if "stock_quantity" in fields:
        stock_id = await conn.fetchval("SELECT id FROM stock WHERE product_id = $1 AND variant_id IS NULL",
                                       product_id)
        if stock_id is None:
            raise ValidationError("This product's stock is kept per variant.",
                                  details={"stockQuantity": ["product has variants"]})
        await stock_levels.set_available(conn, stock_id, fields["stock_quantity"], tenant_id=tenant_id)  # type: ignore[arg-type]


async def delete_product(conn: asyncpg.Connection, tenant_id: UUID, product_id: UUID) -> None:
    """Soft delete: the row stays for the orders that reference it."""
    done = await conn.fetchval(
        "UPDATE products SET deleted_at = now(), updated_at = now()"
        " WHERE id = $1 AND tenant_id = $2 AND deleted_at IS NULL RETURNING id", product_id, tenant_id)
    if done is None:
        raise ProductNotFound()
