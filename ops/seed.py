"""Demo data: a category tree, products (with variants, images, attributes, tags, stock),
shipping methods, coupons and, optionally, three demo accounts.

Idempotent: every seeded row has a natural key (category slug, product SKU, coupon code,
shipping method name, account email) and product-side rows have ids derived from it
(uuid5), so running the seed again inserts only what is missing and changes nothing else.
Fast: products go in with COPY, in batches of `BATCH` per transaction (products, variants,
images and stock of a batch together, so a product is never half-seeded); the statement-level
triggers of migration 0003 then fill products.stock_available and categories.product_count
once per batch.

    await seed("postgresql://...", products=100_000)      # or: commerce seed --products 100000
"""

from __future__ import annotations

import json
import random
import uuid
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, Callable

import asyncpg

BATCH = 5_000
_NAMESPACE = uuid.UUID("6f0f9d1e-3c1a-4f51-9a55-2f8e3c0d7a10")
_EPOCH = datetime(2024, 1, 1, tzinfo=timezone.utc)

# slug, name, parent slug, product noun, tags
CATEGORIES: list[tuple[str, str, str | None, str | None, tuple[str, ...]]] = [
    ("footwear", "Footwear", None, None, ()),
    ("running-shoes", "Running Shoes", "footwear", "Running Shoe", ("running", "sport")),
    ("boots", "Boots", "footwear", "Boot", ("winter", "leather")),
    ("apparel", "Apparel", None, None, ()),
    ("t-shirts", "T-Shirts", "apparel", "T-Shirt", ("cotton", "summer")),
    ("jackets", "Jackets", "apparel", "Jacket", ("winter", "outdoor")),
    ("accessories", "Accessories", None, None, ()),
    ("bags", "Bags", "accessories", "Backpack", ("travel", "outdoor")),
    ("hats", "Hats", "accessories", "Cap", ("summer", "cotton")),
    ("electronics", "Electronics", None, None, ()),
    ("headphones", "Headphones", "electronics", "Headphones", ("audio", "wireless")),
    ("chargers", "Chargers", "electronics", "Charger", ("usb-c", "travel")),
    ("home", "Home", None, None, ()),
    ("kitchen", "Kitchen", "home", "Kettle", ("kitchen", "steel")),
    ("decor", "Decor", "home", "Lamp", ("decor", "light")),
    ("health-wellness", "Health & Wellness", None, None, ()),
    ("health-supplements", "Health Supplements", "health-wellness", "Supplement", ("health", "daily")),
    ("vitamins", "Vitamins", "health-supplements", "Vitamin Complex", ("health", "vitamins")),
    ("minerals", "Minerals", "health-supplements", "Mineral Blend", ("health", "minerals")),
    ("fitness", "Fitness", "health-wellness", "Yoga Mat", ("sport", "fitness")),
]
ADJECTIVES = ("Classic", "Premium", "Urban", "Eco", "Pro", "Essential", "Smart", "Ultra", "Trail", "Comfort")
SIZES = ("S", "M", "L")

SHIPPING_METHODS: list[dict[str, Any]] = [
    {"name": "Standard", "carrier": "Russian Post", "description": "Post office delivery across Russia",
     "min_days": 5, "max_days": 10, "free_threshold": Decimal("5000"), "position": 1,
     "zones": [{"countries": ["RU"]}],
     "weight_bands": [{"maxGrams": 1000, "price": "350.00"}, {"maxGrams": 5000, "price": "600.00"},
                      {"maxGrams": None, "price": "1200.00"}]},
    {"name": "Express", "carrier": "CDEK", "description": "Courier to the door, Moscow and St Petersburg",
     "min_days": 1, "max_days": 3, "free_threshold": None, "position": 2,
     "zones": [{"countries": ["RU"], "postalRanges": [["101000", "199999"]]}],
     "weight_bands": [{"maxGrams": 1000, "price": "700.00"}, {"maxGrams": None, "price": "1500.00"}]},
    {"name": "International", "carrier": "DHL", "description": "Europe",
     "min_days": 7, "max_days": 14, "free_threshold": None, "position": 3,
     "zones": [{"countries": ["DE", "FR", "NL", "PL", "FI", "IT", "ES", "AT"]}],
     "weight_bands": [{"maxGrams": 2000, "price": "2500.00"}, {"maxGrams": None, "price": "4500.00"}]},
]

