"""Schema migrations: versioned SQL files in engine/migrations, each applied once, in its own
transaction, under a PostgreSQL advisory lock so processes starting together are safe.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import asyncpg

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
# Any constant works; it only has to be the same for every process of this engine.
_LOCK_ID = 0x636F6D6D  # "comm"


@dataclass(frozen=True, slots=True)
class Migration:
    version: str
    path: Path


def discover(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """Every NNNN_name.sql file, in version order."""
    return [Migration(p.stem, p) for p in sorted(directory.glob("[0-9][0-9][0-9][0-9]_*.sql"))]


async def migrate(dsn: str, directory: Path = MIGRATIONS_DIR) -> list[str]:
    """Apply pending migrations; return the versions applied by this call."""
    conn = await asyncpg.connect(dsn)
    applied_now: list[str] = []
    try:
        # Session-level lock: held across the per-migration transactions below.
        await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_ID)
        try:
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            done = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
            for m in discover(directory):
                if m.version in done:
                    continue
                async with conn.transaction():
                    await conn.execute(m.path.read_text())
                    await conn.execute("INSERT INTO schema_migrations (version) VALUES ($1)", m.version)
                applied_now.append(m.version)
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_ID)
    finally:
        await conn.close()
    return applied_now
