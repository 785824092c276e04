"""A small HTTP/1.1 server on asyncio + h11, shared by both simulators.

Why not an ASGI server: the simulators must be able to drop a connection without sending a byte
(before or after a write was committed), hold an answer for N seconds, cap concurrent requests and
close idle keep-alive connections like Apache does. With the socket in hand each of these is one
line. h11 does the HTTP parsing and framing, so keep-alive, chunked bodies and pipelining are right.

Use:

    async def handler(request: Request) -> Response: ...
    server = HttpServer(handler, host="127.0.0.1", port=0)
    with ServerThread(server) as running:        # tests: a background thread, ephemeral port
        httpx.get(f"{running.base_url}/ping/")
    asyncio.run(server.serve_forever())           # CLI: foreground
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import ssl as ssl_module
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from urllib.parse import parse_qsl, unquote

import h11

__all__ = [
    "DropConnection",
    "HttpServer",
    "Request",
    "Response",
    "ServerThread",
]


class DropConnection(Exception):
    """Raised by a handler to close the socket without answering (a dropped connection)."""


@dataclass
class Request:
    method: str
    target: str  # raw request target, e.g. "/b1s/v2/BusinessPartners('A%23B')?$top=5"
    headers: dict[str, str]  # lower-cased names; repeated headers joined with ", "
    body: bytes = b""
    client: tuple[str, int] | None = None
    scheme: str = "http"
    host: str = ""  # the Host header as sent (for absolute links in answers)

    @property
    def raw_path(self) -> str:
        """The path as sent, still percent-encoded (keys like `('A%23B')` are decoded by the app)."""
        return self.target.split("?", 1)[0]

    @property
    def path(self) -> str:
        return unquote(self.raw_path)

    @property
    def query_string(self) -> str:
        return self.target.split("?", 1)[1] if "?" in self.target else ""

    @property
    def query(self) -> dict[str, str]:
        """Decoded query parameters; the last one wins when a name repeats."""
        return dict(parse_qsl(self.query_string, keep_blank_values=True))

    @property
    def base_url(self) -> str:
        return f"{self.scheme}://{self.host}"

    def cookies(self) -> dict[str, str]:
        jar: dict[str, str] = {}
        for part in self.headers.get("cookie", "").split(";"):
            name, sep, value = part.strip().partition("=")
            if sep:
                jar[name] = value
        return jar


@dataclass
class Response:
    status: int = 200
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""

    @classmethod
    def empty(cls, status: int, headers: list[tuple[str, str]] | None = None) -> Response:
        return cls(status, list(headers or []), b"")


Handler = Callable[[Request], Awaitable[Response]]
_REASONS = {status.value: status.phrase.encode() for status in HTTPStatus}
# Called when a request body is over the limit: the app's own error answer (e.g. a 413 envelope).
TooLargeHandler = Callable[[Request], Response]


def _default_too_large(request: Request) -> Response:
    return Response(413, [("Content-Type", "text/plain")], b"Request body too large")


class HttpServer:
    """Serves `handler` on host:port. One instance per listening socket."""

    def __init__(
        self,
        handler: Handler,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        ssl_context: ssl_module.SSLContext | None = None,
        max_body_bytes: int = 52_428_800,
        on_too_large: TooLargeHandler = _default_too_large,
        keep_alive_timeout: float = 5.0,
        keep_alive_max: int = 100,
        extra_headers: list[tuple[str, str]] | None = None,
    ) -> None:
        self.handler = handler
        self.host = host
        self.port = port
        self.ssl_context = ssl_context
        self.max_body_bytes = max_body_bytes
        self.on_too_large = on_too_large
        self.keep_alive_timeout = keep_alive_timeout
        self.keep_alive_max = keep_alive_max
        self.extra_headers = list(extra_headers or [])
        self._server: asyncio.base_events.Server | None = None
        self._connections: set[asyncio.StreamWriter] = set()

    @property
    def scheme(self) -> str:
        return "https" if self.ssl_context else "http"

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._serve_connection, self.host, self.port, ssl=self.ssl_context, backlog=1024
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def serve_forever(self) -> None:
        if self._server is None:
            await self.start()
        assert self._server is not None
        async with self._server:
            await self._server.serve_forever()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            for writer in list(self._connections):
                writer.transport.abort()
            await self._server.wait_closed()
        # Let the aborted connections' handlers finish, then cancel what is left (e.g. timers).
        current = asyncio.current_task()
        pending = [t for t in asyncio.all_tasks() if t is not current and not t.done()]
        if pending:
            _, still = await asyncio.wait(pending, timeout=0.1)
            for task in still:
                task.cancel()

    # -- one connection ----------------------------------------------------------------------

    async def _serve_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._connections.add(writer)
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=64 * 1024)
        peer = writer.get_extra_info("peername")
        served = 0
        try:
            while True:
                request = await self._read_request(conn, reader, peer, first=served == 0)
                if request is None:
                    return
                if isinstance(request, Response):  # body over the limit: answer and close
                    await self._write_response(conn, writer, request, close=True)
                    return
                served += 1
                try:
                    response = await self.handler(request)
                except DropConnection:
                    writer.transport.abort()
                    return
                close = served >= self.keep_alive_max or conn.our_state is h11.MUST_CLOSE
                await self._write_response(conn, writer, response, close=close)
                if close or conn.our_state is h11.MUST_CLOSE:
                    return
                conn.start_next_cycle()
        except (ConnectionError, asyncio.IncompleteReadError, h11.RemoteProtocolError, h11.LocalProtocolError):
            writer.transport.abort()
        finally:
            self._connections.discard(writer)
            with contextlib.suppress(Exception):
                writer.close()

    async def _next_event(self, conn: h11.Connection, reader: asyncio.StreamReader, timeout: float | None):
        while True:
            event = conn.next_event()
            if event is not h11.NEED_DATA:
                return event
            if timeout is None:
                data = await reader.read(65536)
            else:
                data = await asyncio.wait_for(reader.read(65536), timeout)
            conn.receive_data(data)

    async def _read_request(
        self, conn: h11.Connection, reader: asyncio.StreamReader, peer, first: bool
    ) -> Request | Response | None:
        try:
            event = await self._next_event(conn, reader, None if first else self.keep_alive_timeout)
        except TimeoutError:
            return None  # idle keep-alive connection: close it, as Apache does
        except h11.RemoteProtocolError:
            return None
        if isinstance(event, h11.ConnectionClosed) or event is h11.PAUSED:
            return None
        if not isinstance(event, h11.Request):
            return None
        headers: dict[str, str] = {}
        for name, value in event.headers:
            key = name.decode("latin-1").lower()
            text = value.decode("latin-1")
            headers[key] = f"{headers[key]}, {text}" if key in headers else text
        request = Request(
            method=event.method.decode("ascii"),
            target=event.target.decode("latin-1"),
            headers=headers,
            client=peer,
            scheme=self.scheme,
            host=headers.get("host", f"{self.host}:{self.port}"),
        )
        length = headers.get("content-length")
        if length and length.isdigit() and int(length) > self.max_body_bytes:
            return self.on_too_large(request)
        chunks: list[bytes] = []
        size = 0
        while True:
            event = await self._next_event(conn, reader, 120.0)
            if isinstance(event, h11.Data):
                size += len(event.data)
                if size > self.max_body_bytes:
                    return self.on_too_large(request)
                chunks.append(event.data)
            elif isinstance(event, h11.EndOfMessage):
                break
            else:
                return None
        request.body = b"".join(chunks)
        return request

    async def _write_response(
        self, conn: h11.Connection, writer: asyncio.StreamWriter, response: Response, close: bool
    ) -> None:
        headers = [(k, v) for k, v in response.headers if k.lower() not in ("content-length", "connection")]
        names = {k.lower() for k, _ in headers}
        if "date" not in names:
            headers.append(("Date", email.utils.formatdate(usegmt=True)))
        headers.extend(h for h in self.extra_headers if h[0].lower() not in names)
        if close:
            headers.append(("Connection", "close"))
        else:
            headers.append(("Connection", "Keep-Alive"))
            headers.append(("Keep-Alive", f"timeout={int(self.keep_alive_timeout)}, max={self.keep_alive_max}"))
        body = response.body
        no_body = response.status in (204, 304) or 100 <= response.status < 200
        if not no_body:
            headers.append(("Content-Length", str(len(body))))
        data = conn.send(h11.Response(status_code=response.status, headers=headers,
                                      reason=_REASONS.get(response.status, b"")))
        if body and not no_body:
            data += conn.send(h11.Data(data=body))
        data += conn.send(h11.EndOfMessage())
        writer.write(data)
        await writer.drain()
        if close:
            writer.close()


class ServerThread:
    """Runs an HttpServer on its own event loop in a daemon thread (tests, demo, benchmarks)."""

    def __init__(self, server: HttpServer) -> None:
        self.server = server
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name=f"sim-{id(server):x}", daemon=True)
        self._started = threading.Event()
        self._error: BaseException | None = None

    @property
    def base_url(self) -> str:
        return f"{self.server.scheme}://{self.server.host}:{self.server.port}"

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self.server.start())
        except BaseException as exc:  # noqa: BLE001 - reported to the starting thread
            self._error = exc
            self._started.set()
            return
        self._started.set()
        self.loop.run_forever()

    def start(self) -> ServerThread:
        self._thread.start()
        self._started.wait(10)
        if self._error:
            raise self._error
        return self

    def call(self, fn: Callable[[], object]) -> object:
        """Run `fn` on the server's loop thread and return its result (safe access to app state)."""
        done = threading.Event()
        box: dict[str, object] = {}

        def run() -> None:
            try:
                box["value"] = fn()
            except BaseException as exc:  # noqa: BLE001
                box["error"] = exc
            done.set()

        self.loop.call_soon_threadsafe(run)
        done.wait(30)
        if "error" in box:
            raise box["error"]  # type: ignore[misc]
        return box.get("value")

    def stop(self) -> None:
        if not self.loop.is_running():
            return
        future = asyncio.run_coroutine_threadsafe(self.server.close(), self.loop)
        with contextlib.suppress(Exception):
            future.result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
