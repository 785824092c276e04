"""Changes B1 refuses because a document is done: closed rows, closed or cancelled documents, posted
invoices. The loader re-reads the document, re-sends what B1 can still take (one more write), and
records the rest as not applied — what B1 holds stays the ledger's truth, and it is not re-sent."""

from __future__ import annotations

import asyncio
import json

import pytest

from engine.load import Action, Loader, MemoryJournal, Operation, RetryPolicy, Status, Target
from engine.load.bridge import LedgerJournal, operations
from engine.plan import PlanItem, apply_patch, compare, fingerprint
from engine.state import db, ledger
from tests.engine.load.fakes import FakeB1, FakeError

ORDERS = Target("PurchaseOrders", "DocEntry", "U_JaggaerRef", "DocumentLines")
INVOICES = Target("PurchaseInvoices", "DocEntry", "U_JaggaerRef", "DocumentLines")
FAST = RetryPolicy(attempts=4, lookup_attempts=4, base_delay=0.0, max_delay=0.0)


def document(b1: FakeB1, *, status: str = "bost_Open", rows: tuple[str, ...] = ("bost_Open", "bost_Open"),
             cancelled: str = "tNO") -> int:
    key = b1.next_key
    b1.next_key += 1
    b1.docs[key] = {"DocEntry": key, "U_JaggaerRef": "PO-1", "CardCode": "V1", "Comments": "old", "DocDate": "2024-05-01",
                    "NumAtCard": "A-1", "DocumentStatus": status, "Cancelled": cancelled,
                    "DocumentLines": [{"LineNum": n, "AccountCode": "613000", "Quantity": 1.0, "FreeText": "",
                                       "LineStatus": row} for n, row in enumerate(rows)]}
    return key


def update(key: int, patch: dict) -> Operation:
    return Operation("po", "PO-1", Action.UPDATE, patch, "fp-new", "v2", key=key, line_refs=["a", "b"],
                     context={"line_map": {"a": 0, "b": 1}, "known_line_nums": [0, 1]})


def both_accounts(**header) -> dict:
    return {**header, "DocumentLines": [{"_key": "a", "LineNum": 0, "AccountCode": "612000"},
                                        {"_key": "b", "LineNum": 1, "AccountCode": "612000"}]}


def run(b1: FakeB1, op: Operation, target: Target = ORDERS):
    loader = Loader(b1, MemoryJournal(), retry=FAST)
    [outcome] = asyncio.run(loader.load(target, [op]))
    return outcome, loader


def test_a_closed_row_keeps_its_change_and_the_rest_lands_in_one_more_patch():
    b1 = FakeB1()
    key = document(b1, rows=("bost_Close", "bost_Open"))  # row 0 fully invoiced
    outcome, loader = run(b1, update(key, both_accounts(Comments="new")))

    assert outcome.status is Status.NOT_APPLIED and outcome.error_code == "-10"
    assert outcome.error_message == ("Cannot change a closed row  [DocumentLines.AccountCode][line: 1] — row 0 closed "
                                     "in SAP B1; change not applied: line 0: AccountCode; the rest was applied")
    assert b1.patches == 2 and outcome.writes == 2  # the refused PATCH, then the rest
    assert b1.patched == [{"Comments": "new", "DocumentLines": [{"LineNum": 1, "AccountCode": "612000"}]}]
    doc = b1.docs[key]
    assert [line["AccountCode"] for line in doc["DocumentLines"]] == ["613000", "612000"] and doc["Comments"] == "new"
    assert outcome.applied == {"Comments": "new", "DocumentLines": [{"_key": "b", "LineNum": 1, "AccountCode": "612000"}]}
    assert (outcome.last.http_status, [t.http_status for t in outcome.tries]) == (204, [400])
    assert (loader.stats.not_applied, loader.stats.failed, loader.stats.updated) == (1, 0, 0)


def test_a_closed_document_takes_only_its_free_fields():
    b1 = FakeB1()
    key = document(b1, status="bost_Close", rows=("bost_Close", "bost_Close"))
    patch = {"Comments": "new", "DocDate": "2024-06-01",
             "DocumentLines": [{"_key": "a", "LineNum": 0, "AccountCode": "612000", "FreeText": "see JAGGAER"}]}
    outcome, _ = run(b1, update(key, patch))

    assert outcome.status is Status.NOT_APPLIED
    assert outcome.error_message == ("Document is already closed — closed in SAP B1; change not applied: DocDate, "
                                     "line 0: AccountCode; the rest was applied")
    assert b1.patched == [{"Comments": "new", "DocumentLines": [{"LineNum": 0, "FreeText": "see JAGGAER"}]}]
    doc = b1.docs[key]
    assert (doc["Comments"], doc["DocDate"], doc["DocumentLines"][0]["AccountCode"]) == ("new", "2024-05-01", "613000")


