"""The engine's httpx transport: an idle pooled connection the server closed is noticed and replaced."""

from __future__ import annotations

import asyncio
import socket

import httpx

from engine.jaggaer.net import _Stream, fast_transport


class _Inner:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def get_extra_info(self, info: str) -> object:
        return self.sock if info == "socket" else None


def test_idle_check_sees_data_and_close() -> None:
    ours, theirs = socket.socketpair()
    with ours, theirs:
        stream = _Stream(_Inner(ours))  # type: ignore[arg-type]
        assert stream.get_extra_info("is_readable") is False
        theirs.close()  # the server hangs up while the connection is idle
        assert stream.get_extra_info("is_readable") is True


def test_server_closing_idle_connections_does_not_fail_requests() -> None:
    async def main() -> list[int]:
        served = 0

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            nonlocal served
            await reader.readuntil(b"\r\n\r\n")
            served += 1
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: application/json\r\n\r\n{}")
            await writer.drain()
            writer.close()  # keep-alive refused after the answer, without a Connection: close header

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        limits = httpx.Limits(max_connections=2, max_keepalive_connections=2)
        statuses = []
        async with server, httpx.AsyncClient(transport=fast_transport(limits)) as http:
            for _ in range(5):
                statuses.append((await http.get(f"http://127.0.0.1:{port}/x")).status_code)
                await asyncio.sleep(0.05)  # let the close arrive while the connection sits in the pool
        assert served == 5
        return statuses

    assert asyncio.run(main()) == [200] * 5
