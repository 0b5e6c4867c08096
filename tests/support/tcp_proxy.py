"""A TCP proxy a test controls, to take PostgreSQL or RabbitMQ away without touching them.

`cut()` drops every live connection (both sides are reset) and stops listening, so new
connections are refused, as when the server is down; `restore()` listens again on the
same port. `reset()` drops every live connection and goes on listening, as a network fault
that broke only the open connections. `freeze()` keeps every connection open but passes
nothing on, as a server that hangs or a route that drops packets (nothing is refused,
nothing answers); `thaw()` lets the data flow again, and `held` counts the directions of
connections whose data a freeze holds back (a query sent and not answered holds one).
Runs in the test's event loop.
"""

from __future__ import annotations

import asyncio
from types import TracebackType

CHUNK = 64 * 1024


class TcpProxy:
    def __init__(self, target_host: str, target_port: int, *, host: str = "127.0.0.1") -> None:
        self.target_host = target_host
        self.target_port = target_port
        self.host = host
        self.port = 0
        self._server: asyncio.Server | None = None
        self._links: set[asyncio.Task[None]] = set()
        self._transports: set[asyncio.WriteTransport] = set()
        self._generation = 0  # bumped by cut(): a link opened before it must not live on
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._held = 0

    @property
    def is_cut(self) -> bool:
        return self._server is None

    def url_for(self, url: str) -> str:
        """`url` (a postgresql:// or amqp:// URL) pointed at the proxy instead."""
        from urllib.parse import urlsplit, urlunsplit

        parts = urlsplit(url)
        userinfo = parts.netloc.rsplit("@", 1)[0] + "@" if "@" in parts.netloc else ""
        return urlunsplit(parts._replace(netloc=f"{userinfo}{self.host}:{self.port}"))

    async def start(self) -> TcpProxy:
        await self._listen()
        return self

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(
            self._accept, self.host, self.port, reuse_address=True
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def cut(self) -> None:
        """Refuses new connections and resets every open one."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        self._generation += 1
        for transport in list(self._transports):
            transport.abort()
        self._transports.clear()
        self._flowing.set()  # links held by freeze() end too
        # The links end by themselves once their sockets are gone (cancelling a
        # start_server handler makes asyncio log an error).
        if self._links:
            await asyncio.wait(list(self._links))

    async def reset(self) -> None:
        """Resets every open connection and goes on listening (and lets data flow, as
        thaw() does): a new connection gets through at once."""
        self._generation += 1
        links = list(self._links)
        for transport in list(self._transports):
            transport.abort()
        self._transports.clear()
        self._flowing.set()
        if links:
            await asyncio.wait(links)

    def freeze(self) -> None:
        self._flowing.clear()

    def thaw(self) -> None:
        self._flowing.set()

    @property
    def held(self) -> int:
        """Directions of connections holding data back while frozen."""
        return self._held

    async def restore(self) -> None:
        if self._server is None:
            await self._listen()

    async def close(self) -> None:
        await self.cut()

    async def __aenter__(self) -> TcpProxy:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(CHUNK):
                if not self._flowing.is_set():
                    self._held += 1
                    try:
                        await self._flowing.wait()
                    finally:
                        self._held -= 1
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            # One side ended: end the other too, as a plain TCP connection would.
            writer.transport.abort()

    async def _accept(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._links.add(task)
        client_t = client_w.transport
        self._transports.add(client_t)
        upstream_t: asyncio.WriteTransport | None = None
        generation = self._generation
        try:
            await self._flowing.wait()
            try:
                up_r, up_w = await asyncio.open_connection(self.target_host, self.target_port)
            except OSError:
                return
            upstream_t = up_w.transport
            if generation != self._generation:
                return
            self._transports.add(upstream_t)
            await asyncio.gather(self._pipe(client_r, up_w), self._pipe(up_r, client_w))
        finally:
            self._links.discard(task)
            for transport in (client_t, upstream_t):
                if transport is not None:
                    self._transports.discard(transport)
                    transport.abort()
