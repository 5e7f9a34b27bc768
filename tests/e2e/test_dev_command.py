"""`commerce dev` as a newcomer runs it: one command brings up the engine on embedded PostgreSQL
and Redis; /readyz answers 200, the OpenAPI document validates as 3.1, /docs renders, the demo
login works and products are listed; Ctrl-C (SIGINT) or SIGTERM stops it with no server process
left behind; a second run on the same data folder finds the same data and seeds nothing twice."""

from __future__ import annotations

import os
import re
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from openapi_spec_validator import validate

from tests.e2e.conftest import (
    Http,
    Service,
    clean_env,
    data,
    describe,
    free_port,
    wait_until,
)

READY_LIMIT = 90.0   # first run: initdb, migrations, seeding
STOP_LIMIT = 20.0
PRODUCTS = 30
SERVER_NAMES = ("postgres", "valkey-server", "redis-server")


class DevRun:
    """One `commerce dev` process on `data_dir`, and what it had started."""

    def __init__(self, data_dir: Path, log_dir: Path, run: int) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        env = clean_env(drop=("HOST", "PORT", "PUBLIC_BASE_URL"))
        self.service = Service(["dev", "--port", str(self.port), "--data-dir", str(data_dir),
                                "--products", str(PRODUCTS)], env, log_dir / f"dev-{run}.log")
        self.http = Http(f"http://127.0.0.1:{self.port}")

    def start(self) -> DevRun:
        self.service.start()

        def ready() -> bool:
            self.service.check_alive()
            return self.http.ready()

        try:
            wait_until(ready, READY_LIMIT, 0.25, what="commerce dev /readyz 200")
        except TimeoutError as exc:
            raise AssertionError(f"{exc}\n{self.service.log_tail()}") from None
        return self

    def children(self) -> list[psutil.Process]:
        return psutil.Process(self.service.pid).children(recursive=True)

    def stop_with(self, sig: signal.Signals) -> tuple[int, list[psutil.Process]]:
        """Send `sig` as a terminal would (to the dev process's group); return its exit code and
        every process it had started (servers and their backends), recorded just before."""
        servers = self.children()
        names = {_name(p) for p in servers}
        assert "postgres" in names and names & {"valkey-server", "redis-server"}, \
            f"expected embedded postgres and redis children of commerce dev, saw {sorted(names)}"
        self.service.signal(sig, group=True)
        try:
            code = self.service.wait(STOP_LIMIT)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"commerce dev still running {STOP_LIMIT:.0f}s after {sig.name}:\n"
                                 f"{self.service.log_tail()}") from None
        return code, servers


def _name(p: psutil.Process) -> str:
    try:
        return p.name()
    except psutil.Error:
        return ""


def leftovers(data_dir: Path) -> list[str]:
    """Processes still working in (or naming) the data folder: what a stop left behind."""
    here = str(data_dir.resolve())
    found = []
    for p in psutil.process_iter(["pid", "name", "cwd", "cmdline"]):
        try:
            cwd = p.info["cwd"] or ""
            cmdline = " ".join(p.info["cmdline"] or ())
        except psutil.Error:
            continue
        if (cwd.startswith(here) or here in cmdline) and p.pid != os.getpid():
            found.append(f"{p.info['pid']} {p.info['name']} cwd={cwd} {cmdline[:200]}")
    return found


def assert_nothing_left(servers: list[psutil.Process], data_dir: Path) -> None:
    _, alive = psutil.wait_procs(servers, timeout=5)
    assert not alive, f"servers still running after the stop: {alive}"
    try:
        wait_until(lambda: not leftovers(data_dir), 5, 0.2, what="no process left in the data dir")
    except TimeoutError:
        raise AssertionError(f"left behind: {leftovers(data_dir)}") from None


