"""Dev mode in production: `commerce serve` refuses DEV_MODE=true instead of signing tokens with the public dev key.

Dev mode means the public development JWT key, default payment secrets and the sandbox payment
provider; an environment variable must not switch a production server into it (issue 13).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("value", ["true", "1", "yes"])
def test_serve_exits_when_dev_mode_is_in_the_environment(value: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TEST_", "PG"))}
    env.update({"DEV_MODE": value, "DATABASE_URL": "postgresql://nowhere.invalid/x",
                "REDIS_URL": "redis://nowhere.invalid", "PYTHONPATH": str(ROOT)})
    done = subprocess.run([sys.executable, "-m", "ops.cli", "serve", "--port", "1"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and "DEV_MODE" in done.stderr, (done.returncode, done.stderr[-500:])
    assert "api_listening" not in done.stdout + done.stderr
