"""Arranging checkouts straight in the database: addresses, shipping methods, carts, and a
buyer helper. The cart and address APIs are tested elsewhere; here they are only input."""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg

from tests.integration.conftest_cart import make_coupon, make_product, make_variant  # noqa: F401 (re-export)


async def make_address(pool: asyncpg.Pool, tenant_id: uuid.UUID, user_id: uuid.UUID, *, country: str = "RU",
                       postal_code: str = "125009") -> uuid.UUID:
    return await pool.fetchval(
        "INSERT INTO addresses (tenant_id, user_id, recipient_name, street, city, region, country, postal_code,"
        " phone, is_default) VALUES ($1, $2, 'John Doe', 'Tverskaya 15', 'Moscow', 'Moscow Oblast', $3, $4,"
        " '+79991234567', true) RETURNING id", tenant_id, user_id, country, postal_code)


async def make_shipping_method(pool: asyncpg.Pool, tenant_id: uuid.UUID, *, countries: tuple[str, ...] = ("RU",),
                               price: str = "350.00", free_threshold: str | None = None,
                               active: bool = True) -> uuid.UUID:
    return await pool.fetchval(
        "INSERT INTO shipping_methods (tenant_id, name, carrier, min_days, max_days, currency, free_threshold,"
        " zones, weight_bands, active) VALUES ($1, 'Standard Delivery', 'Russian Post', 3, 5, 'RUB', $2::numeric,"
        " $3::jsonb, $4::jsonb, $5) RETURNING id", tenant_id, free_threshold,
        json.dumps([{"countries": list(countries)}]), json.dumps([{"maxGrams": None, "price": price}]), active)


async def fill_cart(pool: asyncpg.Pool, tenant_id: uuid.UUID, user_id: uuid.UUID,
                    lines: list[tuple[uuid.UUID, int]] | list[tuple[uuid.UUID, uuid.UUID | None, int]]) -> uuid.UUID:
    cart_id = await pool.fetchval(
        "INSERT INTO carts (tenant_id, user_id) VALUES ($1, $2) ON CONFLICT (user_id) DO UPDATE SET updated_at = now()"
        " RETURNING id", tenant_id, user_id)
    for line in lines:
        product_id, variant_id, qty = (line[0], None, line[1]) if len(line) == 2 else line  # type: ignore[misc]
        await pool.execute(
            "INSERT INTO cart_items (tenant_id, cart_id, product_id, variant_id, quantity) VALUES ($1, $2, $3, $4, $5)",
            tenant_id, cart_id, product_id, variant_id, qty)
    return cart_id


async def stock_of(pool: asyncpg.Pool, product_id: uuid.UUID) -> dict[str, int]:
    row = await pool.fetchrow("SELECT on_hand, available, reserved, sold FROM stock WHERE product_id = $1"
                              " AND variant_id IS NULL", product_id)
    return dict(row)


async def summary_shows(pool: asyncpg.Pool, product_id: uuid.UUID, available: int, *,
                        within: float = 1.0 + 1.5) -> float:
    """Wait until products.stock_available is `available`; fail past `within` seconds (the
    default: STOCK_SUMMARY_INTERVAL_MS's default plus a slack for a loaded test machine).
    Returns how long it took."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    while True:
        shown = await pool.fetchval("SELECT stock_available FROM products WHERE id = $1", product_id)
        if shown == available:
            return loop.time() - start
        assert loop.time() - start < within, f"products.stock_available is {shown}, not {available}, after {within} s"
        await asyncio.sleep(0.05)


@dataclass
class Buyer:
    user: Any
    address_id: uuid.UUID

    def body(self, method_id: uuid.UUID, **extra: Any) -> dict[str, Any]:
        return {"shippingAddressId": str(self.address_id), "shippingMethodId": str(method_id),
                "paymentMethod": "CARD", **extra}


async def make_buyer(tenant: Any, pool: asyncpg.Pool, lines: list[Any] | None = None, *, role: str = "customer",
                     kyc_status: str = "NONE") -> Buyer:
    user = await tenant.user(role, kyc_status=kyc_status)
    address = await make_address(pool, tenant.id, user.id)
    if lines:
        await fill_cart(pool, tenant.id, user.id, lines)
    return Buyer(user, address)
