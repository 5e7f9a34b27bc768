"""A real `commerce worker` supervisor (Dramatiq's CLI via workers.main): its stderr is JSON
lines only, Dramatiq's own records and a job's traceback included, and its metrics endpoint
counts the jobs its processes ran."""

from __future__ import annotations

import asyncio
import json
import os
import pathlib
import signal
import socket
import subprocess
import urllib.request
import uuid

from engine import outbox
from workers.jobs import PURGE_IDEMPOTENCY_KEYS
from tests.integration.workers.conftest import eventually
from workers.main import spawn

ROOT = pathlib.Path(__file__).resolve().parents[3]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _scrape(port: int) -> str:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
            return resp.read().decode()
    except OSError:
        return ""


async def test_worker_logs_json_lines_and_exports_job_metrics(assembly, worker_settings, tmp_path):
    port = _free_port()
    settings = worker_settings.with_(log_format="json", log_level="info", worker_metrics_port=port, outbox_poll_seconds=0.5)
    err = (tmp_path / "stderr").open("w+")
    proc = spawn(settings, 2, 1, cwd=ROOT, start_new_session=True, stdout=err, stderr=subprocess.STDOUT,
                 extra_env={"PROMETHEUS_MULTIPROC_DIR": ""})
    try:
        assembly.actors[outbox.ORDER_PAID].send(str(uuid.uuid4()))    # succeeds
        # An unexpected TypeError in a job without retries: logged with its traceback, dead-lettered.
        assembly.actors[PURGE_IDEMPOTENCY_KEYS].send("unexpected argument")

        async def counted():
            text = await asyncio.to_thread(_scrape, port)
            ok = f'worker_jobs_total{{job="{outbox.ORDER_PAID}",outcome="ok",queue="payments"}} 1.0'
            failed = f'worker_jobs_total{{job="{PURGE_IDEMPOTENCY_KEYS}",outcome="failed",queue="housekeeping"}} 1.0'
            return text if ok in text and failed in text else None

        text = await eventually(counted, timeout=60, interval=0.5)
        assert f'worker_job_dead_letters_total{{job="{PURGE_IDEMPOTENCY_KEYS}",queue="housekeeping"}} 1.0' in text
        assert "worker_job_duration_seconds_count" in text
        assert 'process_resident_memory_bytes{pid="' in text and 'role="worker"' in text
        assert 'job_queue_messages{queue="housekeeping",state="dead"} 1.0' in text
        # The container health check of this worker (docker-compose.yml) passes while it runs.
        import sys
        from workers.main import settings_env

        health = subprocess.run([sys.executable, "-m", "workers.health"], cwd=ROOT, capture_output=True, text=True,
                                env={**os.environ, **settings_env(settings)}, timeout=30)
        assert health.returncode == 0 and "2 worker process" in health.stdout, health.stdout + health.stderr
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
    err.seek(0)
    lines = [line for line in err.read().splitlines() if line.strip()]
    records = []
    for line in lines:
        try:
            records.append(json.loads(line))
        except ValueError:
            raise AssertionError(f"not a JSON line: {line!r}") from None
    loggers = {r.get("logger", "") for r in records}
    assert any(name.startswith("dramatiq") for name in loggers), loggers   # Dramatiq's own records
    assert any("Traceback" in r.get("exception", "") for r in records)     # the failed job's, on one line
