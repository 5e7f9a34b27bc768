from __future__ import annotations

from typing import AsyncIterator

import pytest

from engine.db import Database


@pytest.fixture
async def database(base_settings) -> AsyncIterator[Database]:
    """The engine's own unit-of-work port, for calling engine functions directly."""
    db = Database(base_settings.with_(db_pool_max=20))
    await db.open()
    yield db
    await db.close()
