"""Staff edits of products: create, change the supplied fields, soft delete.

Invariants:
- SKU and slug are unique per tenant among live products (409 CONFLICT otherwise);
- stock rows are created with the product (one without variants, else one per variant) and
  afterwards only moved through engine.stock_levels, which never overwrites reserved or sold;
- a soft-deleted product disappears from listings and customer reads; order items keep their
  own name / sku snapshot, so orders that reference it are unaffected;
- image URLs are stored as given, never fetched by the server;
- a change or delete notifies every process's product cache on commit (engine.catalogue.changes).
"""

from __future__ import annotations

from uuid import UUID

import asyncpg
from msgspec import UNSET

from engine import stock_levels
from engine.catalogue.changes import notify_product_changed
from engine.catalogue.commands import NewImage, NewProduct, ProductChanges, VariantChange, slugify, supplied
from engine.domain.errors import CategoryNotFound, Conflict, ProductNotFound, ValidationError, VariantNotFound

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


async def _resolve_category(conn: asyncpg.Connection, tenant_id: UUID, category_id: UUID | None,
                            slug: str | None) -> UUID | None:
    """The category named by id (storefront) or slug (platform); both given must be the same one."""
    if slug is None:
        return category_id
    found = await conn.fetchval("SELECT id FROM categories WHERE tenant_id = $1 AND slug = $2", tenant_id, slug)
    if found is None:
        raise CategoryNotFound(details={"category": ["no category with this slug"]})
    if category_id is not None and category_id != found:
        raise ValidationError(details={"category": ["names another category than categoryId; send one of them"]})
    return found


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
    category_id = await _resolve_category(conn, tenant_id, cmd.category_id, cmd.category)
    await _check_category(conn, tenant_id, category_id)
    dims = cmd.dimensions
    try:
        product_id = await conn.fetchval(
            "INSERT INTO products (tenant_id, category_id, name, slug, description, short_description, price,"
            " compare_at_price, currency, sku, status, track_inventory, weight_grams, length_cm, width_cm, height_cm,"
            " attributes, tags, commission_percentage, career_points_percentage, max_per_order)"
            " VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18,$19,$20,$21) RETURNING id",
            tenant_id, category_id, cmd.name, cmd.slug or slugify(cmd.name), cmd.description,
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
    if fields.get("category") is not None:
        fields["category_id"] = await _resolve_category(
            conn, tenant_id, fields.get("category_id"), fields["category"])  # type: ignore[arg-type]
    elif "category" in fields and "category_id" not in fields:  # the platform's `category: null`
        fields["category_id"] = None
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
    if "variants" in fields:
        await _change_variants(conn, tenant_id, product_id, fields["variants"])  # type: ignore[arg-type]
    await notify_product_changed(conn, [product_id])


_VARIANT_COLUMNS = ("name", "sku", "price", "attributes")


async def _change_variants(conn: asyncpg.Connection, tenant_id: UUID, product_id: UUID,
                           changes: list[VariantChange]) -> None:
    """PATCH `variants`: listed variants change or are removed (soft delete, so order items keep
    pointing at them), entries without an id are added; unlisted ones stay as they are. A
    product sold without variants keeps that shape (its one stock row may hold reservations)."""
    if await conn.fetchval("SELECT EXISTS (SELECT 1 FROM stock WHERE product_id = $1 AND variant_id IS NULL)",
                           product_id):
        raise ValidationError("This product has no variants; its stock is kept on the product.",
                              details={"variants": ["product was created without variants"]})
    ids = [c.id for c in changes if c.id is not None]
    skus = [c.sku for c in changes if c.sku is not UNSET]
    if len(set(ids)) != len(ids) or len(set(skus)) != len(skus):
        raise ValidationError(details={"variants": ["each variant id and sku at most once"]})
    live = {r["id"]: r["stock_id"] for r in await conn.fetch(
        "SELECT v.id, s.id AS stock_id FROM product_variants v LEFT JOIN stock s ON s.variant_id = v.id"
        " WHERE v.product_id = $1 AND v.deleted_at IS NULL FOR UPDATE OF v", product_id)}
    unknown = [str(i) for i in ids if i not in live]
    if unknown:
        raise VariantNotFound(details={"variants": [f"not a variant of this product: {', '.join(unknown)}"]})
    removed = {c.id for c in changes if c.deleted}
    if len(live) - len(removed) + sum(c.id is None for c in changes) < 1:
        raise ValidationError(details={"variants": ["a product with variants keeps at least one"]})
    position = await conn.fetchval("SELECT coalesce(max(position), -1) FROM product_variants WHERE product_id = $1",
                                   product_id)
    try:
        for change in changes:
            if change.id in removed:
                await conn.execute("UPDATE product_variants SET deleted_at = now() WHERE id = $1", change.id)
                if live[change.id] is not None:  # nothing more to sell; reserved and sold units stay
                    await stock_levels.set_available(conn, live[change.id], 0, tenant_id=tenant_id)
                continue
            variant_id = change.id
            if variant_id is None:
                position += 1
                variant_id = await conn.fetchval(
                    "INSERT INTO product_variants (tenant_id, product_id, name, sku, price, attributes, position)"
                    " VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id", tenant_id, product_id, change.name,
                    change.sku, change.price, {} if change.attributes is UNSET else change.attributes, position)
                await stock_levels.create_stock(conn, tenant_id=tenant_id, product_id=product_id, variant_id=variant_id,
                                                on_hand=0 if change.stock_quantity is UNSET else change.stock_quantity)
                continue
            values = {c: getattr(change, c) for c in _VARIANT_COLUMNS if getattr(change, c) is not UNSET}
            if values:
                sets = ", ".join(f"{c} = ${i + 2}" for i, c in enumerate(values))
                await conn.execute(f"UPDATE product_variants SET {sets} WHERE id = $1", variant_id, *values.values())
            if change.stock_quantity is not UNSET:
                await stock_levels.set_available(conn, live[variant_id], change.stock_quantity, tenant_id=tenant_id)
    except asyncpg.UniqueViolationError as exc:
        raise _conflict(exc) from None


async def delete_product(conn: asyncpg.Connection, tenant_id: UUID, product_id: UUID) -> None:
    """Soft delete: the row stays for the orders that reference it."""
    done = await conn.fetchval(
        "UPDATE products SET deleted_at = now(), updated_at = now()"
        " WHERE id = $1 AND tenant_id = $2 AND deleted_at IS NULL RETURNING id", product_id, tenant_id)
    if done is None:
        raise ProductNotFound()
    await notify_product_changed(conn, [product_id])
