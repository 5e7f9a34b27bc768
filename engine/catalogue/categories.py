"""The category tree: reading it (tree, breadcrumb, subtree) and staff edits.

Invariants:
- the tree has no cycles: every move runs under a per-tenant advisory lock and checks that the
  new parent is not the category itself or one of its descendants;
- `level` is the depth (roots are 0), kept for the whole subtree when a category moves;
- categories.product_count counts visible products directly in the category (migration 0003
  keeps it); what the API shows as productCount is the sum over the subtree.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any
from uuid import UUID

import asyncpg

from engine.catalogue import views as v
from engine.catalogue.commands import CategoryChanges, NewCategory, slugify, supplied
from engine.domain.errors import CategoryNotFound, Conflict, ValidationError

_ANCESTORS = """
WITH RECURSIVE up AS (
    SELECT id, parent_id, name, slug, 0 AS depth FROM categories WHERE id = $2 AND tenant_id = $1
    UNION ALL
    SELECT c.id, c.parent_id, c.name, c.slug, up.depth + 1
      FROM categories c JOIN up ON c.id = up.parent_id
     WHERE c.tenant_id = $1 AND up.depth < 100
)
SELECT id, name, slug FROM up ORDER BY depth DESC
"""

_SUBTREE = """
WITH RECURSIVE down AS (
    SELECT id, 0 AS depth FROM categories WHERE id = $2 AND tenant_id = $1
    UNION ALL
    SELECT c.id, down.depth + 1 FROM categories c JOIN down ON c.parent_id = down.id
     WHERE c.tenant_id = $1 AND down.depth < 100
)
SELECT id FROM down
"""


async def ancestors(conn: asyncpg.Connection, tenant_id: UUID, category_id: UUID) -> list[asyncpg.Record]:
    """The breadcrumb: root first, the category itself last."""
    return await conn.fetch(_ANCESTORS, tenant_id, category_id)


async def subtree_ids(conn: asyncpg.Connection, tenant_id: UUID, *, category_id: UUID | None = None,
                      slug: str | None = None) -> tuple[UUID, ...]:
    """The category and all its descendants; () when it does not exist."""
    if slug is not None:
        category_id = await conn.fetchval("SELECT id FROM categories WHERE tenant_id = $1 AND slug = $2",
                                          tenant_id, slug)
        if category_id is None:
            return ()
    return tuple(r["id"] for r in await conn.fetch(_SUBTREE, tenant_id, category_id))


async def _all(conn: asyncpg.Connection, tenant_id: UUID, staff: bool) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT * FROM categories WHERE tenant_id = $1 AND ($2 OR is_active) ORDER BY position, name, id",
        tenant_id, staff)


def _subtree_counts(rows: list[Any]) -> dict[UUID, int]:
    children: dict[UUID | None, list[Any]] = {}
    for r in rows:
        children.setdefault(r["parent_id"], []).append(r)
    totals: dict[UUID, int] = {}

    def total(r: Any) -> int:
        if r["id"] not in totals:
            totals[r["id"]] = r["product_count"] + sum(total(c) for c in children.get(r["id"], []))
        return totals[r["id"]]

    for r in rows:
        total(r)
    return totals


async def category_tree(conn: asyncpg.Connection, tenant_id: UUID, *, staff: bool, parent_id: UUID | None,
                        include_products: bool) -> list[v.Category]:
    """Categories under `parent_id` (roots when None), each with its whole subtree."""
    rows = await _all(conn, tenant_id, staff)
    known = {r["id"] for r in rows}
    counts = _subtree_counts(rows)
    children: dict[UUID | None, list[Any]] = {}
    for r in rows:
        # A category whose parent is hidden (inactive) is hidden with it.
        if r["parent_id"] is None or r["parent_id"] in known:
            children.setdefault(r["parent_id"], []).append(r)

    def build(r: Any) -> v.Category:
        return v.Category(id=r["id"], name=r["name"], slug=r["slug"], description=r["description"],
                          image_url=r["image_url"], parent_id=r["parent_id"], level=r["level"],
                          position=r["position"], product_count=counts[r["id"]] if include_products else None,
                          children=[build(c) for c in children.get(r["id"], [])], is_active=r["is_active"])

    return [build(r) for r in children.get(parent_id, [])]


async def category_row(conn: asyncpg.Connection, tenant_id: UUID, category_id: UUID, *,
                       staff: bool) -> asyncpg.Record:
    row = await conn.fetchrow("SELECT * FROM categories WHERE id = $1 AND tenant_id = $2", category_id, tenant_id)
    if row is None or not (staff or row["is_active"]):
        raise CategoryNotFound()
    return row


async def children_with_counts(conn: asyncpg.Connection, tenant_id: UUID, category_id: UUID,
                               staff: bool) -> list[v.ChildCategory]:
    rows = await _all(conn, tenant_id, staff)
    counts = _subtree_counts(rows)
    return [v.ChildCategory(id=r["id"], name=r["name"], slug=r["slug"], product_count=counts[r["id"]])
            for r in rows if r["parent_id"] == category_id]


async def category_filters(conn: asyncpg.Connection, tenant_id: UUID, ids: tuple[UUID, ...]) -> v.CategoryFilters:
    """Price range and tag counts over the visible products of a subtree."""
    low, high = await conn.fetchrow(
        "SELECT min(price), max(price) FROM products p WHERE p.tenant_id = $1 AND p.category_id = ANY($2::uuid[])"
        " AND p.deleted_at IS NULL AND p.status = 'ACTIVE'", tenant_id, list(ids))
    tags = await conn.fetch(
        "SELECT t AS name, count(*)::int AS count FROM products p, unnest(p.tags) t"
        " WHERE p.tenant_id = $1 AND p.category_id = ANY($2::uuid[]) AND p.deleted_at IS NULL AND p.status = 'ACTIVE'"
        " GROUP BY t ORDER BY count(*) DESC, t LIMIT 50", tenant_id, list(ids))
    zero = v.plain(low if low is not None else Decimal(0))
    return v.CategoryFilters(price_range=v.PriceRange(min=zero, max=v.plain(high if high is not None else Decimal(0))),  # type: ignore[arg-type]
                             tags=[v.TagCount(name=t["name"], count=t["count"]) for t in tags])


# ----------------------------------------------------------------------------- staff edits

async def _lock_tree(conn: asyncpg.Connection, tenant_id: UUID) -> None:
    # One tree edit at a time per tenant: two concurrent moves could otherwise each pass the
    # cycle check and together form a cycle.
    await conn.execute("SELECT pg_advisory_xact_lock(hashtext('category-tree:' || $1::uuid::text))", tenant_id)


async def _parent_level(conn: asyncpg.Connection, tenant_id: UUID, parent_id: UUID | None) -> int:
    if parent_id is None:
        return -1
    level = await conn.fetchval("SELECT level FROM categories WHERE id = $1 AND tenant_id = $2", parent_id, tenant_id)
    if level is None:
        raise CategoryNotFound("Parent category not found.", details={"parentId": ["not found"]})
    return level


def _slug_conflict(exc: asyncpg.UniqueViolationError) -> Conflict:
    return Conflict("A category with this slug already exists.", details={"slug": ["already exists"]})


async def create_category(conn: asyncpg.Connection, tenant_id: UUID, cmd: NewCategory) -> UUID:
    await _lock_tree(conn, tenant_id)
    level = await _parent_level(conn, tenant_id, cmd.parent_id) + 1
    try:
        return await conn.fetchval(
            "INSERT INTO categories (tenant_id, parent_id, name, slug, description, image_url, level, position, is_active)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
            tenant_id, cmd.parent_id, cmd.name, cmd.slug or slugify(cmd.name), cmd.description, cmd.image_url,
            level, cmd.position, cmd.is_active)
    except asyncpg.UniqueViolationError as exc:
        raise _slug_conflict(exc) from None


async def change_category(conn: asyncpg.Connection, tenant_id: UUID, category_id: UUID, cmd: CategoryChanges) -> None:
    """Apply the supplied fields; a move re-levels the subtree and never creates a cycle."""
    await _lock_tree(conn, tenant_id)
    row = await category_row(conn, tenant_id, category_id, staff=True)
    fields = supplied(cmd)
    if "parent_id" in fields and fields["parent_id"] != row["parent_id"]:
        new_parent = fields["parent_id"]
        if new_parent is not None:
            trail = {a["id"] for a in await ancestors(conn, tenant_id, new_parent)}  # type: ignore[arg-type]
            if not trail:
                raise CategoryNotFound("Parent category not found.", details={"parentId": ["not found"]})
            if category_id in trail:
                raise ValidationError("A category cannot be moved under itself or its descendants.",
                                      details={"parentId": ["would create a cycle"]})
    columns = {"parent_id", "name", "slug", "description", "image_url", "position", "is_active"}
    sets, args = [], [category_id, tenant_id]
    for name, value in fields.items():
        if name in columns:
            args.append(value)
            sets.append(f"{name} = ${len(args)}")
    if not sets:
        return
    try:
        await conn.execute(f"UPDATE categories SET {', '.join(sets)}, updated_at = now()"
                           " WHERE id = $1 AND tenant_id = $2", *args)
    except asyncpg.UniqueViolationError as exc:
        raise _slug_conflict(exc) from None
    if "parent_id" in fields:
        await _relevel(conn, tenant_id, category_id)


async def _relevel(conn: asyncpg.Connection, tenant_id: UUID, category_id: UUID) -> None:
    base = await _parent_level(conn, tenant_id, await conn.fetchval(
        "SELECT parent_id FROM categories WHERE id = $1", category_id)) + 1
    await conn.execute(
        "WITH RECURSIVE down AS ("
        "  SELECT id, $3::int AS level FROM categories WHERE id = $2 AND tenant_id = $1"
        "  UNION ALL SELECT c.id, down.level + 1 FROM categories c JOIN down ON c.parent_id = down.id"
        "   WHERE c.tenant_id = $1 AND down.level < 100)"
        " UPDATE categories c SET level = down.level FROM down WHERE c.id = down.id AND c.level <> down.level",
        tenant_id, category_id, base)


async def delete_category(conn: asyncpg.Connection, tenant_id: UUID, category_id: UUID) -> None:
    """Only an empty leaf can go: children or live products are a 409."""
    await _lock_tree(conn, tenant_id)
    await category_row(conn, tenant_id, category_id, staff=True)
    if await conn.fetchval("SELECT EXISTS (SELECT 1 FROM categories WHERE parent_id = $1)", category_id):
        raise Conflict("The category has subcategories; move or delete them first.")
    if await conn.fetchval("SELECT EXISTS (SELECT 1 FROM products WHERE category_id = $1 AND deleted_at IS NULL)",
                           category_id):
        raise Conflict("The category still has products; move them first.")
    # Soft-deleted products keep their history in order items, not in their category link.
    await conn.execute("UPDATE products SET category_id = NULL WHERE category_id = $1", category_id)
    await conn.execute("DELETE FROM categories WHERE id = $1 AND tenant_id = $2", category_id, tenant_id)
