"""The loader over real sockets against the SAP B1 simulator: faults, sessions, replay, diffs."""

from __future__ import annotations

import asyncio
import threading

from engine import db, ledger
from tests.e2e.conftest import assert_exactly_once, b1_refs
from tests.e2e.driver import purchase_order, sync


def payloads(n: int, **kw):
    return {p["U_JaggaerRef"]: p for p in (purchase_order(i, **kw) for i in range(n))}


def test_transient_faults_and_lost_answers_land_every_record_exactly_once(sapb1, tmp_path):
    state = tmp_path / "state.duckdb"
    sapb1.set_knobs(error_rate=0.1, drop_before_rate=0.05, drop_after_rate=0.05, random_seed=11)
    records = payloads(120)
    stats = asyncio.run(sync(sapb1.service_root("v2"), state, records))
    faults = sapb1.counters["faults"]
    assert faults["dropped_after"] > 0 and faults["errors"] > 0  # the faults really happened
    assert stats.failed == 0
    assert_exactly_once(sapb1, state, records)


def test_second_run_without_changes_sends_no_write(sapb1, tmp_path):
    state = tmp_path / "state.duckdb"
    records = payloads(30)
    asyncio.run(sync(sapb1.service_root("v2"), state, records))
    before = sapb1.counters["writes"]
    stats = asyncio.run(sync(sapb1.service_root("v2"), state, records, run_id="second"))
    assert sapb1.counters["writes"] == before
    assert stats.writes == 0 and stats.lookups == 0


def test_a_changed_po_line_becomes_one_patch_of_that_line(sapb1, tmp_path):
    state = tmp_path / "state.duckdb"
    records = payloads(10)
    asyncio.run(sync(sapb1.service_root("v2"), state, records))
    records["PO-000003"] = purchase_order(3, quantity=25)
    before = sapb1.counters
    stats = asyncio.run(sync(sapb1.service_root("v2"), state, records, run_id="change"))
    after = sapb1.counters
    assert stats.updated == 1 and stats.writes == 1
    assert after["writes"] - before["writes"] == 1
    assert after["requests"].get("PATCH", 0) - before["requests"].get("PATCH", 0) == 1
    doc = next(d for d in sapb1.entities("PurchaseOrders") if d.get("U_JaggaerRef") == "PO-000003")
    assert [line["Quantity"] for line in doc["DocumentLines"]] == [25.0, 4.0]
    assert len(doc["DocumentLines"]) == 2  # updated in place, not appended


def test_session_expiry_mid_batch_is_survived_with_one_relogin(sapb1, tmp_path):
    state = tmp_path / "state.duckdb"
    sapb1.set_knobs(latency_ms=15, workers=8)
    timer = threading.Timer(0.3, sapb1.expire_sessions)
    timer.start()
    records = payloads(150)
    stats = asyncio.run(sync(sapb1.service_root("v2"), state, records))
    timer.join()
    assert stats.failed == 0
    assert sapb1.counters["logins"] == 2  # the first, and one single-flight re-login
    assert_exactly_once(sapb1, state, records)


def test_minus_5002_fails_records_visibly_and_replay_lands_them_once(sapb1, tmp_path):
    state = tmp_path / "state.duckdb"
    records = payloads(60)
    asyncio.run(sync(sapb1.service_root("v2"), state, {}, run_id="setup"))  # the U_ field exists first
    sapb1.set_knobs(internal_error_rate=0.2, random_seed=5)
    stats = asyncio.run(sync(sapb1.service_root("v2"), state, records))
    assert stats.failed > 0
    with db.connect(state) as conn:
        failed = {r.external_ref for r in ledger.failed_records(conn, pipeline="purchase_orders")}
        messages = {m for (m,) in conn.execute("SELECT last_error FROM ledger WHERE status = 'failed'").fetchall()}
    assert len(failed) == stats.failed
    assert all("-5002" in m or "Internal error" in m for m in messages), messages
    # a plain run does not re-send what B1 refused; replay does, once the cause is gone
    sapb1.set_knobs(internal_error_rate=0.0)
    assert asyncio.run(sync(sapb1.service_root("v2"), state, records, run_id="again")).writes == 0
    stats = asyncio.run(sync(sapb1.service_root("v2"), state, records, run_id="replay", refs=failed))
    assert stats.created == len(failed) and stats.failed == 0
    assert_exactly_once(sapb1, state, records)
    assert max(b1_refs(sapb1).values()) == 1
