"""A py-spy flame graph of the flash-sale phase: one API process, `--buyers` buyers with the hot
product in their cart checking out at `--concurrency` in flight, while py-spy samples the API
process. Writes an SVG (default docs/bench/flash-before.svg).

    python -m loadtests.bench.profile_flash --out docs/bench/flash-after.svg

Needs py-spy on PATH (or next to this interpreter) and permission to ptrace the API process
(it is our own child, so the default Yama scope 1 allows it).
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import asyncpg

from loadtests.bench.contention import _checkout
from loadtests.bench.loadgen import closed_loop
from loadtests.engine_run import GENEROUS_LIMITS, JWT_SECRET, REPO, EngineRun
from loadtests.fixtures import Tokens, add_products, arrange_shop, fill_carts


def _py_spy() -> str:
    beside = Path(sys.executable).parent / "py-spy"
    found = str(beside) if beside.exists() else shutil.which("py-spy")
    if not found:
        raise SystemExit("py-spy not found: pip install py-spy")
    return found


async def _prepare(engine: EngineRun, tokens: Tokens, buyers: int, stock: int):
    shop = await arrange_shop(engine.database_url, tokens, products=50, buyers=buyers, reviews=0)
    conn = await asyncpg.connect(engine.database_url)
    try:
        tenant = uuid.UUID(shop.tenant_id)
        await conn.execute("UPDATE users SET kyc_status = 'VERIFIED' WHERE tenant_id = $1", tenant)
        hot = (await add_products(conn, tenant, [uuid.UUID(shop.category_ids["electronics"])], 1, stock,
                                  name="Profiled flash sale"))[0]
        await fill_carts(conn, tenant, shop.buyers, lambda i: hot)
    finally:
        await conn.close()
    return shop


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="profile_flash", description=__doc__.splitlines()[0])
    p.add_argument("--out", default=str(REPO / "docs" / "bench" / "flash-before.svg"))
    p.add_argument("--buyers", type=int, default=3000)
    p.add_argument("--stock", type=int, default=3000, help="units of the hot product (default: one per buyer)")
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--seconds", type=float, default=15.0)
    p.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    a = p.parse_args(argv)
    env = {**GENEROUS_LIMITS, "DB_POOL_MAX": "32"}
    with EngineRun(processes=1, env=env, label="profile") as engine:
        tokens = Tokens(f"bench:{JWT_SECRET}")
        shop = asyncio.run(_prepare(engine, tokens, a.buyers, a.stock))
        pid = engine.api_pids()[0]
        spy = subprocess.Popen([_py_spy(), "record", "--pid", str(pid), "--rate", str(a.rate), "--format",
                                "flamegraph", "--output", a.out, "--duration", str(int(a.seconds) + 1), "--nonblocking"])
        r = asyncio.run(closed_loop(_checkout(engine, shop, shop.buyers), concurrency=a.concurrency,
                                    seconds=a.seconds, max_requests=len(shop.buyers)))
        spy.wait(a.seconds + 60)
    print(f"profile: {r.sent} checkouts in {r.wall:.1f}s, statuses {r.statuses}; flame graph {a.out}")
    return 0 if spy.returncode == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
