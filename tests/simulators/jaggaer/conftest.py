"""Shared helpers: a running simulator, tokens, and a small authenticated J1P client (real sockets)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from simulators.jaggaer import JaggaerSimulator, start_simulator

PO_PATH = "/j1p/api/public/je/v1/purchaseorders"
INVOICE_PATH = "/j1p/api/public/ji/v1/invoices"
COMPANY_PATH = "/j1p/api/public/ja/v1/companyprofiles"


def get_token(token_url: str, client_id: str, client_secret: str) -> str:
    response = httpx.post(token_url, data={"grant_type": "client_credentials", "client_id": client_id,
                                           "client_secret": client_secret}, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()["access_token"]


class Api:
    """An httpx client with a bearer token for one tenant base URL."""

    def __init__(self, base_url: str, token: str, timeout: float = 10) -> None:
        self.client = httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {token}",
                                                               "Accept": "application/json"}, timeout=timeout)

    def get(self, path: str, **params: Any) -> httpx.Response:
        return self.client.get(path, params=params)

    def post_json(self, path: str, body: Any) -> httpx.Response:
        return self.client.post(path, json=body)

    def walk(self, path: str, list_key: tuple[str, ...], **params: Any) -> tuple[list[dict], list[dict]]:
        """All records of a list, page by page (§4.3 stop rules); returns (records, envelopes)."""
        records: list[dict] = []
        envelopes: list[dict] = []
        start = 1
        while True:
            body = self.get(path, start=start, **params).json()
            envelopes.append(body)
            assert str(body["returnCode"]) == "0", body
            page = body
            for key in list_key:
                page = page[key]
            records.extend(page)
            if body["returnedRecords"] == 0 or start + body["returnedRecords"] > body["totRecords"]:
                return records, envelopes
            start += body["returnedRecords"]

    def close(self) -> None:
        self.client.close()


def api_for(sim: JaggaerSimulator, base_url: str | None = None) -> Api:
    return Api(base_url or sim.base_url, get_token(sim.token_url, sim.client_id, sim.client_secret))


@pytest.fixture(scope="module")
def sim() -> Iterator[JaggaerSimulator]:
    """A read-mostly simulator: 240 orders, small pages so paging is exercised."""
    with start_simulator(seed=240, random_seed=11, history_days=30, page_size=50) as running:
        yield running


@pytest.fixture(scope="module")
def api(sim: JaggaerSimulator) -> Iterator[Api]:
    client = api_for(sim)
    yield client
    client.close()


@pytest.fixture
def fresh() -> Iterator[JaggaerSimulator]:
    """A small simulator of its own, for tests that change data or knobs."""
    with start_simulator(seed=30, random_seed=3, history_days=10, page_size=10) as running:
        yield running
