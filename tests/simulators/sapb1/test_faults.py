"""Realism knobs, each flipped at runtime through the admin endpoint."""

from __future__ import annotations

import concurrent.futures
import time
from collections.abc import Iterator

import httpx
import pytest

from simulators.sapb1 import Simulator, start_simulator

from .conftest import SL, error_of, po_body

OFF = {"latency_ms": 0, "login_latency_ms": 0, "workers": 0, "error_rate": 0, "drop_before_rate": 0,
       "drop_after_rate": 0, "slow_rate": 0, "internal_error_rate": 0, "session_kill_rate": 0,
       "expect_continue_500": False, "write_latency_ms": 0, "user_locked": False}


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    with start_simulator(seed="demo", random_seed=7) as running:
        yield running


@pytest.fixture(autouse=True)
def knobs_off(sim):
    yield
    sim.set_knobs(**OFF)


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def test_latency_and_login_latency(sim, v2):
    sim.set_knobs(latency_ms=150)
    assert timed(lambda: v2.get("Items('BRK-2210')")) >= 0.15
    sim.set_knobs(latency_ms=0, login_latency_ms=300)
    assert timed(v2.login) >= 0.3
    assert timed(lambda: v2.get("Items('BRK-2210')")) < 0.3


def test_write_latency(sim, v2):
    sim.set_knobs(write_latency_ms=200)
    assert timed(lambda: v2.post("PurchaseOrders", po_body())) >= 0.2
    assert timed(lambda: v2.get("Items('BRK-2210')")) < 0.2


def test_worker_limit_caps_concurrency(sim, v2):
    sim.set_knobs(latency_ms=100, workers=1)
    cookie = v2.http.headers["Cookie"]

    def call(_):
        return httpx.get(f"{v2.root}/Items('BRK-2210')", headers={"Cookie": cookie}).status_code

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        start = time.perf_counter()
        assert list(pool.map(call, range(4))) == [200] * 4
        serial = time.perf_counter() - start
        sim.set_knobs(workers=0)
        start = time.perf_counter()
        list(pool.map(call, range(4)))
        parallel = time.perf_counter() - start
    assert serial >= 0.4 and parallel < serial * 0.75


def test_random_5xx_before_anything_is_applied(sim, v2):
    before = sim.counters["writes"]
    sim.set_knobs(error_rate=1.0)
    response = v2.post("PurchaseOrders", po_body())
    assert response.status_code in (500, 502, 503)
    sim.set_knobs(error_rate=0)
    assert sim.counters["writes"] == before


def test_internal_error_5002_on_writes_only(sim, v1):
    sim.set_knobs(internal_error_rate=1.0)
    response = v1.post("PurchaseOrders", po_body())
    assert response.status_code == 400 and error_of(response) == (-5002, "Internal error (-5002) occurred")
    assert v1.get("Items('BRK-2210')").status_code == 200


def test_drop_before_writes_nothing(sim, v2):
    count = len(sim.entities("PurchaseOrders"))
    sim.set_knobs(drop_before_rate=1.0)
    with pytest.raises(httpx.RemoteProtocolError):
        v2.post("PurchaseOrders", po_body())
    sim.set_knobs(drop_before_rate=0)
    assert len(sim.entities("PurchaseOrders")) == count


def test_drop_after_commit_loses_only_the_answer(sim, v2):
    count = len(sim.entities("PurchaseOrders"))
    sim.set_knobs(drop_after_rate=1.0)
    with pytest.raises(httpx.RemoteProtocolError):
        v2.post("PurchaseOrders", po_body(NumAtCard="LOST-ANSWER"))
    sim.set_knobs(drop_after_rate=0)
    stored = sim.entities("PurchaseOrders")
    assert len(stored) == count + 1 and stored[-1]["NumAtCard"] == "LOST-ANSWER"


def test_sessions_killed_early(sim, v2):
    sim.set_knobs(session_kill_rate=1.0)
    response = v2.get("Items('BRK-2210')")
    assert response.status_code == 401 and error_of(response)[0] == 301
    sim.set_knobs(session_kill_rate=0)
    assert v2.get("Items('BRK-2210')").status_code == 401  # that session is gone for good
    v2.login()
    assert v2.get("Items('BRK-2210')").status_code == 200


def test_slow_answers_time_out_the_client(sim, v2):
    sim.set_knobs(slow_rate=1.0, slow_seconds=1.0)
    with pytest.raises(httpx.ReadTimeout):
        v2.http.get("Items('BRK-2210')", timeout=0.3)


def test_expect_100_continue_answered_500_empty(sim, v2):
    sim.set_knobs(expect_continue_500=True)
    response = v2.post("BusinessPartners", {"CardCode": "VEXP", "CardName": "X"},
                       headers={"Expect": "100-continue"})
    assert response.status_code == 500 and response.content == b""


def test_unknown_knob_is_refused(sim):
    with pytest.raises(ValueError, match="unknown knobs: nope"):
        sim.set_knobs(nope=1)
    with pytest.raises(TypeError), start_simulator(nope=1):
        pass


def test_admin_endpoints_are_not_faulted(sim):
    sim.set_knobs(error_rate=1.0, drop_before_rate=1.0)
    assert sim.knobs()["error_rate"] == 1.0
    assert isinstance(sim.entities("Items"), list)
    assert httpx.get(sim.base_url + "/ping/").status_code == 200  # the balancer's own answer


def test_client_fixture_uses_module_sim(sim):
    client = SL(sim)
    assert client.get("Items").status_code == 200
    client.close()


def test_locked_user(sim):
    sim.set_knobs(user_locked=True)
    response = httpx.post(f"{sim.service_root('v1')}/Login", json=sim.login_body())
    assert response.status_code == 401 and error_of(response) == (100000055, "User is locked")