COUPONS = [("WELCOME10", "PERCENTAGE", Decimal(10), None), ("FIXED500", "FIXED", Decimal(500), Decimal(3000))]

ACCOUNTS = [
    # email, password, name, role, permissions, kyc
    ("demo@example.com", "demo-password-1", "Demo Customer", "customer", [], "NONE"),
    ("admin@example.com", "admin-password-1", "Shop Admin", "staff", ["*"], "NONE"),
    ("partner@example.com", "partner-password-1", "Demo Partner", "partner", [], "VERIFIED"),
]

_PRODUCT_COLUMNS = ("id", "tenant_id", "category_id", "name", "slug", "description", "short_description", "price",
                    "compare_at_price", "currency", "sku", "status", "track_inventory", "weight_grams", "length_cm",
                    "width_cm", "height_cm", "attributes", "tags", "commission_percentage",
                    "career_points_percentage", "units_sold", "created_at", "updated_at")


def _id(tenant_id: uuid.UUID, kind: str, key: str) -> uuid.UUID:
    return uuid.uuid5(_NAMESPACE, f"{tenant_id}:{kind}:{key}")


def _hasher() -> Callable[[str], str]:
    try:
        from engine.identity.passwords import Passwords
        return Passwords().hash_sync
    except ImportError:  # identity not installed: the same algorithm with library defaults
        from argon2 import PasswordHasher
        return PasswordHasher().hash


async def seed(database_url: str, *, products: int = 200, demo_accounts: bool = True, tenant_slug: str = "default",
               progress: Callable[[int, int], None] | None = None, currency: str = "RUB") -> dict:
    """Seed the tenant `tenant_slug` (created if missing); returns what this run inserted."""
    conn = await asyncpg.connect(database_url)
    try:
        async with conn.transaction():
            tenant_id = await conn.fetchval("SELECT id FROM tenants WHERE slug = $1", tenant_slug)
            if tenant_id is None:
                tenant_id = await conn.fetchval("INSERT INTO tenants (slug, name) VALUES ($1, $2) RETURNING id",
                                                tenant_slug, tenant_slug)
            new_categories, leaves = await _categories(conn, tenant_id)
            shipping = await _shipping(conn, tenant_id, currency)
            coupons = await _coupons(conn, tenant_id)
            accounts = await _accounts(conn, tenant_id) if demo_accounts else 0
        inserted = 0
        for start in range(0, products, BATCH):
            inserted += await _product_batch(conn, tenant_id, leaves, range(start, min(products, start + BATCH)),
                                             currency)
            if progress is not None:
                progress(min(products, start + BATCH), products)
        if progress is not None and products == 0:
            progress(0, 0)
        await conn.execute("ANALYZE products")
    finally:
        await conn.close()
    return {"tenant": tenant_slug, "tenant_id": str(tenant_id), "categories": new_categories, "products": inserted,
            "shipping_methods": shipping, "coupons": coupons, "accounts": accounts}


async def _categories(conn: asyncpg.Connection, tenant_id: uuid.UUID) -> tuple[int, list[tuple[uuid.UUID, str, tuple]]]:
    inserted = 0
    ids: dict[str, uuid.UUID] = {}
    levels: dict[str, int] = {}
    for position, (slug, name, parent, _, _) in enumerate(CATEGORIES):
        level = levels[parent] + 1 if parent else 0
        levels[slug] = level
        row = await conn.fetchrow(
            "INSERT INTO categories (tenant_id, parent_id, name, slug, description, level, position)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (tenant_id, slug) DO NOTHING RETURNING id",
            tenant_id, ids.get(parent) if parent else None, name, slug, f"{name} for every day", level, position)
        if row is not None:
            inserted += 1
            ids[slug] = row["id"]
        else:
            ids[slug] = await conn.fetchval("SELECT id FROM categories WHERE tenant_id = $1 AND slug = $2", tenant_id, slug)
    leaves = [(ids[slug], noun, tags) for slug, _, _, noun, tags in CATEGORIES if noun]
    return inserted, leaves


