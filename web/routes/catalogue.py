"""Catalogue routes: products, categories, reviews (thin: decode, call engine.catalogue, render).

Both documents' spellings are accepted: `sortBy`/`sort`, `sortOrder`/`order` (the storefront
one wins when both are given), `category` (slug) and `categoryId`, `status` and `active`.
Over-large page sizes are 400, never clamped.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Literal
from uuid import UUID

import msgspec
from aiohttp import web

from engine.catalogue import reviews
from engine.catalogue import service as catalogue
from engine.catalogue import views as v
from engine.catalogue.access import moderates_reviews, sees_hidden
from engine.catalogue.commands import (check_amount, CategoryChanges, NewCategory, NewProduct, NewReview, ProductChanges,
                                       ReviewModeration)
from engine.catalogue.listing import ProductListing, search_query
from engine.domain.errors import ValidationError
from engine.domain.principal import Principal
from web import keys, product_reads
from web.api import OPTIONAL, REQUIRED, Reply, Req, RouteTable
from web.envelope import Pagination

routes = RouteTable()
category_routes = RouteTable()
review_routes = RouteTable()

Page = Annotated[int, msgspec.Meta(ge=1, le=1_000_000)]
PriceFilter = Decimal  # bounded in ProductsQuery.__post_init__ (msgspec cannot bound Decimals)
Direction = Literal["asc", "desc", "ASC", "DESC"]
ProductSort = Literal["price", "name", "createdAt", "popularity", "stock"]


class Query(msgspec.Struct, rename="camel"):
    pass


class ProductsQuery(Query):
    page: Page = 1
    page_size: Annotated[int, msgspec.Meta(ge=1, le=100)] = 20
    search: Annotated[str, msgspec.Meta(max_length=200)] | None = None
    category: Annotated[str, msgspec.Meta(min_length=1, max_length=120)] | None = None
    category_id: UUID | None = None
    status: Literal["ACTIVE", "OUT_OF_STOCK", "DRAFT", "ARCHIVED"] | None = None
    active: bool | None = None
    min_price: PriceFilter | None = None
    max_price: PriceFilter | None = None
    tags: Annotated[str, msgspec.Meta(max_length=1000)] | None = None
    sort_by: ProductSort | None = None
    sort: ProductSort | None = None
    sort_order: Direction | None = None
    order: Direction | None = None
    include_deleted: bool = False

    def __post_init__(self) -> None:
        check_amount("minPrice", self.min_price)
        check_amount("maxPrice", self.max_price)


class CategoryProductsQuery(Query):
    page: Page = 1
    page_size: Annotated[int, msgspec.Meta(ge=1, le=100)] = 20
    sort_by: ProductSort | None = None
    sort: ProductSort | None = None
    sort_order: Direction | None = None
    order: Direction | None = None


class CategoriesQuery(Query):
    parent_id: Annotated[str, msgspec.Meta(max_length=40)] | None = None
    include_products: bool = False


ReviewSort = Literal["createdAt", "rating", "helpful"]


class ReviewsQuery(Query):
    page: Page = 1
    page_size: Annotated[int, msgspec.Meta(ge=1, le=50)] = 10
    rating: Annotated[int, msgspec.Meta(ge=1, le=5)] | None = None
    sort_by: ReviewSort | None = None
    sort: ReviewSort | None = None
    sort_order: Direction | None = None
    order: Direction | None = None
    status: Literal["PENDING", "PUBLISHED", "REJECTED"] | None = None


class ModerationQuery(Query):
    status: Literal["PENDING", "PUBLISHED", "REJECTED"] = "PENDING"
    page: Page = 1
    page_size: Annotated[int, msgspec.Meta(ge=1, le=50)] = 20


class Deleted(msgspec.Struct, rename="camel"):
    id: UUID
    deleted: bool


def _order(q: msgspec.Struct) -> str | None:
    chosen = q.sort_order or q.order  # type: ignore[attr-defined]
    return chosen.lower() if chosen else None


def _tags(raw: str | None) -> tuple[str, ...]:
    if raw is None:
        return ()
    tags = tuple(dict.fromkeys(t.strip() for t in raw.split(",") if t.strip()))
    if len(tags) > 20 or any(len(t) > 50 for t in tags):
        raise ValidationError("Invalid query parameters.", details={"tags": ["at most 20 tags of at most 50 characters"]})
    return tags


async def _listing(req: Req, q: ProductsQuery) -> ProductListing:
    staff = sees_hidden(req.principal)
    details: dict[str, list[str]] = {}
    if q.min_price is not None and q.max_price is not None and q.min_price > q.max_price:
        details["minPrice"] = ["must not be greater than maxPrice"]
    if not staff and q.status in ("DRAFT", "ARCHIVED"):
        details["status"] = ["must be ACTIVE or OUT_OF_STOCK"]
    if not staff and q.include_deleted:
        details["includeDeleted"] = ["requires products:read"]
    if details:
        raise ValidationError("Invalid query parameters.", details=details)
    category_ids = None
    if q.category is not None or q.category_id is not None:
        category_ids = await catalogue.category_filter(req.app[keys.DB], req.tenant_id, slug=q.category,
                                                       category_id=q.category_id)
    search = None
    if q.search is not None:
        search = search_query(q.search)
        if search is None:
            category_ids = ()  # nothing searchable in the text: nothing matches
    return ProductListing(
        tenant_id=req.tenant_id, page=q.page, page_size=q.page_size, staff=staff, include_deleted=q.include_deleted,
        status=q.status, active=q.active, category_ids=category_ids, min_price=q.min_price, max_price=q.max_price,
        tags=_tags(q.tags), search=search, sort=q.sort_by or q.sort, order=_order(q))


@routes.get("/products", query=ProductsQuery, response=v.ProductsPage, auth=OPTIONAL, policy="catalogue",
            paginated=True, tag="Products", summary="List products")
async def list_products(req: Req) -> Reply:
    """Filter, search and sort products. Relevance order when searching without a sort."""
    listing = await _listing(req, req.query)
    items, total = await catalogue.product_page(req.app[keys.DB], req.principal, listing)
    return Reply(v.ProductsPage(products=items), meta={"pagination": Pagination.of(total, listing.page, listing.page_size)})


@routes.get("/products/{id}", response=v.ProductDetail, auth=OPTIONAL, policy="catalogue",
            errors=("PRODUCT_NOT_FOUND",), tag="Products", summary="Product details")
async def get_product(req: Req) -> web.Response:
    """Anonymous reads come from the process's cache (see web.product_reads); `ETag`, and a
    matching `If-None-Match` is `304`."""
    return await product_reads.product_response(req, req.params["id"])



@routes.post("/products", body=NewProduct, response=v.ProductDetail, status=201, auth=REQUIRED,
             permission="products:write", policy="admin", errors=("CONFLICT", "CATEGORY_NOT_FOUND"),
             tag="Products", summary="Create a product")
async def create_product(req: Req) -> v.ProductDetail:
    """Image URLs are stored as given; the server never fetches them."""
    return await catalogue.create_product(req.app[keys.DB], req.principal, req.body,
                                          currency=req.app[keys.SETTINGS].currency)


@routes.patch("/products/{id}", body=ProductChanges, response=v.ProductDetail, auth=REQUIRED,
              permission="products:write", policy="admin",
              errors=("PRODUCT_NOT_FOUND", "CONFLICT", "CATEGORY_NOT_FOUND", "VARIANT_NOT_FOUND"), tag="Products",
              summary="Change the supplied fields of a product")
async def change_product(req: Req) -> v.ProductDetail:
    detail = await catalogue.change_product(req.app[keys.DB], req.principal, req.params["id"], req.body)
    product_reads.forget(req.app, [req.params["id"]])
    return detail


@routes.delete("/products/{id}", response=Deleted, auth=REQUIRED, permission="products:write", policy="admin",
               errors=("PRODUCT_NOT_FOUND",), tag="Products", summary="Soft-delete a product")
async def delete_product(req: Req) -> Deleted:
    """Orders referencing the product are unaffected (they keep its name and sku)."""
    await catalogue.delete_product(req.app[keys.DB], req.tenant_id, req.params["id"])
    product_reads.forget(req.app, [req.params["id"]])
    return Deleted(id=req.params["id"], deleted=True)


# ----------------------------------------------------------------------------- categories

@category_routes.get("/categories", query=CategoriesQuery, response=v.CategoriesPage, auth=OPTIONAL,
                     policy="categories", paginated=True, tag="Categories", summary="Category tree")
async def list_categories(req: Req) -> Reply:
    """`parentId` (a UUID, or `null` for the roots) picks the level; each item carries its subtree."""
    raw = req.query.parent_id
    parent: UUID | None = None
    if raw not in (None, "", "null"):
        try:
            parent = UUID(raw)
        except ValueError:
            raise ValidationError("Invalid query parameters.", details={"parentId": ["must be a UUID or null"]}) from None
    tree = await catalogue.category_tree(req.app[keys.DB], req.tenant_id, staff=_staff(req.principal),
                                         parent_id=parent, include_products=req.query.include_products)
    return Reply(v.CategoriesPage(categories=tree), meta={"pagination": Pagination.whole(len(tree))})


def _staff(principal: Principal) -> bool:
    return principal.is_staff or principal.can("categories:write")


@category_routes.get("/categories/{id}", query=CategoryProductsQuery, response=v.CategoryDetail, auth=OPTIONAL,
                     policy="categories", paginated=True, errors=("CATEGORY_NOT_FOUND",), tag="Categories",
                     summary="Category with its products")
async def get_category(req: Req) -> Reply:
    q: CategoryProductsQuery = req.query
    detail, total = await catalogue.category_detail(req.app[keys.DB], req.principal, req.params["id"],
                                                    staff=_staff(req.principal), page=q.page, page_size=q.page_size,
                                                    sort=q.sort_by or q.sort, order=_order(q))
    return Reply(detail, meta={"pagination": Pagination.of(total, q.page, q.page_size)})


@category_routes.post("/categories", body=NewCategory, response=v.Category, status=201, auth=REQUIRED,
                      permission="categories:write", policy="admin", errors=("CONFLICT", "CATEGORY_NOT_FOUND"),
                      tag="Categories", summary="Create a category")
async def create_category(req: Req) -> v.Category:
    return await catalogue.create_category(req.app[keys.DB], req.tenant_id, req.body)


@category_routes.patch("/categories/{id}", body=CategoryChanges, response=v.Category, auth=REQUIRED,
                       permission="categories:write", policy="admin", errors=("CONFLICT", "CATEGORY_NOT_FOUND"),
                       tag="Categories", summary="Change or move a category (never into its own subtree)")
async def change_category(req: Req) -> v.Category:
    return await catalogue.change_category(req.app[keys.DB], req.tenant_id, req.params["id"], req.body)


@category_routes.delete("/categories/{id}", response=Deleted, auth=REQUIRED, permission="categories:write",
                        policy="admin", errors=("CONFLICT", "CATEGORY_NOT_FOUND"), tag="Categories",
                        summary="Delete an empty category")
async def delete_category(req: Req) -> Deleted:
    await catalogue.delete_category(req.app[keys.DB], req.tenant_id, req.params["id"])
    return Deleted(id=req.params["id"], deleted=True)


# ----------------------------------------------------------------------------- reviews

@review_routes.get("/products/{id}/reviews", query=ReviewsQuery, response=v.ReviewsPage, auth=OPTIONAL,
                   policy="catalogue", paginated=True, errors=("PRODUCT_NOT_FOUND",), tag="Reviews",
                   summary="Published reviews of a product")
async def list_reviews(req: Req) -> Reply:
    """`isHelpful` is null for anonymous callers. Moderators may pass `status`."""
    q: ReviewsQuery = req.query
    moderator = moderates_reviews(req.principal)
    if q.status is not None and not moderator:
        raise ValidationError("Invalid query parameters.", details={"status": ["requires reviews:write"]})
    listing = reviews.ReviewListing(page=q.page, page_size=q.page_size, rating=q.rating,
                                    sort=q.sort_by or q.sort or "createdAt", order=_order(q) or "desc",
                                    status=q.status)
    page, total = await catalogue.review_page(req.app[keys.DB], req.principal, req.params["id"], listing,
                                              moderator=moderator)
    return Reply(page, meta={"pagination": Pagination.of(total, q.page, q.page_size)})


@review_routes.post("/products/{id}/reviews", body=NewReview, response=v.CreatedReview, status=201, auth=REQUIRED,
                    policy="reviews", errors=("NOT_PURCHASED", "PRODUCT_NOT_FOUND", "ALREADY_REVIEWED", "FORBIDDEN"),
                    tag="Reviews", summary="Review a product you received")
async def create_review(req: Req) -> v.CreatedReview:
    """Requires a DELIVERED order of yours containing the product. (Rate policy `orders`:
    the document gives review writes 100/min, the same budget.)"""
    auto = req.app[keys.SETTINGS].auto_publish_verified_reviews
    return await catalogue.create_review(req.app[keys.DB], req.principal, req.params["id"], req.body,
                                         auto_publish_verified=auto)


@review_routes.post("/products/{id}/reviews/{reviewId}/helpful", response=v.HelpfulVote, auth=REQUIRED,
                    policy="reviews", errors=("PRODUCT_NOT_FOUND", "REVIEW_NOT_FOUND", "FORBIDDEN"), tag="Reviews",
                    summary="Toggle your 'helpful' mark on a review")
async def toggle_helpful(req: Req) -> v.HelpfulVote:
    return await catalogue.toggle_helpful(req.app[keys.DB], req.principal, req.params["id"], req.params["reviewId"])


@review_routes.get("/reviews", policy="admin", query=ModerationQuery, response=v.ModeratedReviews, auth=REQUIRED,
                   permission="reviews:write", paginated=True, tag="Reviews", summary="Moderation queue")
async def moderation_queue(req: Req) -> Reply:
    q: ModerationQuery = req.query
    items, total = await catalogue.moderation_queue(req.app[keys.DB], req.principal, status=q.status, page=q.page,
                                                    page_size=q.page_size)
    return Reply(v.ModeratedReviews(reviews=items), meta={"pagination": Pagination.of(total, q.page, q.page_size)})


@review_routes.patch("/reviews/{id}", policy="admin", body=ReviewModeration, response=v.Review, auth=REQUIRED,
                     permission="reviews:write", errors=("REVIEW_NOT_FOUND",), tag="Reviews",
                     summary="Publish or reject a review; answer it")
async def moderate_review(req: Req) -> v.Review:
    return await catalogue.moderate_review(req.app[keys.DB], req.principal, req.params["id"], req.body)


def setup(app: web.Application) -> None:
    product_reads.setup(app)