@pytest.mark.parametrize(("state", "why"), [({"status": "bost_Close"}, "closed in SAP B1"),
                                            ({"status": "bost_Close", "cancelled": "tYES"}, "cancelled in SAP B1")])
def test_a_closed_document_with_nothing_free_changed_takes_no_second_write(state, why):
    b1 = FakeB1()
    key = document(b1, rows=("bost_Close", "bost_Close"), **state)
    before = json.dumps(b1.docs[key], sort_keys=True)
    outcome, loader = run(b1, update(key, both_accounts()))

    assert outcome.status is Status.NOT_APPLIED and outcome.writes == 1 and b1.patches == 1 and b1.patched == []
    assert outcome.error_message == (f"Document is already closed — {why}; change not applied: line 0: AccountCode, "
                                     "line 1: AccountCode")
    assert outcome.applied == {} and outcome.last.http_status == 400 and outcome.last.b1_code == "-10"
    assert json.dumps(b1.docs[key], sort_keys=True) == before
    assert loader.stats.not_applied == 1


def test_a_posted_invoice_keeps_its_amounts_and_takes_its_vendor_reference():
    b1 = FakeB1()
    key = document(b1)  # an A/P invoice is posted from the moment it is added, open or not
    outcome, _ = run(b1, update(key, {"DocDate": "2024-06-01", "NumAtCard": "INV-42"}), INVOICES)

    assert outcome.status is Status.NOT_APPLIED and outcome.error_code == "-1029"
    assert "posted in SAP B1; change not applied: DocDate" in outcome.error_message
    assert b1.patched == [{"NumAtCard": "INV-42"}]
    assert (b1.docs[key]["DocDate"], b1.docs[key]["NumAtCard"]) == ("2024-05-01", "INV-42")


@pytest.mark.parametrize("rows", [("bost_Open", "bost_Open"), ("bost_Close", "bost_Open")])
def test_a_refusal_where_nothing_is_closed_fails_the_record_with_b1s_answer(rows):
    b1 = FakeB1()
    key = document(b1, rows=rows)

    async def refuse(entity_set, key, payload):
        b1.patches += 1
        raise FakeError(400, -5002, "Enter valid code  [DocumentLines.AccountCode][line: 2]")

    b1.patch = refuse
    outcome, loader = run(b1, update(key, {"DocumentLines": [{"_key": "b", "LineNum": 1, "AccountCode": "999"}]}))
    assert outcome.status is Status.FAILED and outcome.error_code == "-5002" and b1.patches == 1
    assert outcome.error_message == "Enter valid code  [DocumentLines.AccountCode][line: 2]"
    assert (loader.stats.failed, loader.stats.not_applied) == (1, 0)


