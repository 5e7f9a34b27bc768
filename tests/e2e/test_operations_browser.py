"""The operations page in a real browser (headless Chromium from the Debian packages, driven
over the DevTools protocol with aiohttp, no extra driver): a staff member signs in through the
form, sees a dead letter with its traceback and re-drives it with the page's Retry button.

Skipped, saying why, when `chromium` is not installed; .ci/run installs it when CI=true."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from engine.identity import cli_support
from tests.integration.workers.conftest import (  # noqa: F401 - fixtures
    assembly, background_loops, eventually, worker, worker_settings)
from web.app import create_app
from workers.deadletters import list_dead_letters
from workers.jobs import PURGE_IDEMPOTENCY_KEYS
from workers.operations import queue_stats

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium; "
                                                          ".ci/run installs it when CI=true)")


class Browser:
    """One headless Chromium page, spoken to over the DevTools protocol."""

    def __init__(self, proc: subprocess.Popen, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.proc, self.ws, self._id = proc, ws, 0

    async def send(self, method: str, **params) -> dict:
        self._id += 1
        await self.ws.send_str(json.dumps({"id": self._id, "method": method, "params": params}))
        while True:
            msg = json.loads((await self.ws.receive(timeout=30)).data)
            if msg.get("id") == self._id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})

    async def js(self, expression: str):
        result = await self.send("Runtime.evaluate", expression=expression, returnByValue=True)
        return result.get("result", {}).get("value")

    async def wait_for(self, expression: str, timeout: float = 20.0):
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            value = await self.js(expression)
            if value:
                return value
            if loop.time() > deadline:
                raise AssertionError(f"{expression} not true within {timeout}s; page: "
                                     f"{await self.js('document.body && document.body.innerText')}")
            await asyncio.sleep(0.2)


async def _launch(tmp_path, session: aiohttp.ClientSession) -> Browser:
    proc = subprocess.Popen([CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                             "--remote-debugging-port=0", f"--user-data-dir={tmp_path / 'chromium'}", "about:blank"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    for _ in range(200):   # "DevTools listening on ws://127.0.0.1:PORT/devtools/browser/ID"
        line = await asyncio.to_thread(proc.stderr.readline)
        if "DevTools listening on" in line:
            port = line.split("ws://127.0.0.1:", 1)[1].split("/", 1)[0]
            break
    else:
        proc.kill()
        raise RuntimeError("chromium did not start")
    async with session.get(f"http://127.0.0.1:{port}/json/list") as r:
        page = next(t for t in await r.json() if t["type"] == "page")
    return Browser(proc, await session.ws_connect(page["webSocketDebuggerUrl"], max_msg_size=0))


async def test_staff_retry_a_dead_letter_in_chromium(assembly, worker, worker_settings, tenant, tmp_path):  # noqa: F811
    await cli_support.create_user(worker_settings, email="ops@example.com", password="ops-password-1",
                                  role="staff", tenant_slug=tenant.slug)
    assembly.actors[PURGE_IDEMPOTENCY_KEYS].send("unexpected")
    await eventually(lambda: _dead_count(worker_settings, 1))
    [letter] = await asyncio.to_thread(list_dead_letters, worker_settings)

    server = TestServer(create_app(worker_settings), host="127.0.0.1")
    await server.start_server()
    async with aiohttp.ClientSession() as session:
        browser = await _launch(tmp_path, session)
        try:
            await browser.send("Network.enable")
            await browser.send("Network.setExtraHTTPHeaders", headers={"X-Tenant": tenant.slug})
            await browser.send("Page.navigate", url=str(server.make_url("/ops")))
            await browser.wait_for("!!document.querySelector('input[name=email]')")
            await browser.js("document.querySelector('input[name=email]').value = 'ops@example.com';"
                             "document.querySelector('input[name=password]').value = 'ops-password-1';"
                             "document.querySelector('form').submit(); true")
            await browser.wait_for("!!document.querySelector('#dead-letters')")
            text = await browser.js("document.querySelector('#dead-letters').innerText")
            assert letter["message_id"] in text and "TypeError" in text and "Traceback" in text
            assert await browser.js("!!document.querySelector('#queues') && !!document.querySelector('#expiry')")
            await browser.js("document.querySelector('#dead-letters button').click(); true")
            notice = await browser.wait_for("document.querySelector('#notice') && "
                                            "document.querySelector('#notice').innerText")
            assert "re-enqueued" in notice and letter["message_id"] in notice
        finally:
            await browser.ws.close()
            browser.proc.kill()
            browser.proc.wait(10)
    await server.close()
    # The re-driven job ran again (and, unable to succeed, is back among the dead).
    await eventually(lambda: _dead_count(worker_settings, 1))


async def _dead_count(settings, n: int) -> bool:
    return (await queue_stats(settings))["dead_letters.total"] == n
