"""The worker container's health check: `python -m workers.health` exits 0 when this host's
`commerce worker` supervisor answers on its metrics endpoint (WORKER_METRICS_PORT) and lists
at least one live worker process, 1 otherwise. It checks the worker itself, not the API.
"""

from __future__ import annotations

import sys
import urllib.request

from engine.settings import Settings


def main() -> int:
    settings = Settings.from_env()
    if not settings.worker_metrics_port:
        print("WORKER_METRICS_PORT=0: no endpoint to check", file=sys.stderr)
        return 1
    host = "127.0.0.1" if settings.worker_metrics_host in ("0.0.0.0", "") else settings.worker_metrics_host
    try:
        with urllib.request.urlopen(f"http://{host}:{settings.worker_metrics_port}/metrics", timeout=5) as resp:
            text = resp.read().decode()
    except OSError as exc:
        print(f"worker metrics endpoint unreachable: {exc}", file=sys.stderr)
        return 1
    workers = sum(1 for line in text.splitlines()
                  if line.startswith("process_resident_memory_bytes{") and 'role="worker"' in line)
    if workers < 1:
        print("no live worker process", file=sys.stderr)
        return 1
    print(f"ok: {workers} worker process(es)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