def test_the_ledger_keeps_what_b1_holds_and_the_refused_rendering_is_not_sent_again(tmp_path):
    state = tmp_path / "state.duckdb"
    b1 = FakeB1()
    key = document(b1, rows=("bost_Close", "bost_Open"))
    synced = {"U_JaggaerRef": "PO-1", "CardCode": "V1", "Comments": "old",
              "DocumentLines": [{"_key": "a", "AccountCode": "613000", "Quantity": 1.0},
                                {"_key": "b", "AccountCode": "613000", "Quantity": 1.0}]}
    with db.connect(state) as conn:
        ledger.record_result(conn, "run-0", [ledger.Result(
            "po", "PO-1", "create", "synced", target_key=str(key), fingerprint=fingerprint(synced), payload=synced,
            mapping_version="v1", line_map={"a": 0, "b": 1}, plan_hash="h1", target_entity="PurchaseOrders")])
        row = ledger.ledger_rows(conn, "po")["PO-1"]
    rendered = {**synced, "Comments": "new", "DocumentLines": [dict(line, AccountCode="612000")
                                                               for line in synced["DocumentLines"]]}
    item = compare(PlanItem("po", "PO-1", "skip", record_key="PO-1", mapping_version="v2", plan_hash="h2"), rendered, row)
    assert item.action == "update"

    async def go() -> None:
        journal = LedgerJournal(state, "run-1", ORDERS)
        try:
            await Loader(b1, journal, retry=FAST).load(ORDERS, operations([item], ORDERS))
        finally:
            journal.close()

    asyncio.run(go())
    held = apply_patch(synced, {"Comments": "new", "DocumentLines": [{"_key": "b", "LineNum": 1, "AccountCode": "612000"}]})
    assert [line["AccountCode"] for line in held["DocumentLines"]] == ["613000", "612000"]  # as in B1 now
    with db.connect(state, read_only=True) as conn:
        row = ledger.ledger_rows(conn, "po")["PO-1"]
        events = conn.execute("SELECT outcome, http_status, b1_code, payload FROM events WHERE run_id = 'run-1' "
                              "ORDER BY rowid").fetchall()
    assert (row.status, row.payload, row.fingerprint) == ("not_applied", held, fingerprint(held))
    assert (row.attempt_fingerprint, row.plan_hash, row.mapping_version) == (fingerprint(rendered), "h2", "v2")
    assert row.last_error_code == "-10" and "row 0 closed in SAP B1; change not applied" in row.last_error
    assert [(o, s, c) for o, s, c, _ in events] == [("intent", None, None), ("retry", 400, "-10"),
                                                    ("not_applied", 204, "-10")]
    assert json.loads(events[-1][3]) == {"Comments": "new", "DocumentLines": [{"LineNum": 1, "AccountCode": "612000"}]}

    # planned again (another mapping version, same rendering): passed over, still not applied
    again = compare(PlanItem("po", "PO-1", "skip", plan_hash="h3"), rendered, row)
    assert (again.action, again.held) == ("skip", True) and "not applied" in again.reason
    with db.connect(state) as conn:
        ledger.refresh_synced(conn, [ledger.Unchanged("po", "PO-1", "h3", status="not_applied")])
        assert ledger.ledger_rows(conn, "po")["PO-1"].status == "not_applied"
    # the source changes again: the diff against what B1 holds carries the closed row's change again
    changed = {**rendered, "Comments": "newer"}
    later = compare(PlanItem("po", "PO-1", "skip", plan_hash="h4"), changed, row)
    assert later.action == "update"
    assert later.patch == {"Comments": "newer", "DocumentLines": [{"_key": "a", "LineNum": 0, "AccountCode": "612000"}]}


def test_a_posted_invoice_line_coded_differently_keeps_its_posted_coding_without_a_refused_write():
    """A rule-table edit gives a posted invoice's line another account: B1 keeps the posted coding (a
    reclassification is a journal entry), so that part is not applied and the header change still goes;
    a different amount still fails the record (a credit memo or a new invoice is needed)."""
    from engine.load.links import BaseLinker

    b1 = FakeB1()
    key = document(b1)
    linker = BaseLinker(b1, lambda ref: None)

    async def go(op: Operation):
        loader = Loader(b1, MemoryJournal(), retry=FAST)
        [outcome] = await loader.load(INVOICES, [op], linker.prepare)
        return outcome

    recoded = update(key, {"NumAtCard": "INV-42", "DocumentLines": [{"_key": "a", "LineNum": 0, "AccountCode": "612000"}]})
    outcome = asyncio.run(go(recoded))
    assert outcome.status is Status.NOT_APPLIED and outcome.error_code == "posted_invoice"
    assert outcome.error_message == "posted in SAP B1; change not applied: line 0: AccountCode; the rest was applied"
    assert b1.patches == 1 and b1.patched == [{"NumAtCard": "INV-42"}]
    assert (b1.docs[key]["NumAtCard"], b1.docs[key]["DocumentLines"][0]["AccountCode"]) == ("INV-42", "613000")

    only_coding = update(key, {"DocumentLines": [{"_key": "b", "LineNum": 1, "CostingCode": "PLANT2"}]})
    outcome = asyncio.run(go(only_coding))
    assert outcome.status is Status.NOT_APPLIED and outcome.writes == 0 and b1.patches == 1

    note = update(key, {"DocumentLines": [{"_key": "a", "LineNum": 0, "FreeText": "see JAGGAER"}]})
    outcome = asyncio.run(go(note))
    assert outcome.status is Status.SYNCED and b1.docs[key]["DocumentLines"][0]["FreeText"] == "see JAGGAER"
    assert b1.patches == 2

    more = update(key, {"DocumentLines": [{"_key": "a", "LineNum": 0, "AccountCode": "612000", "Quantity": 2.0}]})
    outcome = asyncio.run(go(more))
    assert outcome.status is Status.FAILED and outcome.error_code == "posted_invoice_lines" and b1.patches == 2
    assert "credit memo" in outcome.error_message
