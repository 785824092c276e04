"""The loopback HTTP endpoint of `ml-connector serve`: `/healthz`, `/metrics` and the webhook receiver.

    server = HttpEndpoint("127.0.0.1", 9464, health=lambda: (200, {...}), metrics=m, receiver=r)
    server.start(); server.port; ...; server.stop()

`GET /healthz` answers 200 with each customer's state while serve is running (503 while it stops);
`GET /metrics` is the Prometheus text format; `GET|POST /b1-events/<customer>` goes to the webhook
receiver (`engine.serve.webhooks.Receiver`). A threading server from the standard library: a handful of
requests a minute, each answered from memory.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from engine.serve.metrics import CONTENT_TYPE, ServeMetrics
from engine.serve.webhooks import MAX_BODY, PATH_PREFIX, Receiver

Health = Callable[[], tuple[int, dict[str, Any]]]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], endpoint: HttpEndpoint) -> None:
        self.endpoint = endpoint
        super().__init__(address, _Handler)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    server_version = "ml-connector-serve"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base class's name)
        pass  # requests are not logged: webhook events are, by the receiver

    def _answer(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _route(self) -> None:
        endpoint = self.server.endpoint
        path = self.path.split("?", 1)[0]
        if path.startswith(PATH_PREFIX) and endpoint.receiver is not None:
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                self.close_connection = True
                self._answer(413, b'{"error": "body too large"}')
                return
            body = self.rfile.read(length) if length else b""
            status, answer = endpoint.receiver.handle(self.command, path, dict(self.headers.items()), body)
            self._answer(status, answer)
            return
        if self.command not in ("GET", "HEAD"):
            self._answer(405, b'{"error": "method not allowed"}')
        elif path == "/healthz":
            status, document = endpoint.health()
            self._answer(status, json.dumps(document, default=str).encode())
        elif path == "/metrics":
            self._answer(200, endpoint.metrics.exposition(), CONTENT_TYPE)
        else:
            self._answer(404, b'{"error": "not found"}')

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = _route


class HttpEndpoint:
    def __init__(self, host: str, port: int, *, health: Health, metrics: ServeMetrics,
                 receiver: Receiver | None = None) -> None:
        self.health, self.metrics, self.receiver = health, metrics, receiver
        self.server = _Server((host, port), self)
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.2},
                                       name="serve-http", daemon=True)

    @property
    def host(self) -> str:
        return str(self.server.server_address[0])

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def url(self, path: str = "") -> str:
        return f"http://{self.host}:{self.port}{path}"

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        if self.thread.ident is not None:
            self.server.shutdown()
        self.server.server_close()
