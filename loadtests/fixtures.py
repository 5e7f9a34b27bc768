"""The data a load run needs, arranged straight in the database (fast: COPY, one password hash).

A `Shop` is: categories with the platform document's slugs, products each with one stock row,
one "hot" product with limited stock (the flash sale), a shipping method covering RU, a 10 %
coupon, published reviews, a staff user, API keys of both plans, and buyers, each with a saved
address and a signed access token. Buyers can also sign in with `PASSWORD` (one argon2 hash
is shared by all of them, so arranging 100 000 users costs one hash, not 100 000).

Rows go into the migrated schema of migration 0001 only, so the arrangement keeps working while
features land. It runs in the tenant `default` (anonymous callers land there).
"""

from __future__ import annotations

import json
import random
import secrets
import time
import uuid
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Iterable

import asyncpg

PASSWORD = "loadtest-password-1"
CATEGORY_SLUGS = ("footwear", "apparel", "accessories", "electronics", "home")
SEARCH_WORDS = ("runner", "classic", "travel", "pro", "mini", "smart", "wool", "leather")
COUPON = "LOAD10"
TENANT = "default"
_hash_cache: dict[str, str] = {}


def password_hash() -> str:
    if PASSWORD not in _hash_cache:
        from argon2 import PasswordHasher

        _hash_cache[PASSWORD] = PasswordHasher().hash(PASSWORD)
    return _hash_cache[PASSWORD]


@dataclass
class Buyer:
    id: str
    email: str
    token: str
    address_id: str


@dataclass
class Shop:
    tenant_id: str
    tenant_slug: str
    category_ids: dict[str, str]
    product_ids: list[str]
    hot_product_id: str
    hot_stock_id: str
    hot_stock: int
    shipping_method_id: str
    coupon: str
    staff_token: str
    api_keys: dict[str, str]              # plan -> plaintext
    buyers: list[Buyer] = field(default_factory=list)
    password: str = PASSWORD
    search_words: tuple[str, ...] = SEARCH_WORDS

    def save(self, path: Path) -> Path:
        path.write_text(json.dumps(asdict(self)))
        return path

    @classmethod
    def load(cls, path: Path | str) -> "Shop":
        raw = json.loads(Path(path).read_text())
        raw["buyers"] = [Buyer(**b) for b in raw["buyers"]]
        raw["search_words"] = tuple(raw["search_words"])
        return cls(**raw)


class Tokens:
    """Signs access tokens with the key the API processes were given (engine.identity.tokens)."""

    def __init__(self, jwt_keys: str) -> None:
        from engine.identity.tokens import TokenIssuer
        from engine.settings import Settings

        self._issuer = TokenIssuer(Settings(jwt_keys=jwt_keys, access_token_ttl=6 * 3600))

    def access(self, user_id: uuid.UUID, tenant_id: uuid.UUID, role: str = "customer",
               permissions: Iterable[str] = ()) -> str:
        token, _ = self._issuer.issue_access(user_id=user_id, tenant_id=tenant_id, role=role,
                                             permissions=frozenset(permissions), now=int(time.time()))
        return token


async def arrange_shop(url: str, tokens: Tokens, *, products: int = 200, buyers: int = 50,
                       hot_stock: int = 100, stock_per_product: int = 1_000_000, reviews: int = 40) -> Shop:
    """Arrange a whole shop; bounded by the counts given (products, buyers)."""
    conn = await asyncpg.connect(url)
    try:
        tenant_id = await conn.fetchval("SELECT id FROM tenants WHERE slug = $1", TENANT)
        cats = {}
        for pos, slug in enumerate(CATEGORY_SLUGS):
            cats[slug] = await conn.fetchval(
                "INSERT INTO categories (tenant_id, name, slug, position) VALUES ($1, $2, $3, $4) RETURNING id",
                tenant_id, slug.title(), slug, pos)
        ids = await add_products(conn, tenant_id, list(cats.values()), products, stock_per_product)
        hot_id = (await add_products(conn, tenant_id, [cats["electronics"]], 1, hot_stock, name="Flash sale console"))[0]
        hot_stock_id = await conn.fetchval("SELECT id FROM stock WHERE product_id = $1", hot_id)
        method = await conn.fetchval(
            "INSERT INTO shipping_methods (tenant_id, name, carrier, min_days, max_days, currency, zones,"
            " weight_bands) VALUES ($1, 'Courier', 'sandbox', 2, 5, 'RUB', $2::jsonb, $3::jsonb) RETURNING id",
            tenant_id, json.dumps([{"countries": ["RU"]}]), json.dumps([{"maxGrams": None, "price": "350.00"}]))
        await conn.execute(
            "INSERT INTO coupons (tenant_id, code, kind, value) VALUES ($1, $2, 'PERCENTAGE', 10)", tenant_id, COUPON)
        staff = await conn.fetchval(
            "INSERT INTO users (tenant_id, email, password_hash, name, role, permissions)"
            " VALUES ($1, 'staff@loadtest.example', $2, 'Load Staff', 'staff', '{*}') RETURNING id",
            tenant_id, password_hash())
        keys = {plan: await add_api_key(conn, tenant_id, plan) for plan in ("standard", "enterprise")}
        shop = Shop(tenant_id=str(tenant_id), tenant_slug=TENANT, category_ids={k: str(v) for k, v in cats.items()},
                    product_ids=[str(i) for i in ids], hot_product_id=str(hot_id), hot_stock_id=str(hot_stock_id),
                    hot_stock=hot_stock, shipping_method_id=str(method), coupon=COUPON,
                    staff_token=tokens.access(staff, tenant_id, "staff", ["*"]), api_keys=keys)
        shop.buyers = await add_buyers(conn, tokens, tenant_id, buyers)
        await add_reviews(conn, tenant_id, ids[:10], [uuid.UUID(b.id) for b in shop.buyers], reviews)
        return shop
    finally:
        await conn.close()


