"""`LedgerJournal`: the loader's outcomes in the ledger (one row per attempt in `events`, B1's answer
included), and the state file left free between batches for readers in other processes."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys

from engine.load import Loader, Operation, RetryPolicy
from engine.load.bridge import LedgerJournal
from engine.state import db, ledger
from tests.engine.load.fakes import FakeB1, FakeError
from tests.engine.load.test_executor import TARGET, creates

FAST = RetryPolicy(attempts=4, lookup_attempts=4, base_delay=0.0, max_delay=0.0)


def load(state, b1: FakeB1, ops: list[Operation], **kw) -> Loader:
    async def go() -> Loader:
        journal = LedgerJournal(state, "run-1", TARGET, "purchase_orders", {}, **kw)
        loader = Loader(b1, journal, retry=FAST, chunk=10)
        try:
            await loader.load(TARGET, ops)
        finally:
            journal.close()
        return loader

    return asyncio.run(go())


def test_every_attempt_is_an_event_with_b1s_status_body_and_duration(tmp_path):
    state = tmp_path / "state.duckdb"
    b1 = FakeB1()
    envelope = json.dumps({"error": {"code": "-5002", "message": "Enter valid code [OPOR.CardCode]"}})
    b1.business["PO-1"] = FakeError(400, -5002, "Enter valid code [OPOR.CardCode]", envelope)
    unlucky = iter([FakeError(503, None, "Service Unavailable", "<html>busy</html>")])
    original = b1.create

    async def create(entity_set, payload):
        if payload["U_JaggaerRef"] == "PO-2":
            err = next(unlucky, None)
            if err:
                b1.creates += 1
                raise err
        return await original(entity_set, payload)

    b1.create = create
    load(state, b1, creates(3))
    with db.connect(state, read_only=True) as conn:
        rows = ledger.ledger_rows(conn, "po")
        events = conn.execute("SELECT external_ref, outcome, http_status, b1_code, b1_body, duration_ms FROM events "
                              "ORDER BY external_ref, happened_at, outcome").fetchall()
    assert {r: row.status for r, row in rows.items()} == {"PO-0": "synced", "PO-1": "failed", "PO-2": "synced"}
    by_ref: dict[str, list] = {}
    for ref, outcome, status, code, body, ms in events:
        by_ref.setdefault(ref, []).append((outcome, status, code, json.loads(body) if body else None))
        assert outcome == "intent" or ms is not None
    assert by_ref["PO-0"] == [("intent", None, None, None), ("synced", 201, None, None)]
    assert by_ref["PO-1"][1] == ("failed", 400, "-5002", json.loads(envelope))  # B1's envelope, as JSON
    assert sorted(by_ref["PO-2"]) == sorted([("intent", None, None, None), ("retry", 503, None, "<html>busy</html>"),
                                             ("synced", 201, None, None)])
    assert rows["PO-2"].attempts == 2


READER = """
import sys, time
from engine.state import db
with db.connect(sys.argv[1], read_only=True, wait_seconds=60) as conn:
    print(conn.execute("SELECT count(*) FROM events").fetchone()[0])
"""


def test_another_process_reads_the_state_file_during_a_run(tmp_path):
    """The journal opens the state file per batch: a reader in another process gets in while the run goes
    on. The run cannot end before the reader has had its look (the last creates wait for it), so a slow
    start of the reader on a busy machine cannot make the run finish first."""
    state = tmp_path / "state.duckdb"
    b1 = FakeB1()
    b1.latency = 0.02  # 300 creates at concurrency 8, in batches of 10: the journal writes all along

    async def go() -> tuple[int, bool]:
        reader_done = asyncio.Event()
        sent = 0
        original = b1.create

        async def create(entity_set, payload):
            nonlocal sent
            sent += 1
            if sent > 250:  # the tail of the run waits until the reader has read
                await reader_done.wait()
            return await original(entity_set, payload)

        b1.create = create
        journal = LedgerJournal(state, "run-1", TARGET, "purchase_orders", {}, flush_seconds=0.05)
        loader = Loader(b1, journal, retry=FAST, chunk=10)
        task = asyncio.create_task(loader.load(TARGET, creates(300)))
        try:
            while not state.exists() or not journal.batches:
                await asyncio.sleep(0.01)
            reader = await asyncio.create_subprocess_exec(sys.executable, "-c", READER, str(state),
                                                          stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            out, err = await asyncio.wait_for(reader.communicate(), timeout=120)
            still_loading = not task.done()
        finally:
            reader_done.set()
            await task
            journal.close()
        assert reader.returncode == 0, err.decode()
        return int(out), still_loading

    seen, still_loading = asyncio.run(go())
    assert still_loading and seen > 0  # read mid-run: intents were already there
    with db.connect(state, read_only=True) as conn:
        assert conn.execute("SELECT count(*) FROM ledger WHERE status = 'synced'").fetchone() == (300,)


def test_never_sent_references_skip_the_lookup_only_while_b1_holds_no_unknown_reference(tmp_path):
    from engine.load.bridge import census, operations
    from engine.plan import PlanItem

    state = tmp_path / "state.duckdb"
    b1 = FakeB1()
    load(state, b1, creates(5))  # the ledger knows PO-0..PO-4 with their keys
    assert asyncio.run(census(b1, TARGET, state)) is False  # B1 holds only what the ledger knows
    items = [PlanItem("po", f"PO-{i}", "create", payload=creates(i + 1)[-1].payload, attempted=i == 9)
             for i in range(5, 10)]
    ops = operations(items, TARGET, lookup_unknown=False)
    assert [op.lookup for op in ops] == [False] * 4 + [True]  # PO-9 was attempted before: looked up
    b1.lookups = 0
    load(state, b1, ops)
    assert b1.lookups == 1 and len(b1.docs) == 10

    asyncio.run(b1.create("PurchaseOrders", {"U_JaggaerRef": "PO-42"}))  # someone else wrote our field
    assert asyncio.run(census(b1, TARGET, state)) is True  # then every create is looked up first
