"""A fault-injecting TCP proxy: sits in front of PostgreSQL or Redis on 127.0.0.1.

The proxy runs its own asyncio loop in a daemon thread, so it keeps forwarding while the test
blocks (restarting a server, waiting on a process) and its knobs can be turned from any thread:

    proxy = TcpProxy(target_port=5432).start()
    proxy.set_latency(0.2)      # every client->server chunk is delivered 200 ms late (pipelining kept)
    proxy.refuse()              # new connections are reset at once, live ones are reset too
    proxy.blackhole()           # new connections are accepted and never answered (a hung network)
    proxy.heal()                # pass traffic again, no latency
    proxy.reset_all()           # RST every live connection, keep accepting
    proxy.stop()

Invariant: every loop is bounded by the life of its connection; `stop()` closes every
connection and joins the thread within a few seconds.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import threading
import time
from typing import Any

PASS, REFUSE, BLACKHOLE = "pass", "refuse", "blackhole"
_CHUNK = 65536


def _abort_with_rst(writer: asyncio.StreamWriter) -> None:
    """Close with SO_LINGER 0, so the peer sees a connection reset rather than a clean FIN."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
    writer.transport.abort()


class TcpProxy:
    def __init__(self, target_port: int, *, listen_port: int = 0, target_host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self.port = listen_port
        self.mode = PASS
        self.latency = 0.0
        self.connections_total = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.AbstractServer | None = None
        self._live: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter | None]] = set()
        self._ready = threading.Event()

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> "TcpProxy":
        self._thread = threading.Thread(target=self._run, name=f"proxy-{self.target[1]}", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("proxy did not start")
        return self

    def _run(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._loop.run_until_complete(self._listen())
        self._ready.set()
        self._loop.run_forever()
        self._loop.close()

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port, reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]

    def stop(self) -> None:
        if self._loop is None or self._thread is None:
            return
        self._call(self._shutdown)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop = None

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        self._reset_live()
        me = asyncio.current_task()
        pending = [t for t in asyncio.all_tasks() if t is not me]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    @property
    def url_port(self) -> int:
        return self.port

    # -- knobs (thread-safe) ----------------------------------------------------------------

    def _call(self, fn: Any, *args: Any) -> None:
        assert self._loop is not None, "proxy not started"

        async def run() -> None:
            result = fn(*args)
            if asyncio.iscoroutine(result):
                await result

        asyncio.run_coroutine_threadsafe(run(), self._loop).result(5)

    def set_latency(self, seconds: float) -> None:
        self.latency = max(0.0, seconds)

    def refuse(self) -> None:
        """Dependency unreachable: reset every live connection and every new one."""
        self.mode = REFUSE
        self._call(self._reset_live)

    def blackhole(self) -> None:
        """Dependency hung: accept, then never answer (live connections stall too)."""
        self.mode = BLACKHOLE

    def heal(self) -> None:
        self.mode = PASS
        self.latency = 0.0

    def reset_all(self) -> None:
        self._call(self._reset_live)

    def _reset_live(self) -> None:
        for client, upstream in list(self._live):
            _abort_with_rst(client)
            if upstream is not None:
                _abort_with_rst(upstream)
        self._live.clear()

    # -- forwarding --------------------------------------------------------------------------

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections_total += 1
        if self.mode == REFUSE:
            _abort_with_rst(writer)
            return
        entry: tuple[asyncio.StreamWriter, asyncio.StreamWriter | None]
        try:
            up_reader, up_writer = await asyncio.wait_for(asyncio.open_connection(*self.target), 5)
        except (OSError, asyncio.TimeoutError):
            _abort_with_rst(writer)  # the real server is down: the client sees what it would see
            return
        entry = (writer, up_writer)
        self._live.add(entry)
        try:
            await asyncio.gather(self._pipe(reader, up_writer, delay=True), self._pipe(up_reader, writer, delay=False))
        finally:
            self._live.discard(entry)
            for w in (writer, up_writer):
                if not w.is_closing():
                    w.close()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, delay: bool) -> None:
        """Copy until EOF. With latency, chunks are stamped on arrival and released `latency`
        later by a second task, so delay adds to each round trip without serialising them."""
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def release() -> None:
            while True:
                arrived, data = await queue.get()
                if not data:
                    return
                while self.mode == BLACKHOLE:
                    await asyncio.sleep(0.05)
                if delay and self.latency:
                    wait = arrived + self.latency - time.monotonic()
                    if wait > 0:
                        await asyncio.sleep(wait)
                writer.write(data)
                await writer.drain()

        releaser = asyncio.ensure_future(release())
        try:
            while True:
                try:
                    data = await reader.read(_CHUNK)
                except (ConnectionError, OSError):
                    data = b""
                await queue.put((time.monotonic(), data))
                if not data:
                    break
            await releaser
        except (ConnectionError, OSError):
            pass
        finally:
            if not releaser.done():
                releaser.cancel()
            try:
                if writer.can_write_eof() and not writer.is_closing():
                    writer.write_eof()
            except (OSError, RuntimeError):
                pass
