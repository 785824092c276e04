"""Shared fixtures: one demo simulator per module, and a small Service Layer client over real sockets."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from simulators.sapb1 import Simulator, start_simulator


class SL:
    """Talks to the simulator the way a real Service Layer client does (cookies sent by hand)."""

    def __init__(self, sim: Simulator, version: str = "v2", login: bool = True) -> None:
        self.sim = sim
        self.version = version
        self.root = sim.service_root(version)
        self.http = httpx.Client(base_url=self.root + "/", timeout=15)
        self.session_id: str | None = None
        if login:
            self.login()

    def login(self) -> httpx.Response:
        response = self.http.post("Login", json=self.sim.login_body())
        assert response.status_code == 200, response.text
        self.session_id = response.json()["SessionId"]
        self.http.headers["Cookie"] = f"B1SESSION={self.session_id}; ROUTEID=.node1"
        return response

    def request(self, method: str, path: str, **kwargs) -> httpx.Response:
        return self.http.request(method, path, **kwargs)

    def get(self, path: str, **kwargs) -> httpx.Response:
        return self.http.get(path, **kwargs)

    def post(self, path: str, json=None, **kwargs) -> httpx.Response:
        return self.http.post(path, json=json, **kwargs)

    def patch(self, path: str, json=None, **kwargs) -> httpx.Response:
        return self.http.patch(path, json=json, **kwargs)

    def delete(self, path: str, **kwargs) -> httpx.Response:
        return self.http.delete(path, **kwargs)

    def close(self) -> None:
        self.http.close()


def error_of(response: httpx.Response) -> tuple[int, str]:
    """(code, message) from either envelope."""
    error = response.json()["error"]
    message = error["message"]
    if isinstance(message, dict):
        message = message["value"]
    return int(error["code"]), message


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    with start_simulator(seed="demo") as running:
        yield running


@pytest.fixture
def v2(sim: Simulator) -> Iterator[SL]:
    client = SL(sim, "v2")
    yield client
    client.close()


@pytest.fixture
def v1(sim: Simulator) -> Iterator[SL]:
    client = SL(sim, "v1")
    yield client
    client.close()


@pytest.fixture(params=["v1", "v2"])
def sl(sim: Simulator, request) -> Iterator[SL]:
    client = SL(sim, request.param)
    yield client
    client.close()


def po_body(card: str = "V10000", **header) -> dict:
    lines = header.pop("lines", None) or [
        {"ItemCode": "BRK-2210", "Quantity": 10, "UnitPrice": 12.4, "CostingCode": "PLANT1"},
        {"ItemCode": "SEAL-0031", "Quantity": 40, "UnitPrice": 0.85, "TaxCode": "EX"},
    ]
    return {"CardCode": card, "DocumentLines": lines, **header}
