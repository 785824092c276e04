"""The loader's state machine against an in-memory B1 with faults."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from engine.load import Action, Loader, MemoryJournal, Operation, RetryPolicy, RunAborted, Status, Target
from tests.engine.load.fakes import FakeB1, FakeError

TARGET = Target("PurchaseOrders", "DocEntry", "U_JaggaerRef", "DocumentLines")
FAST = RetryPolicy(attempts=8, lookup_attempts=8, base_delay=0.0, max_delay=0.0)


def creates(n: int) -> list[Operation]:
    return [
        Operation("po", f"PO-{i}", Action.CREATE,
                  {"U_JaggaerRef": f"PO-{i}", "CardCode": "V1", "DocumentLines": [{"ItemCode": "A", "Quantity": 1},
                                                                                    {"ItemCode": "B", "Quantity": 2}]},
                  line_refs=["1", "2"])
        for i in range(n)
    ]


def run(b1: FakeB1, ops: list[Operation], **kw) -> tuple[list, MemoryJournal, Loader]:
    journal = MemoryJournal()
    loader = Loader(b1, journal, retry=FAST, chunk=7, **kw)
    outcomes = asyncio.run(loader.load(TARGET, ops))
    return outcomes, journal, loader


def test_creates_land_once_with_their_line_numbers():
    b1 = FakeB1()
    outcomes, journal, loader = run(b1, creates(20))
    assert sorted(b1.refs()) == sorted(f"PO-{i}" for i in range(20))
    assert all(o.status is Status.SYNCED for o in outcomes)
    assert {o.op.ref: o.key for o in outcomes} == {d["U_JaggaerRef"]: k for k, d in b1.docs.items()}
    assert all(o.lines == {"1": 0, "2": 1} for o in outcomes)
    assert loader.stats.created == 20 and loader.stats.writes == 20
    assert b1.lookups == 3  # one batched lookup per chunk of 7, not one per record
    assert len(journal.intent_log) == 20


def test_faults_and_lost_answers_never_duplicate():
    b1 = FakeB1(seed=3, error_rate=0.15, drop_after_rate=0.15, drop_before_rate=0.1)
    outcomes, _, loader = run(b1, creates(200))
    counts = Counter(b1.refs())
    assert set(counts) == {f"PO-{i}" for i in range(200)}
    assert max(counts.values()) == 1
    assert all(o.status is Status.SYNCED for o in outcomes)
    assert loader.stats.adopted > 0  # some answers were lost after commit and found by lookup


def test_a_record_already_in_b1_is_adopted_without_a_write():
    b1 = FakeB1()
    asyncio.run(b1.create("PurchaseOrders", creates(1)[0].payload))
    b1.creates = 0
    outcomes, _, loader = run(b1, creates(3))
    assert b1.creates == 2 and len(b1.docs) == 3
    assert [o.adopted for o in outcomes if o.op.ref == "PO-0"] == [True]
    assert next(o for o in outcomes if o.op.ref == "PO-0").lines == {"1": 0, "2": 1}


def test_business_errors_fail_only_their_record_with_b1s_message():
    b1 = FakeB1()
    b1.business["PO-1"] = FakeError(400, -5002, "Internal error (-5002) occurred")
    b1.business["PO-2"] = FakeError(400, -10, "Invalid BP code [OPOR.CardCode] , 'V9'")
    outcomes, _, _ = run(b1, creates(5))
    failed = {o.op.ref: (o.error_code, o.error_message) for o in outcomes if o.status is Status.FAILED}
    assert failed == {"PO-1": ("-5002", "Internal error (-5002) occurred"),
                      "PO-2": ("-10", "Invalid BP code [OPOR.CardCode] , 'V9'")}
    assert b1.creates == 5  # -5002 is never retried
    assert len(b1.docs) == 3


def test_duplicate_answer_adopts_the_existing_record():
    b1 = FakeB1()

    async def scenario():
        # B1 already holds PO-0, but the batched lookup missed it (it landed in between)
        loader = Loader(b1, MemoryJournal(), retry=FAST)
        loader._target = TARGET
        await b1.create("PurchaseOrders", creates(1)[0].payload)
        b1.business["PO-0"] = FakeError(400, -2035, "This entry already exists in the following tables (ODBC -2035)")
        return await loader._create(creates(1)[0])

    outcome = asyncio.run(scenario())
    assert outcome.status is Status.SYNCED and outcome.adopted and outcome.key == 1


def test_update_sends_one_patch_and_verifies_after_a_lost_answer():
    b1 = FakeB1()
    outcomes, _, _ = run(b1, creates(1))
    key = outcomes[0].key
    b1.drop_after_rate = 1.0  # the PATCH lands, its answer is lost
    op = Operation("po", "PO-0", Action.UPDATE, {"Comments": "changed", "DocumentLines": [{"LineNum": 1, "Quantity": 5}]},
                   key=key, line_refs=["1", "2"], context={"line_map": {"1": 0, "2": 1}, "known_line_nums": [0, 1]})
    outcomes, _, loader = run(b1, [op])
    assert outcomes[0].status is Status.SYNCED
    assert b1.patches == 1  # re-read showed the change had landed: no second PATCH
    assert b1.docs[key]["DocumentLines"][1]["Quantity"] == 5


def test_appending_patch_is_not_repeated_after_a_lost_answer():
    b1 = FakeB1()
    key = run(b1, creates(1))[0][0].key
    b1.drop_after_rate = 1.0
    op = Operation("po", "PO-0", Action.UPDATE, {"DocumentLines": [{"ItemCode": "C", "Quantity": 3}]},
                   key=key, line_refs=["1", "2", "3"], context={"known_line_nums": [0, 1]})
    outcomes, _, _ = run(b1, [op])
    assert outcomes[0].status is Status.SYNCED and outcomes[0].lines == {"1": 0, "2": 1, "3": 2}
    assert len(b1.docs[key]["DocumentLines"]) == 3


def test_session_failure_stops_the_run():
    b1 = FakeB1()
    b1.business["PO-0"] = FakeError(401, 301, "Invalid session or session already timeout.")
    with pytest.raises(RunAborted):
        run(b1, creates(3))


def test_unresolvable_state_leaves_the_record_for_the_next_run():
    b1 = FakeB1(drop_after_rate=1.0)
    b1.reads_ok, b1.fail_reads = 1, 10_000  # after the first lookup B1 cannot be asked any more
    outcomes, journal, _ = run(b1, creates(1))
    assert outcomes[0].status is Status.FAILED and outcomes[0].error_code == "unresolved"
    assert len(b1.docs) == 1 and b1.creates == 1  # sent once; never re-sent blind
    assert len(journal.intent_log) == 1  # the intent stays for the next run to resolve


def test_nothing_is_sent_while_b1_cannot_be_asked():
    b1 = FakeB1()
    b1.fail_reads = 10_000
    outcomes, _, _ = run(b1, creates(2))
    assert b1.creates == 0 and {o.error_code for o in outcomes} == {"unresolved"}
