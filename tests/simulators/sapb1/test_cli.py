"""The CLI verb, the subprocess mode of `start_simulator`, and `--state` persistence across restarts."""

from __future__ import annotations

import httpx

from engine.cli import build_parser
from simulators.sapb1 import start_simulator
from simulators.sapb1.cli import config_from_args

from .conftest import SL


def test_sim_verb_flags():
    args = build_parser().parse_args([
        "sim", "sapb1", "--port", "0", "--company", "ACME", "--session-timeout", "5", "--seed", "empty",
        "--latency-ms", "20", "--workers", "8", "--error-rate", "0.1", "--drop-after-rate", "0.05",
        "--duplicate-numatcard", "--max-body-bytes", "1000"])
    config, knobs = config_from_args(args)
    assert (config.port, config.company, config.session_timeout, config.seed, config.max_body_bytes) == (
        0, "ACME", 5.0, "empty", 1000)
    assert config.host == "127.0.0.1" and config.user == config.password == "manager"
    assert knobs == {"latency_ms": 20.0, "workers": 8, "error_rate": 0.1, "drop_after_rate": 0.05,
                     "duplicate_numatcard": True}
    _, realistic = config_from_args(build_parser().parse_args(["sim", "sapb1", "--realistic", "--workers", "8"]))
    assert realistic == {"login_latency_ms": 3000.0, "write_latency_ms": 1000.0, "write_latency_per_line_ms": 50.0,
                         "workers": 8}
    defaults, _ = config_from_args(build_parser().parse_args(["sim", "sapb1"]))
    assert (defaults.port, defaults.company, defaults.session_timeout, defaults.seed) == (50000, "SBODEMOUS", 1800, "demo")


def test_subprocess_mode_with_knobs():
    with start_simulator(seed="demo", subprocess=True, latency_ms=1, duplicate_numatcard=True) as sim:
        assert sim.app is None
        assert sim.knobs()["duplicate_numatcard"] is True
        client = SL(sim)
        assert client.get("BusinessPartners('V10000')").status_code == 200
        sim.set_knobs(error_rate=1.0)
        assert client.get("BusinessPartners('V10000')").status_code in (500, 502, 503)
        assert sim.counters["faults"]["errors"] == 1
        client.close()
    with httpx.Client() as probe:
        try:
            probe.get(sim.base_url + "/ping/", timeout=1)
            stopped = False
        except httpx.TransportError:
            stopped = True
    assert stopped


def test_state_file_survives_a_restart(tmp_path):
    state = tmp_path / "b1.json"
    with start_simulator(seed="demo", state=state) as sim:
        client = SL(sim)
        assert client.post("UserFieldsMD", {"TableName": "OPOR", "Name": "JaggaerRef", "Size": 30}).status_code == 201
        body = {"CardCode": "V10000", "U_JaggaerRef": "PO-1", "DocumentLines": [{"ItemCode": "BRK-2210"}]}
        entry = client.post("PurchaseOrders", body).json()["DocEntry"]
        client.close()
    with start_simulator(seed="demo", state=state) as sim:
        client = SL(sim)
        found = client.get("PurchaseOrders", params={"$filter": "U_JaggaerRef eq 'PO-1'"}).json()["value"]
        assert [d["DocEntry"] for d in found] == [entry]
        assert client.post("PurchaseOrders", body).json()["DocEntry"] == entry + 1  # sequences kept too
        client.close()


def test_reset_back_to_seed(sim):
    client = SL(sim)
    client.post("BusinessPartners", {"CardCode": "VRESET", "CardName": "X"})
    sim.reset()
    assert all(b["CardCode"] != "VRESET" for b in sim.entities("BusinessPartners"))
    assert sim.counters["writes"] == 0
    client.login()
    assert client.get("BusinessPartners('V10000')").status_code == 200
    client.close()
