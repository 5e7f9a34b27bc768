"""Catalogue commands: the bodies staff and customers send, bounded so that anything PostgreSQL
could not hold is a 400 at decoding time, never a 500.

Unknown and read-only fields (id, rating, createdAt, ...) are rejected (`forbid_unknown_fields`).
In the change commands `UNSET` means "not supplied, leave as is"; `None` means "clear it".
Image URLs are stored as given and are never fetched by the server (no request is made to a
client-supplied address), so they cannot be used to reach internal services.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Literal
from uuid import UUID

import msgspec
from msgspec import UNSET, UnsetType

# msgspec cannot bound a Decimal; the structs check theirs in __post_init__ (see `check_amounts`),
# and msgspec turns the ValueError into a 400 with the field's path.
Money = Decimal
Percent = Decimal
MAX_MONEY = Decimal("9999999999.99")
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
Slug = Annotated[str, msgspec.Meta(min_length=1, max_length=120, pattern=r"^[a-z0-9]+(?:-[a-z0-9]+)*$")]
Sku = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")]
Text = Annotated[str, msgspec.Meta(max_length=20_000)]
Short = Annotated[str, msgspec.Meta(max_length=500)]
Url = Annotated[str, msgspec.Meta(min_length=1, max_length=2000, pattern=r"^https?://\S+$")]
Tag = Annotated[str, msgspec.Meta(min_length=1, max_length=50, pattern=r"^[^,\s][^,]*$")]
Quantity = Annotated[int, msgspec.Meta(ge=0, le=1_000_000_000)]
Grams = Annotated[int, msgspec.Meta(ge=0, le=1_000_000_000)]
Centimetres = Decimal
Position = Annotated[int, msgspec.Meta(ge=0, le=1_000_000)]
Attributes = Annotated[dict[Annotated[str, msgspec.Meta(min_length=1, max_length=100)],
                            Annotated[str, msgspec.Meta(max_length=1000)]], msgspec.Meta(max_length=100)]
StoredStatus = Literal["ACTIVE", "DRAFT", "ARCHIVED"]


def check_amount(name: str, value: object, limit: Decimal = MAX_MONEY) -> None:
    """A non-negative finite amount with at most two decimals, no larger than `limit`."""
    if not isinstance(value, Decimal):
        return
    if not value.is_finite() or value < 0 or value > limit or value != value.quantize(Decimal("0.01")):
        raise ValueError(f"{name} must be a number from 0 to {limit} with at most 2 decimals")


_LIMITS = {"commission_percentage": Decimal(100), "career_points_percentage": Decimal(100),
           "length": Decimal("999999.99"), "width": Decimal("999999.99"), "height": Decimal("999999.99")}
_AMOUNTS = ("price", "compare_at_price", *_LIMITS)


class Body(msgspec.Struct, rename="camel", forbid_unknown_fields=True):
    def __post_init__(self) -> None:
        for name in _AMOUNTS:
            if name in self.__struct_fields__:
                check_amount(name, getattr(self, name), _LIMITS.get(name, MAX_MONEY))


class NewImage(Body):
    url: Url
    thumbnail_url: Url | None = None
    alt: Annotated[str, msgspec.Meta(max_length=300)] | None = None
    is_primary: bool = False
    position: Position | None = None


class NewDimensions(Body):
    length: Centimetres | None = None
    width: Centimetres | None = None
    height: Centimetres | None = None


class NewVariant(Body):
    name: Name
    sku: Sku
    price: Money
    stock_quantity: Quantity = 0
    attributes: Attributes = {}


def _merge(cmd: msgspec.Struct, storefront: str, platform: str, value: object, default: object = UNSET) -> None:
    """Fold the platform document's spelling of a field into the storefront's: either may be
    given; both given must agree (a write should never pick one silently)."""
    mine = getattr(cmd, storefront)
    if value is not UNSET:
        if mine is not UNSET and mine != value:
            raise ValueError(f"`{platform}` and its storefront spelling disagree; send one of them")
        setattr(cmd, storefront, value)
    elif mine is UNSET and default is not UNSET:
        setattr(cmd, storefront, default)


def _status_of(active: bool | UnsetType) -> StoredStatus | UnsetType:
    # The platform's `active: false` takes a product off sale without archiving it: DRAFT.
    return UNSET if active is UNSET else ("ACTIVE" if active else "DRAFT")


class NewProduct(Body):
    """A new product in either document's vocabulary: `stockQuantity` or `stock`, `status` or
    `active`, `categoryId` or `category` (a slug)."""

    name: Name
    sku: Sku
    price: Money
    slug: Slug | None = None
    description: Text = ""
    short_description: Short | None = None
    compare_at_price: Money | None = None
    currency: Annotated[str, msgspec.Meta(pattern=r"^[A-Z]{3}$")] | None = None
    status: StoredStatus | UnsetType = UNSET   # ACTIVE when neither status nor active is given
    stock_quantity: Quantity | UnsetType = UNSET  # 0 when neither stockQuantity nor stock is given
    track_inventory: bool = True
    weight: Grams | None = None
    dimensions: NewDimensions | None = None
    category_id: UUID | None = None
    images: Annotated[list[NewImage], msgspec.Meta(max_length=20)] = []
    variants: Annotated[list[NewVariant], msgspec.Meta(max_length=100)] = []
    attributes: Attributes = {}
    tags: Annotated[list[Tag], msgspec.Meta(max_length=30)] = []
    commission_percentage: Percent = Decimal(0)
    career_points_percentage: Percent = Decimal(0)
    max_per_order: Annotated[int, msgspec.Meta(ge=1, le=1_000_000)] | None = None
    stock: Quantity | UnsetType = UNSET
    active: bool | UnsetType = UNSET
    category: Slug | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        _merge(self, "stock_quantity", "stock", self.stock, default=0)
        _merge(self, "status", "active", _status_of(self.active), default="ACTIVE")


class VariantChange(Body):
    """One entry of PATCH `variants`: with `id`, the supplied fields of that variant change
    (`deleted: true` removes it); without `id`, a new variant (name, sku and price required)."""

    id: UUID | None = None
    name: Name | UnsetType = UNSET
    sku: Sku | UnsetType = UNSET
    price: Money | UnsetType = UNSET
    stock_quantity: Quantity | UnsetType = UNSET
    stock: Quantity | UnsetType = UNSET
    attributes: Attributes | UnsetType = UNSET
    deleted: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        _merge(self, "stock_quantity", "stock", self.stock)
        if self.id is None and (self.deleted or UNSET in (self.name, self.sku, self.price)):
            raise ValueError("a new variant (no `id`) needs name, sku and price")


class ProductChanges(Body):
    """PATCH: only supplied fields change. `stockQuantity` sets the *available* quantity of a
    product without variants; reserved and sold units are never overwritten."""

    name: Name | UnsetType = UNSET
    slug: Slug | UnsetType = UNSET
    sku: Sku | UnsetType = UNSET
    price: Money | UnsetType = UNSET
    description: Text | UnsetType = UNSET
    short_description: Short | None | UnsetType = UNSET
    compare_at_price: Money | None | UnsetType = UNSET
    currency: Annotated[str, msgspec.Meta(pattern=r"^[A-Z]{3}$")] | UnsetType = UNSET
    status: StoredStatus | UnsetType = UNSET
    stock_quantity: Quantity | UnsetType = UNSET
    track_inventory: bool | UnsetType = UNSET
    weight: Grams | None | UnsetType = UNSET
    dimensions: NewDimensions | UnsetType = UNSET
    category_id: UUID | None | UnsetType = UNSET
    images: Annotated[list[NewImage], msgspec.Meta(max_length=20)] | UnsetType = UNSET
    attributes: Attributes | UnsetType = UNSET
    tags: Annotated[list[Tag], msgspec.Meta(max_length=30)] | UnsetType = UNSET
    commission_percentage: Percent | UnsetType = UNSET
    career_points_percentage: Percent | UnsetType = UNSET
    max_per_order: Annotated[int, msgspec.Meta(ge=1, le=1_000_000)] | None | UnsetType = UNSET
    variants: Annotated[list[VariantChange], msgspec.Meta(max_length=100)] | UnsetType = UNSET
    # The platform document's spellings (see NewProduct).
    stock: Quantity | UnsetType = UNSET
    active: bool | UnsetType = UNSET
    category: Slug | None | UnsetType = UNSET

    def __post_init__(self) -> None:
        super().__post_init__()
        _merge(self, "stock_quantity", "stock", self.stock)
        _merge(self, "status", "active", _status_of(self.active))


class NewCategory(Body):
    name: Name
    slug: Slug | None = None
    description: Annotated[str, msgspec.Meta(max_length=5000)] | None = None
    image_url: Url | None = None
    parent_id: UUID | None = None
    position: Position = 0
    is_active: bool = True


class CategoryChanges(Body):
    name: Name | UnsetType = UNSET
    slug: Slug | UnsetType = UNSET
    description: Annotated[str, msgspec.Meta(max_length=5000)] | None | UnsetType = UNSET
    image_url: Url | None | UnsetType = UNSET
    parent_id: UUID | None | UnsetType = UNSET
    position: Position | UnsetType = UNSET
    is_active: bool | UnsetType = UNSET


ReviewLine = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]


class NewReview(Body):
    rating: Annotated[int, msgspec.Meta(ge=1, le=5)]
    content: Annotated[str, msgspec.Meta(min_length=10, max_length=2000)]
    title: Annotated[str, msgspec.Meta(max_length=100)] | None = None
    pros: Annotated[list[ReviewLine], msgspec.Meta(max_length=5)] = []
    cons: Annotated[list[ReviewLine], msgspec.Meta(max_length=5)] = []


class ReviewModeration(Body):
    status: Literal["PENDING", "PUBLISHED", "REJECTED"] | UnsetType = UNSET
    response: Annotated[str, msgspec.Meta(min_length=1, max_length=2000)] | None | UnsetType = UNSET


def slugify(text: str) -> str:
    """'Premium Health Supplement!' -> 'premium-health-supplement' (ASCII letters and digits)."""
    out, dash = [], False
    for ch in text.lower():
        if ch.isascii() and ch.isalnum():
            out.append(ch)
            dash = False
        elif not dash and out:
            out.append("-")
            dash = True
    return "".join(out).strip("-")[:120].strip("-") or "item"


def supplied(changes: msgspec.Struct) -> dict[str, object]:
    """The fields a change command actually carries (UNSET ones left out)."""
    return {f: getattr(changes, f) for f in changes.__struct_fields__ if getattr(changes, f) is not UNSET}
