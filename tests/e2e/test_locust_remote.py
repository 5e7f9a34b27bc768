"""A performance engineer's way in: `locust -f loadtests/scenarios/<suite>.py --host URL`
against a running `commerce dev`, with nothing but the URL (and demo staff credentials): no
database URL, no JWT key, no LOADTEST_SHOP. The suite discovers the shop and registers its
buyers through the API, and writes Locust's CSV time series and HTML report."""

from __future__ import annotations

import csv
import secrets
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest

from tests.e2e.conftest import REPO, Http, Service, clean_env, free_port, wait_until


@pytest.fixture(scope="module")
async def empty_database(server_urls):
    base, name = server_urls[0], f"commerce_locust_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(base)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    yield base.rsplit("/", 1)[0] + "/" + name
    admin = await asyncpg.connect(base)
    await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await admin.close()


@pytest.fixture(scope="module")
def dev_port(empty_database, server_urls, tmp_path_factory):
    """One `commerce dev` (external servers, its own fresh database) for the suites below."""
    port = free_port()
    dev = Service(["dev", "--port", str(port), "--products", "30"],
                  clean_env({"DATABASE_URL": empty_database, "REDIS_URL": server_urls[1],
                             "REDIS_PREFIX": f"lt{secrets.token_hex(3)}",
                             # The deployment is configured for load: checkout's 2/min would answer 429.
                             "RATE_FINANCIAL": "10000"}, drop=("HOST", "PORT", "PUBLIC_BASE_URL")),
                  tmp_path_factory.mktemp("dev") / "dev.log")
    dev.start()
    try:
        http = Http(f"http://127.0.0.1:{port}")
        wait_until(lambda: (dev.check_alive(), http.ready())[1], 120, what="commerce dev ready")
        yield port
    finally:
        dev.stop()


@pytest.mark.parametrize("suite", ["browse", "shopper"])
def test_a_locust_suite_runs_against_a_url_with_only_credentials(suite, dev_port, tmp_path):
    port = dev_port
    env = clean_env({"LOCUST_STAFF_EMAIL": "admin@example.com", "LOCUST_STAFF_PASSWORD": "admin-password-1"},
                    drop=("LOADTEST_SHOP", "LOADTEST_TALLY"))
    assert not {"DATABASE_URL", "JWT_KEYS", "LOADTEST_SHOP"} & set(env)
    out = tmp_path / "out"
    out.mkdir()
    proc = subprocess.run(
        [sys.executable, "-m", "locust", "--config", "loadtests/locust.conf",   # its defaults, overridden:
         "-f", f"loadtests/scenarios/{suite}.py", "--host", f"http://127.0.0.1:{port}",
         "--headless", "-u", "3", "-r", "3", "-t", "5s", "--only-summary",
         "--csv", str(out / suite), "--csv-full-history", "--html", str(out / f"{suite}.html")],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert (out / f"{suite}_stats.csv").exists(), proc.stderr[-3000:]
    rows = list(csv.DictReader((out / f"{suite}_stats.csv").open()))
    assert rows, proc.stderr[-3000:]
    total = next(r for r in rows if r["Name"] == "Aggregated")
    assert int(total["Request Count"]) > 0, proc.stderr[-3000:]
    assert int(total["Failure Count"]) == 0, (out / f"{suite}_failures.csv").read_text() + proc.stderr[-3000:]
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (out / f"{suite}_stats_history.csv").stat().st_size > 0 and (out / f"{suite}.html").exists()
