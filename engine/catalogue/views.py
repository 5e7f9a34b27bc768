"""The catalogue's read model: the exact response shapes of the storefront document.

Every field of each TypeScript interface is present with its name, type and nullability
(`T | None` fields are always written, never omitted). Money and percentages are Decimal,
written as JSON numbers in the major unit; timestamps are aware datetimes.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Literal
from uuid import UUID

import msgspec

ProductStatus = Literal["ACTIVE", "DRAFT", "ARCHIVED", "OUT_OF_STOCK"]


def plain(value: Decimal | None) -> Decimal | None:
    """2500.00 -> 2500, 25.90 -> 25.9: the document's examples show numbers without padding."""
    if value is None:
        return None
    return value.quantize(Decimal(1)) if value == value.to_integral_value() else value.normalize()


def shown_status(stored: str, track_inventory: bool, available: int) -> str:
    """OUT_OF_STOCK is derived: a stored ACTIVE product that tracks stock and has none left."""
    if stored == "ACTIVE" and track_inventory and available <= 0:
        return "OUT_OF_STOCK"
    return stored


class Struct(msgspec.Struct, rename="camel"):
    pass


class CategoryRef(Struct):
    id: UUID
    name: str
    slug: str


class Image(Struct):
    id: UUID
    url: str
    thumbnail_url: str
    alt: str | None
    is_primary: bool


class DetailImage(Image):
    position: int


class Rating(Struct):
    average: Decimal
    count: int


class Distribution(msgspec.Struct):
    one: int = msgspec.field(name="1")
    two: int = msgspec.field(name="2")
    three: int = msgspec.field(name="3")
    four: int = msgspec.field(name="4")
    five: int = msgspec.field(name="5")

    @classmethod
    def of(cls, counts: list[int]) -> "Distribution":
        return cls(*counts)


class RatingSummary(Struct):
    average: Decimal
    count: int
    distribution: Distribution


def rating_average(total: int, count: int) -> Decimal:
    """Mean of the published ratings to one decimal place; 0 when there are none."""
    if count <= 0:
        return Decimal(0)
    return plain((Decimal(total) / Decimal(count)).quantize(Decimal("0.1")))  # type: ignore[return-value]


class Product(Struct):
    id: UUID
    name: str
    slug: str
    description: str
    short_description: str | None
    price: Decimal
    compare_at_price: Decimal | None
    currency: str
    sku: str
    status: ProductStatus
    stock_quantity: int | None
    category: CategoryRef | None
    images: list[Image]
    tags: list[str]
    rating: Rating
    commission_percentage: Decimal
    career_points_percentage: Decimal
    created_at: datetime
    deleted_at: datetime | None = None  # extra field: staff see soft-deleted products when they ask


class ProductsPage(Struct):
    products: list[Product]


class Dimensions(Struct):
    length: Decimal | None
    width: Decimal | None
    height: Decimal | None


class DetailCategory(CategoryRef):
    breadcrumb: list[CategoryRef]


class Variant(Struct):
    id: UUID
    name: str
    sku: str
    price: Decimal
    stock_quantity: int | None
    attributes: dict[str, str]


class RelatedProduct(Struct):
    id: UUID
    name: str
    slug: str
    price: Decimal
    thumbnail_url: str | None


class ProductDetail(Struct):
    id: UUID
    name: str
    slug: str
    description: str
    short_description: str | None
    price: Decimal
    compare_at_price: Decimal | None
    currency: str
    sku: str
    status: ProductStatus
    stock_quantity: int | None
    track_inventory: bool
    weight: int | None
    dimensions: Dimensions
    category: DetailCategory | None
    images: list[DetailImage]
    variants: list[Variant]
    attributes: dict[str, str]
    tags: list[str]
    rating: RatingSummary
    commission_percentage: Decimal
    career_points_percentage: Decimal
    related_products: list[RelatedProduct]
    created_at: datetime
    updated_at: datetime
    max_per_order: int | None = None
    deleted_at: datetime | None = None


# ----------------------------------------------------------------------------- categories

class Category(Struct):
    id: UUID
    name: str
    slug: str
    description: str | None
    image_url: str | None
    parent_id: UUID | None
    level: int
    position: int
    product_count: int | None
    children: list["Category"]
    is_active: bool


class CategoriesPage(Struct):
    categories: list[Category]


class ChildCategory(CategoryRef):
    product_count: int


class PriceRange(Struct):
    min: Decimal
    max: Decimal


class TagCount(Struct):
    name: str
    count: int


class CategoryFilters(Struct):
    price_range: PriceRange
    tags: list[TagCount]


class CategoryDetail(Struct):
    id: UUID
    name: str
    slug: str
    description: str | None
    image_url: str | None
    parent: CategoryRef | None
    breadcrumb: list[CategoryRef]
    children: list[ChildCategory]
    products: list[Product]
    filters: CategoryFilters
    parent_id: UUID | None = None
    level: int = 0
    position: int = 0
    is_active: bool = True


# ----------------------------------------------------------------------------- reviews

class Author(Struct):
    id: UUID
    name: str
    avatar_url: str | None
    is_verified_purchaser: bool


class ReviewImage(Struct):
    url: str
    thumbnail_url: str


class ReviewResponse(Struct):
    content: str
    responded_at: datetime


class Review(Struct):
    id: UUID
    author: Author
    rating: int
    title: str | None
    content: str
    pros: list[str]
    cons: list[str]
    helpful_count: int
    is_helpful: bool | None
    images: list[ReviewImage]
    response: ReviewResponse | None
    created_at: datetime
    updated_at: datetime | None
    status: str = "PUBLISHED"  # extra field: staff moderation sees PENDING / REJECTED too
    product_id: UUID | None = None


class ReviewsPage(Struct):
    reviews: list[Review]
    summary: RatingSummary


class CreatedReview(Struct):
    id: UUID
    rating: int
    title: str | None
    content: str
    pros: list[str]
    cons: list[str]
    status: Literal["PENDING", "PUBLISHED"]
    created_at: datetime


class HelpfulVote(Struct):
    review_id: UUID
    helpful_count: int
    is_helpful: bool


class ModeratedReviews(Struct):
    reviews: list[Review]
