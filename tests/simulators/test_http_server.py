"""The shared simulator HTTP server over real sockets: framing, keep-alive, limits, faults."""

import httpx
import pytest

from simulators.faults import FaultInjector, Knobs
from simulators.http import DropConnection, HttpServer, Request, Response, ServerThread


async def echo(request: Request) -> Response:
    if request.path == "/drop":
        raise DropConnection()
    body = f"{request.method} {request.path} {request.query} {len(request.body)}".encode()
    return Response(200, [("Content-Type", "text/plain")], body)


@pytest.fixture
def server():
    with ServerThread(HttpServer(echo, max_body_bytes=1000)) as running:
        yield running


def test_serves_requests_and_keeps_connection_alive(server):
    with httpx.Client(base_url=server.base_url) as client:
        first = client.get("/a%20b", params={"x": "1"})
        second = client.post("/p", content=b"12345")
    assert first.text == "GET /a b {'x': '1'} 0"
    assert second.text == "POST /p {} 5"
    assert first.headers["keep-alive"].startswith("timeout=5")


def test_body_over_limit_is_refused_before_reading(server):
    response = httpx.post(f"{server.base_url}/p", content=b"x" * 2000)
    assert response.status_code == 413


def test_chunked_body_over_limit_is_refused(server):
    def chunks():
        for _ in range(20):
            yield b"x" * 100

    response = httpx.post(f"{server.base_url}/p", content=chunks())
    assert response.status_code == 413


def test_drop_connection_gives_no_answer(server):
    with pytest.raises(httpx.RemoteProtocolError):
        httpx.get(f"{server.base_url}/drop")


def test_fault_injector_drops_and_errors():
    knobs = Knobs(random_seed=1)
    injector = FaultInjector(knobs, lambda req, status: Response(status, [], b"boom"))
    applied = []

    async def handler(request: Request) -> Response:
        applied.append(request.path)
        return await echo(request)

    server = HttpServer(lambda request: injector.handle(request, handler))
    with ServerThread(server) as running:
        knobs.update({"error_rate": 1.0})
        assert httpx.get(f"{running.base_url}/x").status_code in (500, 502, 503)
        knobs.update({"error_rate": 0.0, "drop_after_rate": 1.0})
        with pytest.raises(httpx.RemoteProtocolError):
            httpx.get(f"{running.base_url}/written")
        knobs.update({"drop_after_rate": 0.0, "drop_before_rate": 1.0})
        with pytest.raises(httpx.RemoteProtocolError):
            httpx.get(f"{running.base_url}/not-written")
    assert applied == ["/written"]


def test_status_line_carries_the_reason_phrase(server):
    with httpx.Client(base_url=server.base_url) as client:
        response = client.get("/x")
    assert response.reason_phrase == "OK"


def test_stop_with_an_idle_keep_alive_connection_is_clean():
    running = ServerThread(HttpServer(echo)).start()
    client = httpx.Client(base_url=running.base_url)
    assert client.get("/x").status_code == 200  # the connection stays open, idle
    running.stop()
    assert not running.loop.is_running()
    client.close()


def test_knobs_update_parses_booleans_and_reports_unknown_names():
    from dataclasses import dataclass

    @dataclass
    class Flagged(Knobs):
        switch: bool = False

    knobs = Flagged()
    assert knobs.update({"switch": "true", "latency_ms": "5", "nope": 1}) == ["nope"]
    assert knobs.switch is True and knobs.latency_ms == 5.0
    knobs.update({"switch": "false"})
    assert knobs.switch is False