async def _shipping(conn: asyncpg.Connection, tenant_id: uuid.UUID, currency: str) -> int:
    inserted = 0
    for m in SHIPPING_METHODS:
        if await conn.fetchval("SELECT EXISTS (SELECT 1 FROM shipping_methods WHERE tenant_id = $1 AND name = $2)",
                               tenant_id, m["name"]):
            continue
        await conn.execute(
            "INSERT INTO shipping_methods (tenant_id, name, carrier, description, min_days, max_days, currency,"
            " free_threshold, zones, weight_bands, position) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9::jsonb,$10::jsonb,$11)",
            tenant_id, m["name"], m["carrier"], m["description"], m["min_days"], m["max_days"], currency,
            m["free_threshold"], json.dumps(m["zones"]), json.dumps(m["weight_bands"]), m["position"])
        inserted += 1
    return inserted


async def _coupons(conn: asyncpg.Connection, tenant_id: uuid.UUID) -> int:
    inserted = 0
    for code, kind, value, min_order in COUPONS:
        done = await conn.fetchval(
            "INSERT INTO coupons (tenant_id, code, kind, value, min_order) VALUES ($1, $2, $3, $4, $5)"
            " ON CONFLICT (tenant_id, code) DO NOTHING RETURNING id", tenant_id, code, kind, value, min_order)
        inserted += done is not None
    return inserted


async def _accounts(conn: asyncpg.Connection, tenant_id: uuid.UUID) -> int:
    inserted = 0
    hash_password = None
    for email, password, name, role, permissions, kyc in ACCOUNTS:
        user_id = await conn.fetchval("SELECT id FROM users WHERE tenant_id = $1 AND lower(email) = lower($2)",
                                      tenant_id, email)
        if user_id is None:
            hash_password = hash_password or _hasher()
            user_id = await conn.fetchval(
                "INSERT INTO users (tenant_id, email, password_hash, name, role, permissions, kyc_status)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
                tenant_id, email, hash_password(password), name, role, permissions, kyc)
            inserted += 1
        if role == "partner":
            await conn.execute(
                "INSERT INTO partner_balances (user_id, tenant_id, balance, career_points) VALUES ($1, $2, 25000, 120)"
                " ON CONFLICT (user_id) DO NOTHING", user_id, tenant_id)
        if not await conn.fetchval("SELECT EXISTS (SELECT 1 FROM addresses WHERE user_id = $1)", user_id):
            await conn.execute(
                "INSERT INTO addresses (tenant_id, user_id, recipient_name, street, city, region, country, postal_code,"
                " phone, is_default) VALUES ($1, $2, $3, 'Tverskaya st. 1', 'Moscow', 'Moscow', 'RU', '125009',"
                " '+79990000000', true)", tenant_id, user_id, name)
    return inserted


