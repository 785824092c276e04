"""Acceptance: changes to documents SAP B1 has closed, over real sockets.

A finance team expects B1 to keep what it closed: a changed JAGGAER order whose row was fully invoiced
takes the change on its open rows only; one closed in B1 keeps it all. Either is reported as not
applied — not a failure, not re-sent every run — and `replay --ref` sends it once the order is reopened.
"""

from __future__ import annotations

import httpx

from tests.e2e.project_fixture import start_stack


def b1_action(stack, entity_set: str, doc_entry: int, action: str) -> None:
    """What a B1 user does: a bound action (Close, Reopen) on a document."""
    with httpx.Client(base_url=stack.b1.service_root("v2") + "/", timeout=30) as client:
        client.post("Login", json=stack.b1.login_body()).raise_for_status()
        response = client.post(f"{entity_set}({doc_entry})/{action}")
        assert response.status_code == 204, response.text
        client.post("Logout")


def test_changes_to_closed_rows_and_closed_orders_are_reported_not_applied_and_sent_once_reopened(tmp_path):
    with start_stack(tmp_path, seed=5) as stack:
        jag = stack.jag
        supplier = jag.suppliers()[0]["returnCompanyInfo"]["bravoId"]
        billed = jag.create_purchase_order(supplier_id=supplier, lines=[{"quantity": 4, "unitPrice": 10.0},
                                                                         {"quantity": 6, "unitPrice": 10.0}])
        closed = jag.create_purchase_order(supplier_id=supplier, lines=[{"quantity": 3, "unitPrice": 5.0}])
        jag.create_invoice(po_id=billed["header"]["purchaseOrderId"], lines=[{"poLineNumber": 1, "quantity": 4}])
        assert stack.run().ok
        billed_ref, closed_ref = (str(po["header"]["purchaseOrderId"]) for po in (billed, closed))
        docs = stack.b1_docs("PurchaseOrders")
        assert [ln["LineStatus"] for ln in docs[billed_ref]["DocumentLines"]] == ["bost_Close", "bost_Open"]
        b1_action(stack, "PurchaseOrders", docs[closed_ref]["DocEntry"], "Close")  # closed by a B1 user

        jag.change_purchase_order(int(billed_ref), lines=[{"lineNumber": 1, "quantity": 5}, {"lineNumber": 2, "quantity": 8}])
        jag.change_purchase_order(int(closed_ref), lines=[{"lineNumber": 1, "quantity": 7}])
        before = stack.writes()
        report = stack.run()
        after = stack.writes()

        assert report.ok and report.writes == 3  # one refused PATCH each, then the open row of `billed`
        assert after.get("PurchaseOrders.PATCH", 0) - before.get("PurchaseOrders.PATCH", 0) == 1  # refusals change nothing
        problems = {p.ref: p for p in report.problems}
        assert set(problems) == {billed_ref, closed_ref} and {p.status for p in problems.values()} == {"not_applied"}
        assert "row 0 closed in SAP B1; change not applied: line 0: Quantity; the rest was applied" in problems[billed_ref].message
        assert problems[closed_ref].message == "Document is already closed — closed in SAP B1; change not applied: line 0: Quantity"
        docs = stack.b1_docs("PurchaseOrders")
        assert [ln["Quantity"] for ln in docs[billed_ref]["DocumentLines"]] == [4, 8]
        assert [ln["Quantity"] for ln in docs[closed_ref]["DocumentLines"]] == [3]
        assert stack.audit("failures") == []
        assert {row["external_ref"] for row in stack.audit("not-applied")} == {billed_ref, closed_ref}

        again = stack.run()
        assert again.writes == 0 and again.problems == []  # not re-sent while nothing changes

        b1_action(stack, "PurchaseOrders", docs[closed_ref]["DocEntry"], "Reopen")
        replay = stack.replay(refs=[closed_ref])
        assert replay is not None and replay.ok and replay.problems == [] and replay.writes == 1
        assert [ln["Quantity"] for ln in stack.b1_docs("PurchaseOrders")[closed_ref]["DocumentLines"]] == [7]
        statuses = {row["external_ref"]: row["status"] for row in stack.audit(
            "SELECT external_ref, status FROM ledger WHERE pipeline = 'purchase_orders'")}
        assert (statuses[closed_ref], statuses[billed_ref]) == ("synced", "not_applied")
        assert stack.run().writes == 0
