"""The loader over real sockets against the SAP B1 simulator: faults, sessions, replay, diffs."""

from __future__ import annotations

import asyncio

from engine.load.slport import SlPort
from engine.state import db, ledger
from tests.e2e import driver
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


class ExpiringPort(SlPort):
    """`SlPort` that expires every B1 session once `after` creates have been answered: an explicit
    event in the load instead of the former 0.3 s wall-clock timer, which on a busy machine could fire
    before the run's first Login (nothing to expire: one Login, and the test failed). The expiry blocks
    the event loop, so no request goes out while it happens and every create started afterwards meets
    the expired session."""

    def __init__(self, client, sim, *, after: int) -> None:
        super().__init__(client)
        self.sim, self.after = sim, after
        self.answered = 0
        self.expired: int | None = None  # sessions the simulator dropped; None: not expired yet
        self.created_after = 0  # creates answered after the expiry

    async def create(self, entity_set, payload):
        created = await super().create(entity_set, payload)
        self.answered += 1
        if self.expired is not None:
            self.created_after += 1
        elif self.answered == self.after:
            self.expired = self.sim.expire_sessions()
        return created


def test_session_expiry_mid_batch_is_survived_with_one_relogin(sapb1, tmp_path, monkeypatch):
    state = tmp_path / "state.duckdb"
    sapb1.set_knobs(latency_ms=15, workers=8)  # several writes in flight when the session goes
    ports: list[ExpiringPort] = []

    def port(client, **kw):
        ports.append(ExpiringPort(client, sapb1, after=30))
        return ports[-1]

    monkeypatch.setattr(driver, "SlPort", port)
    records = payloads(150)
    stats = asyncio.run(sync(sapb1.service_root("v2"), state, records))
    [used] = ports
    assert used.expired == 1  # the run's one session was expired mid-batch ...
    assert used.created_after >= 150 - 30 - 8  # ... with most creates still to send
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
