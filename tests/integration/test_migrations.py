"""Migrations: each applied once, safe when several processes start together."""

from __future__ import annotations

import asyncio
import secrets

import asyncpg

from engine.migrate import discover, migrate
from tests.conftest import _with_db


async def test_concurrent_migrations_apply_each_version_once(server_urls):
    base = server_urls[0]
    name = f"commerce_migr_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(_with_db(base, "postgres"))
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        url = _with_db(base, name)
        results = await asyncio.gather(*(migrate(url) for _ in range(4)))
        applied = [v for r in results for v in r]
        assert sorted(applied) == [m.version for m in discover()]  # each exactly once, by one of them
        assert await migrate(url) == []
        conn = await asyncpg.connect(url)
        try:
            rows = await conn.fetch("SELECT version FROM schema_migrations ORDER BY version")
            assert [r["version"] for r in rows] == [m.version for m in discover()]
        finally:
            await conn.close()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def test_stock_constraints_make_overselling_impossible(db, tenant):
    pid = await db.fetchval(
        "INSERT INTO products (tenant_id, name, slug, price, currency, sku) VALUES ($1,'P','p',1,'RUB','S') RETURNING id",
        tenant.id)
    sid = await db.fetchval("INSERT INTO stock (tenant_id, product_id, on_hand) VALUES ($1,$2,5) RETURNING id", tenant.id, pid)
    try:
        await db.execute("UPDATE stock SET reserved = reserved + 6 WHERE id = $1", sid)
        raise AssertionError("reserving more than on hand must fail")
    except asyncpg.CheckViolationError:
        pass
    row = await db.fetchrow("SELECT on_hand, reserved, sold, available FROM stock WHERE id = $1", sid)
    assert tuple(row) == (5, 0, 0, 5)