def _product(tenant_id: uuid.UUID, i: int, leaf: tuple[uuid.UUID, str, tuple], currency: str) -> dict[str, Any]:
    """Product number i (0-based): everything derived from i, so a re-run plans identical rows."""
    rng = random.Random(i)
    category_id, noun, tags = leaf
    sku = f"DEMO-{i + 1:06d}"
    pid = _id(tenant_id, "product", sku)
    name = f"{ADJECTIVES[rng.randrange(len(ADJECTIVES))]} {noun} {i + 1}"
    price = Decimal(rng.randrange(300, 30000)).quantize(Decimal("1"))
    tag_list = list(tags) + (["bestseller"] if i % 7 == 0 else []) + (["sale"] if i % 5 == 0 else [])
    created = _EPOCH + timedelta(minutes=i)
    row = {
        "id": pid, "tenant_id": tenant_id, "category_id": category_id, "name": name,
        "slug": f"{name.lower().replace(' ', '-').replace('&', 'and')}-{i + 1}", "sku": sku,
        "description": f"{name}: a dependable {noun.lower()} for {', '.join(tags)} use.",
        "short_description": f"{noun} for every day", "price": price,
        "compare_at_price": (price * Decimal("1.2")).quantize(Decimal("1")) if i % 5 == 0 else None,
        "currency": currency, "status": "ACTIVE", "track_inventory": True,
        "weight_grams": rng.randrange(100, 3000), "length_cm": Decimal(rng.randrange(5, 60)),
        "width_cm": Decimal(rng.randrange(5, 40)), "height_cm": Decimal(rng.randrange(2, 30)),
        "attributes": json.dumps({"material": rng.choice(["cotton", "steel", "leather", "plastic"]),
                                  "origin": rng.choice(["RU", "DE", "IT", "CN"])}),
        "tags": tag_list, "commission_percentage": Decimal(rng.choice([5, 10, 15])),
        "career_points_percentage": Decimal(rng.choice([2, 5])), "units_sold": rng.randrange(0, 500),
        "created_at": created, "updated_at": created,
    }
    stock_level = 0 if i % 31 == 0 else rng.randrange(1, 200)
    variants, stock = [], []
    if i % 5 == 1:  # every fifth product comes in sizes, each with its own stock
        for position, size in enumerate(SIZES):
            vid = _id(tenant_id, "variant", f"{sku}-{size}")
            variants.append((vid, tenant_id, pid, f"Size {size}", f"{sku}-{size}", price, json.dumps({"size": size}),
                             position))
            stock.append((_id(tenant_id, "stock", f"{sku}-{size}"), tenant_id, pid, vid, stock_level))
    else:
        stock.append((_id(tenant_id, "stock", sku), tenant_id, pid, None, stock_level))
    images = []
    for n in range(1 + i % 2):
        url = f"https://cdn.example.com/products/{sku.lower()}-{n + 1}.jpg"
        images.append((_id(tenant_id, "image", f"{sku}-{n}"), tenant_id, pid, url,
                       url.replace(".jpg", "-thumb.jpg"), f"{name} photo {n + 1}", n + 1, n == 0))
    return {"row": row, "variants": variants, "stock": stock, "images": images}


async def _product_batch(conn: asyncpg.Connection, tenant_id: uuid.UUID, leaves: list, numbers: range,
                         currency: str) -> int:
    planned = [_product(tenant_id, i, leaves[i % len(leaves)], currency) for i in numbers]
    ids = [p["row"]["id"] for p in planned]
    skus = [p["row"]["sku"] for p in planned]
    existing = await conn.fetch(
        "SELECT id, sku FROM products WHERE id = ANY($1::uuid[])"
        " UNION SELECT id, sku FROM products WHERE tenant_id = $2 AND sku = ANY($3::text[]) AND deleted_at IS NULL",
        ids, tenant_id, skus)
    taken_ids, taken_skus = {r["id"] for r in existing}, {r["sku"] for r in existing}
    todo = [p for p in planned if p["row"]["id"] not in taken_ids and p["row"]["sku"] not in taken_skus]
    if not todo:
        return 0
    async with conn.transaction():
        await conn.copy_records_to_table(
            "products", columns=_PRODUCT_COLUMNS, records=[tuple(p["row"][c] for c in _PRODUCT_COLUMNS) for p in todo])
        variants = [v for p in todo for v in p["variants"]]
        if variants:
            await conn.copy_records_to_table(
                "product_variants", columns=("id", "tenant_id", "product_id", "name", "sku", "price", "attributes",
                                             "position"), records=variants)
        await conn.copy_records_to_table(
            "stock", columns=("id", "tenant_id", "product_id", "variant_id", "on_hand"),
            records=[s for p in todo for s in p["stock"]])
        await conn.copy_records_to_table(
            "product_images", columns=("id", "tenant_id", "product_id", "url", "thumbnail_url", "alt", "position",
                                       "is_primary"), records=[im for p in todo for im in p["images"]])
    return len(todo)
