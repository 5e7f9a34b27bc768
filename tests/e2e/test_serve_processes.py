"""`commerce serve --processes 2`: an API process that dies (SIGKILL, as the OOM killer does)
is replaced, the port keeps answering, and SIGTERM still stops everything."""

from __future__ import annotations

import os
import signal

import psutil

from tests.e2e.conftest import Http, Service, clean_env, free_port, wait_until
from workers.main import settings_env


def test_a_killed_api_process_is_replaced(base_settings, tmp_path):
    port = free_port()
    # `commerce serve` refuses dev mode: production settings, with their own signing key.
    settings = base_settings.with_(host="127.0.0.1", port=port, log_format="json", log_level="info", dev_mode=False,
                                   jwt_keys="k1:serve-processes-test-key-0123456789abcdef")
    service = Service(["serve", "--processes", "2"], clean_env(settings_env(settings)), tmp_path / "serve.log")
    http = Http(f"http://127.0.0.1:{port}")
    service.start()
    try:
        def children() -> list[int]:
            service.check_alive()
            return sorted(p.pid for p in psutil.Process(service.pid).children()
                          if "multiprocessing.resource_tracker" not in " ".join(p.cmdline()))

        wait_until(lambda: len(children()) == 2 and http.ready(), 60, what="two API processes ready")
        first = children()
        os.kill(first[0], signal.SIGKILL)
        replaced = wait_until(lambda: (lambda now: now if len(now) == 2 and first[0] not in now else None)(children()),
                              30, what="the killed API process replaced")
        assert first[1] in replaced
        wait_until(http.ready, 30, what="ready after the replacement")
        for _ in range(10):
            assert http.get("/healthz").status_code == 200
        assert "api_process_replaced" in service.log_path.read_text(), service.log_tail()
        service.signal(signal.SIGTERM)
        assert service.wait(30) == 0
    finally:
        service.stop()
