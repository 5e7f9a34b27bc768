"""Arrange helpers for the catalogue tests: products and categories through the API (as staff),
delivered orders straight in the database (the order engine is not under test here)."""

from __future__ import annotations

import secrets
import uuid
from decimal import Decimal
from typing import Any

PRODUCT_FIELDS = {
    "id": str, "name": str, "slug": str, "description": str, "shortDescription": (str, type(None)),
    "price": (int, float), "compareAtPrice": (int, float, type(None)), "currency": str, "sku": str,
    "status": str, "stockQuantity": (int, type(None)), "category": (dict, type(None)), "images": list,
    "tags": list, "rating": dict, "commissionPercentage": (int, float), "careerPointsPercentage": (int, float),
    "createdAt": str,
}
DETAIL_FIELDS = {
    **PRODUCT_FIELDS, "trackInventory": bool, "weight": (int, type(None)), "dimensions": dict,
    "variants": list, "attributes": dict, "relatedProducts": list, "updatedAt": str,
}
REVIEW_FIELDS = {
    "id": str, "author": dict, "rating": int, "title": (str, type(None)), "content": str, "pros": list,
    "cons": list, "helpfulCount": int, "isHelpful": (bool, type(None)), "images": list,
    "response": (dict, type(None)), "createdAt": str, "updatedAt": (str, type(None)),
}
CATEGORY_FIELDS = {
    "id": str, "name": str, "slug": str, "description": (str, type(None)), "imageUrl": (str, type(None)),
    "parentId": (str, type(None)), "level": int, "position": int, "productCount": (int, type(None)),
    "children": list, "isActive": bool,
}


def assert_shape(obj: dict[str, Any], fields: dict[str, Any]) -> None:
    """Every field of the document's interface is present with its type (bools are not numbers)."""
    for name, typ in fields.items():
        assert name in obj, f"missing field {name}"
        value = obj[name]
        types = typ if isinstance(typ, tuple) else (typ,)
        assert isinstance(value, types) and not (isinstance(value, bool) and bool not in types), (name, value)


def new_product(**overrides: Any) -> dict[str, Any]:
    tag = secrets.token_hex(4)
    body: dict[str, Any] = {"name": f"Product {tag}", "sku": f"SKU-{tag}", "price": 100, "stockQuantity": 10,
                            "description": "A plain product"}
    body.update(overrides)
    return body


async def make_product(api: Any, staff: Any, **overrides: Any) -> dict[str, Any]:
    r = await api.post("/api/v1/products", as_=staff, json=new_product(**overrides))
    assert r.status == 201, r.body
    return r.data


async def make_category(api: Any, staff: Any, name: str, parent: str | None = None, **extra: Any) -> dict[str, Any]:
    body = {"name": name, "slug": f"{name.lower().replace(' ', '-')}-{secrets.token_hex(3)}", **extra}
    if parent:
        body["parentId"] = parent
    r = await api.post("/api/v1/categories", as_=staff, json=body)
    assert r.status == 201, r.body
    return r.data


async def deliver(db: Any, tenant_id: uuid.UUID, user_id: uuid.UUID, product_id: str, status: str = "DELIVERED") -> uuid.UUID:
    """An order of `user_id` in `status` containing one unit of the product."""
    row = await db.fetchrow("SELECT name, sku, price FROM products WHERE id = $1", uuid.UUID(product_id))
    order_id = await db.fetchval(
        "INSERT INTO orders (tenant_id, user_id, order_number, status, payment_method, currency, subtotal, total,"
        " shipping_address, shipping_method) VALUES ($1, $2, $3, $4, 'CARD', 'RUB', $5, $5, '{}', '{}') RETURNING id",
        tenant_id, user_id, f"T-{secrets.token_hex(5)}", status, row["price"])
    await db.execute(
        "INSERT INTO order_items (tenant_id, order_id, product_id, product_name, sku, quantity, unit_price, total_price)"
        " VALUES ($1, $2, $3, $4, $5, 1, $6, $6)", tenant_id, order_id, uuid.UUID(product_id), row["name"],
        row["sku"], row["price"])
    return order_id


def money(value: Any) -> Decimal:
    return Decimal(str(value))