def pay_like_a_newcomer(http: Http, port: int) -> None:
    """A card checkout's paymentUrl points at the port dev actually runs on, and its page pays."""
    from tests.e2e.test_journey import (add_to_cart, checkout, pick_product, register, save_address,
                                        shipping_method, wait_status)

    token = register(http)
    address = save_address(http, token)
    product_id, variant_id = pick_product(http, token)
    add_to_cart(http, token, product_id, variant_id, 1)
    placed = data(checkout(http, token, address["id"], shipping_method(http, token, address), "dev-pay-1"), 201)
    url = placed["payment"]["paymentUrl"]
    assert url.startswith(f"http://127.0.0.1:{port}/pay/"), url
    page = http.get(url)
    assert page.status_code == 200, describe(page)
    form = re.search(r'action="([^"]*/complete)"[^>]*><input type="hidden" name="csrf" value="(\w+)"', page.text)
    assert form, page.text[:1500]
    paid = http.post(form.group(1), data={"csrf": form.group(2)}, allow_redirects=False)
    assert paid.status_code == 303, describe(paid)
    wait_status(http, token, placed["orderId"], "PAID", 10)


def snapshot(http: Http) -> tuple[set[str], int]:
    """Product ids (every page) and the listing's total."""
    r = http.get("/products", params={"pageSize": 100})
    page = data(r)
    total = r.json()["meta"]["pagination"]["total"]
    ids = {p["id"] for p in page["products"]}
    return ids, total


@pytest.fixture
def dev_dirs(tmp_path: Path) -> Iterator[tuple[Path, Path, list[DevRun]]]:
    """A data folder, a log folder, and the runs started (each stopped at the end, whatever happened)."""
    data_dir = tmp_path / "data"
    log_dir = tmp_path / "logs"
    log_dir.mkdir()
    runs: list[DevRun] = []
    yield data_dir, log_dir, runs
    for run in runs:
        run.service.stop()
    for line in leftovers(data_dir):  # last resort: never leave a server of ours behind
        try:
            psutil.Process(int(line.split()[0])).kill()
        except psutil.Error:
            pass


def test_dev_runs_stops_clean_and_keeps_data(dev_dirs: tuple[Path, Path, list[DevRun]]) -> None:
    data_dir, log_dir, runs = dev_dirs

    # ---- first run: everything from nothing
    first = DevRun(data_dir, log_dir, 1)
    runs.append(first)
    first.start()
    http = first.http
    assert http.get("/healthz").status_code == 200

    spec = http.get("/api/v1/openapi.json")
    assert spec.status_code == 200, describe(spec)
    doc = spec.json()
    assert doc["openapi"].startswith("3.1"), doc["openapi"]
    validate(doc)

    docs = http.get("/docs")
    assert docs.status_code == 200, describe(docs)
    assert docs.headers["Content-Type"].startswith("text/html")
    assert "<html" in docs.text.lower()

    token = http.login("demo@example.com", "demo-password-1")
    me = data(http.get("/me", token=token))
    assert me["email"] == "demo@example.com"
    assert http.login("admin@example.com", "admin-password-1")

    ids, total = snapshot(http)
    assert total == PRODUCTS and len(ids) == PRODUCTS, (total, len(ids))
    pay_like_a_newcomer(http, first.port)

    code, servers = first.stop_with(signal.SIGINT)
    assert code in (0, -signal.SIGINT, 130), f"exit code {code}:\n{first.service.log_tail()}"
    assert_nothing_left(servers, data_dir)

    # ---- second run on the same folder: same data, nothing seeded twice
    second = DevRun(data_dir, log_dir, 2)
    runs.append(second)
    second.start()
    ids2, total2 = snapshot(second.http)
    assert total2 == PRODUCTS, f"seeding duplicated products: {total2} listed after a restart"
    assert ids2 == ids, "the products changed across a restart on the same data dir"
    assert second.http.login("demo@example.com", "demo-password-1")

    # ---- stopped by SIGTERM (a service manager) this time
    code, servers = second.stop_with(signal.SIGTERM)
    assert code in (0, -signal.SIGTERM, 143), f"exit code {code}:\n{second.service.log_tail()}"
    assert_nothing_left(servers, data_dir)

    # ---- and the data survived that stop too
    third = DevRun(data_dir, log_dir, 3)
    runs.append(third)
    third.start()
    ids3, total3 = snapshot(third.http)
    assert (ids3, total3) == (ids, PRODUCTS)
    code, servers = third.stop_with(signal.SIGTERM)
    assert_nothing_left(servers, data_dir)
