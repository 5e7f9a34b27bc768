"""What the catalogue handlers ask of the store, each in its own connection or transaction.

The modules beside this one take a connection so they compose; a handler calls these, so
transactions open in the engine and never in web/. A write commits before its answer is read
back, as a client reading the product afterwards would see it.
"""

from __future__ import annotations

from uuid import UUID

from engine.catalogue import categories, product_edits, products, reviews
from engine.catalogue import views as v
from engine.catalogue.commands import (CategoryChanges, NewCategory, NewProduct, NewReview, ProductChanges,
                                       ReviewModeration)
from engine.catalogue.listing import ProductListing
from engine.db import Database
from engine.domain.principal import Principal

# ----------------------------------------------------------------------------- products


async def category_filter(db: Database, tenant_id: UUID, *, slug: str | None,
                          category_id: UUID | None) -> tuple[UUID, ...]:
    """The ids of the categories (and their subtrees) named by slug and/or id; both given:
    the categories in both."""
    async with db.connection() as conn:
        ids: set[UUID] | None = None
        if slug is not None:
            ids = set(await categories.subtree_ids(conn, tenant_id, slug=slug))
        if category_id is not None:
            by_id = set(await categories.subtree_ids(conn, tenant_id, category_id=category_id))
            ids = by_id if ids is None else ids & by_id
    return tuple(sorted(ids or ()))


async def product_page(db: Database, principal: Principal, listing: ProductListing) -> tuple[list[v.Product], int]:
    async with db.connection() as conn:
        return await products.list_products(conn, principal, listing)


async def product_detail(db: Database, principal: Principal, product_id: UUID) -> v.ProductDetail:
    async with db.connection() as conn:
        return await products.product_detail(conn, principal, product_id)


async def product_document(db: Database, principal: Principal, product_id: UUID) -> tuple[v.ProductDetail, tuple]:
    """The detail and its probe (what a cached copy of it is checked against), read together."""
    async with db.connection() as conn:
        return await products.product_document(conn, principal, product_id)


async def detail_probe(db: Database, tenant_id: UUID, product_id: UUID) -> tuple | None:
    """The probe of a product's document as it is now (None: the product is gone)."""
    async with db.connection() as conn:
        return await products.detail_probe(conn, tenant_id, product_id)


async def create_product(db: Database, principal: Principal, cmd: NewProduct, *, currency: str) -> v.ProductDetail:
    async with db.transaction() as conn:
        product_id = await product_edits.create_product(conn, principal.tenant_id, cmd, currency=currency)
    return await product_detail(db, principal, product_id)


async def change_product(db: Database, principal: Principal, product_id: UUID, cmd: ProductChanges) -> v.ProductDetail:
    async with db.transaction() as conn:
        await product_edits.change_product(conn, principal.tenant_id, product_id, cmd)
    return await product_detail(db, principal, product_id)


async def delete_product(db: Database, tenant_id: UUID, product_id: UUID) -> None:
    async with db.transaction() as conn:
        await product_edits.delete_product(conn, tenant_id, product_id)


# ----------------------------------------------------------------------------- categories

async def category_tree(db: Database, tenant_id: UUID, *, staff: bool, parent_id: UUID | None,
                        include_products: bool) -> list[v.Category]:
    async with db.connection() as conn:
        return await categories.category_tree(conn, tenant_id, staff=staff, parent_id=parent_id,
                                              include_products=include_products)


async def category_detail(db: Database, principal: Principal, category_id: UUID, *, staff: bool, page: int,
                          page_size: int, sort: str | None, order: str | None) -> tuple[v.CategoryDetail, int]:
    """A category with its breadcrumb, children, filters and one page of its subtree's
    products; and how many products the subtree has."""
    tenant = principal.tenant_id
    async with db.connection() as conn:
        row = await categories.category_row(conn, tenant, category_id, staff=staff)
        trail = [v.CategoryRef(id=a["id"], name=a["name"], slug=a["slug"])
                 for a in await categories.ancestors(conn, tenant, row["id"])]
        ids = await categories.subtree_ids(conn, tenant, category_id=row["id"])
        listing = ProductListing(tenant_id=tenant, page=page, page_size=page_size, category_ids=ids,
                                 sort=sort, order=order)
        items, total = await products.list_products(conn, principal, listing)
        detail = v.CategoryDetail(
            id=row["id"], name=row["name"], slug=row["slug"], description=row["description"],
            image_url=row["image_url"], parent=trail[-2] if len(trail) > 1 else None, breadcrumb=trail,
            children=await categories.children_with_counts(conn, tenant, row["id"], staff),
            products=items, filters=await categories.category_filters(conn, tenant, ids),
            parent_id=row["parent_id"], level=row["level"], position=row["position"], is_active=row["is_active"])
    return detail, total


async def category(db: Database, tenant_id: UUID, category_id: UUID) -> v.Category:
    """One category as the staff tree shows it (with its subtree and product counts)."""
    async with db.connection() as conn:
        row = await categories.category_row(conn, tenant_id, category_id, staff=True)
        tree = await categories.category_tree(conn, tenant_id, staff=True, parent_id=row["parent_id"],
                                              include_products=True)
    return next(c for c in tree if c.id == category_id)


async def create_category(db: Database, tenant_id: UUID, cmd: NewCategory) -> v.Category:
    async with db.transaction() as conn:
        category_id = await categories.create_category(conn, tenant_id, cmd)
    return await category(db, tenant_id, category_id)


async def change_category(db: Database, tenant_id: UUID, category_id: UUID, cmd: CategoryChanges) -> v.Category:
    async with db.transaction() as conn:
        await categories.change_category(conn, tenant_id, category_id, cmd)
    return await category(db, tenant_id, category_id)


async def delete_category(db: Database, tenant_id: UUID, category_id: UUID) -> None:
    async with db.transaction() as conn:
        await categories.delete_category(conn, tenant_id, category_id)


# ----------------------------------------------------------------------------- reviews

async def review_page(db: Database, principal: Principal, product_id: UUID, listing: reviews.ReviewListing, *,
                      moderator: bool) -> tuple[v.ReviewsPage, int]:
    async with db.connection() as conn:
        return await reviews.list_reviews(conn, principal, product_id, listing, moderator=moderator)


async def create_review(db: Database, principal: Principal, product_id: UUID, cmd: NewReview, *,
                        auto_publish_verified: bool) -> v.CreatedReview:
    async with db.transaction() as conn:
        return await reviews.create_review(conn, principal, product_id, cmd,
                                           auto_publish_verified=auto_publish_verified)


async def toggle_helpful(db: Database, principal: Principal, product_id: UUID, review_id: UUID) -> v.HelpfulVote:
    async with db.transaction() as conn:
        return await reviews.toggle_helpful(conn, principal, product_id, review_id)


async def moderation_queue(db: Database, principal: Principal, *, status: str, page: int,
                           page_size: int) -> tuple[list[v.Review], int]:
    async with db.connection() as conn:
        return await reviews.moderation_queue(conn, principal, status=status, page=page, page_size=page_size)


async def moderate_review(db: Database, principal: Principal, review_id: UUID, cmd: ReviewModeration) -> v.Review:
    async with db.transaction() as conn:
        return await reviews.moderate_review(conn, principal, review_id, cmd)
