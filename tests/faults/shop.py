"""A fresh shop per scenario: its own tenant, a staff member, buyers with saved addresses, a
shipping method and one product with a known stock, arranged so its promises can be checked
in isolation from every other scenario's rows.

Rows the API has no endpoint for yet are written with SQL; the product goes through the API
(POST /products) so its stock rows and summaries are made exactly as the engine makes them.
"""

from __future__ import annotations

import json
import secrets
import time
import urllib.request
import uuid
from dataclasses import dataclass

import asyncpg

from engine.identity.tokens import TokenIssuer
from engine.settings import Settings
from tests.faults.load import Buyer
from tests.faults.toolkit import JWT_KEYS

_TOKENS = TokenIssuer(Settings(jwt_keys=JWT_KEYS, access_token_ttl=3600))
_UNUSABLE_HASH = "$argon2id$v=19$m=65536,t=3,p=4$bm90LWEtcmVhbC1zYWx0$bm90LWEtcmVhbC1oYXNoLW5vdC1hLXJlYWwtaGFzaA"


@dataclass
class Shop:
    tenant_id: uuid.UUID
    slug: str
    staff_token: str
    buyers: list[Buyer]
    product_id: str
    shipping_method_id: str
    stock: int


def token_for(user_id: uuid.UUID, tenant_id: uuid.UUID, role: str, permissions: tuple[str, ...] = ()) -> str:
    token, _ = _TOKENS.issue_access(user_id=user_id, tenant_id=tenant_id, role=role,
                                    permissions=frozenset(permissions), now=int(time.time()))
    return token


async def _user(conn: asyncpg.Connection, tenant_id: uuid.UUID, role: str, permissions: tuple[str, ...] = ()) -> uuid.UUID:
    return await conn.fetchval(
        "INSERT INTO users (tenant_id, email, password_hash, name, role, permissions)"
        " VALUES ($1, $2, $3, 'Fault Buyer', $4, $5) RETURNING id",
        tenant_id, f"{role}-{secrets.token_hex(5)}@faults.test", _UNUSABLE_HASH, role, list(permissions))


def _post(url: str, token: str, slug: str, body: dict) -> dict:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST", headers={
        "Authorization": f"Bearer {token}", "X-Tenant": slug, "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:  # noqa: S310 - 127.0.0.1 only
        return json.loads(r.read())["data"]


async def open_shop(dsn: str, api_url: str, *, buyers: int, stock: int) -> Shop:
    conn = await asyncpg.connect(dsn)
    try:
        slug = f"faults-{secrets.token_hex(5)}"
        tenant_id = await conn.fetchval("INSERT INTO tenants (slug, name) VALUES ($1, $1) RETURNING id", slug)
        staff_id = await _user(conn, tenant_id, "staff", ("*",))
        method_id = await conn.fetchval(
            "INSERT INTO shipping_methods (tenant_id, name, carrier, min_days, max_days, currency, zones, weight_bands)"
            " VALUES ($1, 'Courier', 'sandbox', 1, 3, 'RUB', $2::jsonb, $3::jsonb) RETURNING id", tenant_id,
            json.dumps([{"countries": ["RU"]}]), json.dumps([{"maxGrams": None, "price": "300"}]))
        people: list[Buyer] = []
        for _ in range(buyers):
            uid = await _user(conn, tenant_id, "customer")
            address = await conn.fetchval(
                "INSERT INTO addresses (tenant_id, user_id, recipient_name, street, city, country, postal_code, is_default)"
                " VALUES ($1, $2, 'Fault Buyer', 'Tverskaya 1', 'Moscow', 'RU', '125009', true) RETURNING id",
                tenant_id, uid)
            people.append(Buyer(uid, token_for(uid, tenant_id, "customer"), address))
    finally:
        await conn.close()
    staff_token = token_for(staff_id, tenant_id, "staff", ("*",))
    product = _post(api_url + "/api/v1/products", staff_token, slug, {
        "name": "Fault sneaker", "sku": f"FS-{secrets.token_hex(4)}", "price": 1000, "stockQuantity": stock,
        "weight": 500})
    return Shop(tenant_id, slug, staff_token, people, str(product["id"]), str(method_id), stock)