async def add_products(conn: asyncpg.Connection, tenant_id: uuid.UUID, category_ids: list[uuid.UUID], n: int,
                       stock: int, name: str | None = None) -> list[uuid.UUID]:
    rng = random.Random(n)
    tag = secrets.token_hex(3)
    ids = [uuid.uuid4() for _ in range(n)]
    rows = []
    for i, pid in enumerate(ids):
        title = name or f"{rng.choice(SEARCH_WORDS).title()} {rng.choice(SEARCH_WORDS)} item {i}"
        rows.append((pid, tenant_id, category_ids[i % len(category_ids)], title, f"p-{tag}-{i}",
                     f"A {title.lower()} for load tests.", Decimal(rng.randrange(500, 50_000)), "RUB",
                     f"SKU-{tag}-{i}", [rng.choice(SEARCH_WORDS)], 500))
    await conn.copy_records_to_table(
        "products", records=rows,
        columns=["id", "tenant_id", "category_id", "name", "slug", "description", "price", "currency", "sku",
                 "tags", "weight_grams"])
    await conn.copy_records_to_table(
        "stock", records=[(uuid.uuid4(), tenant_id, pid, stock) for pid in ids],
        columns=["id", "tenant_id", "product_id", "on_hand"])
    return ids


async def add_api_key(conn: asyncpg.Connection, tenant_id: uuid.UUID, plan: str) -> str:
    import hashlib

    plaintext = "ck_" + secrets.token_urlsafe(32)
    await conn.execute(
        "INSERT INTO api_keys (tenant_id, name, prefix, key_hash, scopes, plan) VALUES ($1, $2, $3, $4, $5, $6)",
        tenant_id, f"loadtest {plan}", plaintext[:11], hashlib.sha256(plaintext.encode()).digest(),
        ["products:read", "products:write", "orders:read", "orders:write"], plan)
    return plaintext


async def add_buyers(conn: asyncpg.Connection, tokens: Tokens | None, tenant_id: uuid.UUID, n: int,
                     with_address: bool = True) -> list[Buyer]:
    """`n` customers with a saved address each; tokens signed when `tokens` is given."""
    tag = secrets.token_hex(3)
    ids = [uuid.uuid4() for _ in range(n)]
    emails = [f"buyer-{tag}-{i}@loadtest.example" for i in range(n)]
    hashed = password_hash()
    await conn.copy_records_to_table(
        "users", records=[(uid, tenant_id, email, hashed, "Load Buyer", "customer") for uid, email in zip(ids, emails)],
        columns=["id", "tenant_id", "email", "password_hash", "name", "role"])
    addresses = [uuid.uuid4() for _ in range(n)] if with_address else [None] * n
    if with_address:
        await conn.copy_records_to_table(
            "addresses", records=[(aid, tenant_id, uid, "Load Buyer", "Tverskaya 1", "Moscow", "RU", "125009", True)
                                  for aid, uid in zip(addresses, ids)],
            columns=["id", "tenant_id", "user_id", "recipient_name", "street", "city", "country", "postal_code",
                     "is_default"])
    return [Buyer(str(uid), email, tokens.access(uid, tenant_id) if tokens else "", str(aid) if aid else "")
            for uid, email, aid in zip(ids, emails, addresses)]


async def add_reviews(conn: asyncpg.Connection, tenant_id: uuid.UUID, product_ids: list[uuid.UUID],
                      user_ids: list[uuid.UUID], n: int) -> None:
    rng = random.Random(7)
    pairs = {(rng.choice(product_ids), u) for u in user_ids[:n]} if product_ids else set()
    await conn.executemany(
        "INSERT INTO reviews (tenant_id, product_id, user_id, rating, title, content, status)"
        " VALUES ($1, $2, $3, $4, 'Load review', 'Written by the load test.', 'PUBLISHED')"
        " ON CONFLICT DO NOTHING",
        [(tenant_id, p, u, rng.randint(1, 5)) for p, u in pairs])


async def fill_carts(conn: asyncpg.Connection, tenant_id: uuid.UUID, buyers: list[Buyer],
                     product_for: Any, quantity: int = 1) -> None:
    """Give each buyer a cart holding `quantity` of each product `product_for(i)` names (one id,
    or a list of distinct ids), replacing what it held (lines and coupons)."""
    user_ids = [uuid.UUID(b.id) for b in buyers]
    await conn.execute(
        "INSERT INTO carts (tenant_id, user_id) SELECT $1, u FROM unnest($2::uuid[]) u ON CONFLICT (user_id) DO NOTHING",
        tenant_id, user_ids)
    cart_ids = dict(await conn.fetch("SELECT user_id, id FROM carts WHERE user_id = ANY($1)", user_ids))
    await conn.execute("DELETE FROM cart_items WHERE cart_id = ANY($1::uuid[])", list(cart_ids.values()))
    await conn.execute("DELETE FROM cart_coupons WHERE cart_id = ANY($1::uuid[])", list(cart_ids.values()))
    rows = []
    for i, u in enumerate(user_ids):
        wanted = product_for(i)
        for pid in (wanted if isinstance(wanted, (list, tuple)) else [wanted]):
            rows.append((uuid.uuid4(), tenant_id, cart_ids[u], uuid.UUID(str(pid)), quantity))
    await conn.copy_records_to_table(
        "cart_items", records=rows, columns=["id", "tenant_id", "cart_id", "product_id", "quantity"])
