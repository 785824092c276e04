"""httpx's transport with a cheaper idle-connection check (the hot spot of many small requests).

Before each request and after each response httpcore asks every idle pooled connection whether the
server has closed it (`get_extra_info("is_readable")`). Its anyio stream answers by rebuilding all
socket attributes (`getpeername()` and friends) and a fresh `select.poll` each time: about a fifth of
the client's CPU per detail read here. `_Stream` wraps the same anyio stream and answers with one
`poll(0)` on a poll object registered once. Same semantics (readable or gone = expired), same sockets.
"""

from __future__ import annotations

import select
import ssl
from collections.abc import Iterable
from typing import Any

import httpcore
import httpx


class _Stream(httpcore.AsyncNetworkStream):
    def __init__(self, inner: httpcore.AsyncNetworkStream) -> None:
        self._inner = inner
        self._poll: Any = None
        sock = inner.get_extra_info("socket")
        if sock is not None and sock.fileno() >= 0 and hasattr(select, "poll"):
            self._poll = select.poll()
            self._poll.register(sock.fileno(), select.POLLIN)

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return await self._inner.read(max_bytes, timeout)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        await self._inner.write(buffer, timeout)

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def start_tls(self, ssl_context: ssl.SSLContext, server_hostname: str | None = None,
                        timeout: float | None = None) -> httpcore.AsyncNetworkStream:
        return _Stream(await self._inner.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> Any:
        if info == "is_readable" and self._poll is not None:
            return bool(self._poll.poll(0))  # data, EOF, error or a closed fd (POLLNVAL) alike
        return self._inner.get_extra_info(info)


class _Backend(httpcore.AsyncNetworkBackend):
    def __init__(self) -> None:
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                          socket_options: Iterable[Any] | None = None) -> httpcore.AsyncNetworkStream:
        return _Stream(await self._inner.connect_tcp(host, port, timeout, local_address, socket_options))

    async def connect_unix_socket(self, path: str, timeout: float | None = None,
                                  socket_options: Iterable[Any] | None = None) -> httpcore.AsyncNetworkStream:
        return _Stream(await self._inner.connect_unix_socket(path, timeout, socket_options))

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def fast_transport(limits: httpx.Limits) -> httpx.AsyncHTTPTransport:
    """`httpx.AsyncHTTPTransport(limits=...)` whose pool uses `_Backend` (httpx has no public hook for
    the network backend: set on its httpcore pool, which it creates with the default one)."""
    transport = httpx.AsyncHTTPTransport(limits=limits)
    pool = getattr(transport, "_pool", None)
    if isinstance(pool, httpcore.AsyncConnectionPool) and hasattr(pool, "_network_backend"):
        pool._network_backend = _Backend()
    return transport
