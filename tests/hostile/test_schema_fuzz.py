"""Schemathesis against the served OpenAPI document: no 500s, responses match the schema.

A real `commerce serve` process (tests/faults/toolkit.py) on the session's database, fuzzed as a
staff member and as a customer; checks not_a_server_error, response_schema_conformance and
status_code_conformance (an undocumented status fails the run), phases examples, coverage,
fuzzing and stateful. Short pass by default; HOSTILE_LONG=1 for the long pass.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.faults.shop import token_for
from tests.faults.toolkit import ApiProcess, free_port, service_env

LONG = os.environ.get("HOSTILE_LONG") == "1"
MAX_TIME = 600 if LONG else 25
MAX_EXAMPLES = 200 if LONG else 10
CHECKS = "not_a_server_error,response_schema_conformance,status_code_conformance"
# Logging out would revoke the very token the fuzzer is using.
EXCLUDE = ("/api/v1/auth/logout",)


@pytest.fixture
def served(database_url, redis_url, tmp_path: Path):
    env = service_env(database_url=database_url, redis_url=redis_url, port=free_port(),
                      redis_prefix=f"fuzz{os.getpid()}")
    api = ApiProcess(env, tmp_path, "fuzzed-api").start()
    yield api
    api.stop()


def _schemathesis() -> str:
    found = shutil.which("schemathesis") or str(Path(sys.executable).with_name("schemathesis"))
    if not Path(found).exists():
        pytest.skip("schemathesis is not installed (add it to the test extra)")
    return found


@pytest.mark.parametrize("role", ["staff", "customer"])
async def test_fuzz_the_served_schema(served: ApiProcess, tenant, role: str, tmp_path: Path) -> None:
    user = await tenant.user(role)
    token = token_for(user.id, tenant.id, role, ("*",) if role == "staff" else ())
    cmd = [_schemathesis(), "run", served.base_url + "/api/v1/openapi.json", "--url", served.base_url,
           "--checks", CHECKS, "--max-examples", str(MAX_EXAMPLES), "--max-time", str(MAX_TIME),
           "--phases", "examples,coverage,fuzzing,stateful", "--request-timeout", "10", "--seed", "8",
           "--generation-deterministic", "-H", f"Authorization: Bearer {token}", "-H", f"X-Tenant: {tenant.slug}",
           "--suppress-health-check", "all", "--report-dir", str(tmp_path / "report"), "--no-color"]
    for path in EXCLUDE:
        cmd += ["--exclude-path", path]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=MAX_TIME * 4 + 120)
    output = result.stdout[-6000:] + result.stderr[-2000:]
    assert result.returncode == 0, output
