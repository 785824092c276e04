"""Acceptance (issue 5): JAGGAER simulator -> `run_pipelines` -> SAP B1 simulator, over real sockets.

What B1 holds after a run is checked against the JAGGAER records themselves: suppliers, purchase
orders and invoices, GL accounts and cost centres, base-document links and open quantities; then
the incremental behaviour (no-op run, one changed line, an invoice that waits for its order).
"""

from __future__ import annotations

from collections import defaultdict

import pytest

from tests.e2e.project_fixture import expected_costing, invoice_lines, po_lines, splits, start_stack


@pytest.fixture
def stack(tmp_path):
    with start_stack(tmp_path, seed=20) as s:
        yield s


def synced_orders(jag) -> list[dict]:
    return [po for po in jag.purchase_orders()
            if po["header"]["workflowStatus"] == "Completed" and po["header"]["poStatus"] != "Cancelled"]


def b1_line_nums(po: dict) -> dict[str, int]:
    """J1P line number -> the B1 LineNum it becomes (cancelled lines are not sent)."""
    kept = [line for line in po_lines(po) if line.get("lineStatus") != "Cancelled"]
    return {str(line["lineNumber"]): i for i, line in enumerate(kept)}


def test_full_path_lands_suppliers_orders_and_invoices_with_accounts_cost_centres_and_links(stack):
    report = stack.run()
    assert report.ok and report.problems == [], report.problems
    jag = stack.jag

    # suppliers: one vendor per JAGGAER seller, CardCode = the ERP vendor number (extCode)
    partners = stack.b1_docs("BusinessPartners")
    sellers = {str(s["returnCompanyInfo"]["bravoId"]): s["returnCompanyInfo"] for s in jag.suppliers()}
    assert set(partners) == set(sellers)
    for bravo_id, info in sellers.items():
        bp = partners[bravo_id]
        assert (bp["CardCode"], bp["CardName"], bp["CardType"]) == (info["extCode"], info["companyName"], "cSupplier")

    # purchase orders: Completed ones only; each line with the account and cost centre of its split
    orders = stack.b1_docs("PurchaseOrders")
    expected_orders = {str(po["header"]["purchaseOrderId"]): po for po in synced_orders(jag)}
    assert set(orders) == set(expected_orders)
    assert len(expected_orders) < len(jag.purchase_orders()), "the seed has an order still pending approval"
    by_po_number = {}
    for ref, po in expected_orders.items():
        doc = orders[ref]
        by_po_number[po["header"]["poNumber"]] = (po, doc)
        assert doc["CardCode"] == po["header"]["supplier"]["supplierNumber"]
        assert doc["NumAtCard"] == po["header"]["poNumber"]
        lines = po_lines(po)
        assert [(ln["ItemDescription"], ln["Quantity"], ln["AccountCode"], ln["CostingCode"]) for ln in doc["DocumentLines"]] == [
            (line["item"]["description"], float(line["quantity"]), *expected_costing(line)) for line in lines
        ], ref
    assert any(len(splits(line)) > 1 for po in expected_orders.values() for line in po_lines(po)), \
        "the seed has a line split over two cost centres (charged to the largest share)"

    # invoices: PO lines copied from the right PO line (BaseType 22), non-PO lines with the rules' accounts
    invoices = stack.b1_docs("PurchaseInvoices")
    expected_invoices = {str(inv["header"]["invoiceId"]): inv for inv in jag.invoices()
                         if inv["header"]["invoiceType"] == "Invoice" and inv["header"]["workflowStatus"] == "Completed"}
    assert set(invoices) == set(expected_invoices)
    assert len(expected_invoices) < len(jag.invoices()), "the seed has a credit memo (not a PurchaseInvoices document)"
    invoiced: dict[tuple[int, int], float] = defaultdict(float)
    kinds = set()
    for ref, inv in expected_invoices.items():
        doc = invoices[ref]
        assert doc["CardCode"] == inv["header"]["supplier"]["supplierNumber"]
        lines = invoice_lines(inv)
        assert len(doc["DocumentLines"]) == len(lines), ref
        for line, b1_line in zip(lines, doc["DocumentLines"], strict=True):
            assert b1_line["Quantity"] == float(line["quantity"])
            if line.get("poNumber"):
                kinds.add("po")
                po, po_doc = by_po_number[line["poNumber"]]
                line_num = b1_line_nums(po)[str(line["poLineNumber"])]
                assert (b1_line["BaseType"], b1_line["BaseEntry"], b1_line["BaseLine"]) == (22, po_doc["DocEntry"], line_num)
                po_line = po_doc["DocumentLines"][line_num]
                assert (b1_line["AccountCode"], b1_line["CostingCode"]) == (po_line["AccountCode"], po_line["CostingCode"])
                invoiced[(po_doc["DocEntry"], line_num)] += float(line["quantity"])
            else:
                kinds.add("non-po")
                assert b1_line["BaseType"] == -1
                assert (b1_line["AccountCode"], b1_line["CostingCode"]) == expected_costing(line)
    assert kinds == {"po", "non-po"}, "the seed has invoices with and without a purchase order"

    # B1's own bookkeeping agrees: every PO line's open quantity fell by what was invoiced against it
    for doc in orders.values():
        for ln in doc["DocumentLines"]:
            assert ln["RemainingOpenQuantity"] == pytest.approx(ln["Quantity"] - invoiced[(doc["DocEntry"], ln["LineNum"])])
    assert invoiced, "some invoice billed a PO line"


def test_partial_invoices_leave_the_right_open_quantity_and_close_the_line(stack):
    jag = stack.jag
    supplier = jag.suppliers()[0]["returnCompanyInfo"]["bravoId"]
    po = jag.create_purchase_order(supplier_id=supplier, lines=[{"quantity": 10, "unitPrice": 4.0},
                                                                {"quantity": 3, "unitPrice": 7.5}])
    po_id = po["header"]["purchaseOrderId"]
    assert stack.run().ok

    def po_line(num: int) -> dict:
        return stack.b1_docs("PurchaseOrders")[str(po_id)]["DocumentLines"][num]

    assert po_line(0)["RemainingOpenQuantity"] == 10
    first = jag.create_invoice(po_id=po_id, lines=[{"poLineNumber": 1, "quantity": 4}])
    assert stack.run().ok
    assert (po_line(0)["RemainingOpenQuantity"], po_line(0)["LineStatus"]) == (6, "bost_Open")
    second = jag.create_invoice(po_id=po_id, lines=[{"poLineNumber": 1, "quantity": 6}])
    assert stack.run().ok
    assert (po_line(0)["RemainingOpenQuantity"], po_line(0)["LineStatus"]) == (0, "bost_Close")
    assert (po_line(1)["RemainingOpenQuantity"], po_line(1)["LineStatus"]) == (3, "bost_Open")
    assert stack.b1_docs("PurchaseOrders")[str(po_id)]["DocumentStatus"] == "bost_Open"
    invoices = stack.b1_docs("PurchaseInvoices")
    for inv, qty in ((first, 4), (second, 6)):
        [line] = invoices[str(inv["header"]["invoiceId"])]["DocumentLines"]
        assert (line["BaseType"], line["BaseLine"], line["Quantity"]) == (22, 0, qty)


def test_no_change_no_write_one_changed_line_one_patch_and_a_waiting_invoice_lands_later(stack):
    jag = stack.jag
    assert stack.run().ok
    before = stack.writes()
    second = stack.run()
    assert second.ok and second.writes == 0
    assert stack.writes() == before, "a run without changes writes nothing to SAP B1"

    # one changed PO line in JAGGAER -> exactly one PATCH, of that line, in place
    po = synced_orders(jag)[0]
    ref, line = str(po["header"]["purchaseOrderId"]), po_lines(po)[0]
    jag.change_purchase_order(po["header"]["purchaseOrderId"],
                              lines=[{"lineNumber": line["lineNumber"], "quantity": float(line["quantity"]) + 5}])
    lines_before = stack.b1_docs("PurchaseOrders")[ref]["DocumentLines"]
    third = stack.run()
    after = stack.writes()
    assert third.ok
    assert (after["writes"] - before["writes"], after["PATCH"] - before["PATCH"], after["POST"] - before["POST"]) == (1, 1, 0)
    lines_after = stack.b1_docs("PurchaseOrders")[ref]["DocumentLines"]
    assert len(lines_after) == len(lines_before)
    assert lines_after[0]["Quantity"] == float(line["quantity"]) + 5
    assert [ln["Quantity"] for ln in lines_after[1:]] == [ln["Quantity"] for ln in lines_before[1:]]

    # an invoice whose PO is not in B1 yet waits (not failed), and lands once the PO is there
    supplier = jag.suppliers()[1]["returnCompanyInfo"]["bravoId"]
    pending = jag.create_purchase_order(supplier_id=supplier, lines=[{"quantity": 8}], workflow_status="Pending")
    po_id = pending["header"]["purchaseOrderId"]
    invoice = jag.create_invoice(po_id=po_id)
    inv_ref = str(invoice["header"]["invoiceId"])
    fourth = stack.run()
    assert fourth.ok
    waiting = {(p.pipeline, p.ref): p for p in fourth.problems}
    assert waiting[("invoices", inv_ref)].status == "waiting"
    assert pending["header"]["poNumber"] in waiting[("invoices", inv_ref)].message
    assert inv_ref not in stack.b1_docs("PurchaseInvoices")
    assert inv_ref in {row["external_ref"] for row in stack.audit("waiting")}
    assert stack.audit("failures") == []

    jag.change_purchase_order(po_id, workflow_status="Completed")
    fifth = stack.run()
    assert fifth.ok and fifth.problems == []
    doc = stack.b1_docs("PurchaseInvoices")[inv_ref]
    po_doc = stack.b1_docs("PurchaseOrders")[str(po_id)]
    assert [(ln["BaseType"], ln["BaseEntry"], ln["BaseLine"], ln["Quantity"]) for ln in doc["DocumentLines"]] == [
        (22, po_doc["DocEntry"], 0, 8.0)]
    assert po_doc["DocumentLines"][0]["RemainingOpenQuantity"] == 0


def test_a_posted_invoice_takes_header_changes_and_refuses_line_changes_visibly(stack):
    """B1 keeps a posted A/P invoice's lines (a difference is a credit memo or a new invoice): a line
    changed in JAGGAER afterwards fails that record, named, without a write; header fields still update."""
    jag = stack.jag
    supplier = jag.suppliers()[0]["returnCompanyInfo"]["bravoId"]
    po = jag.create_purchase_order(supplier_id=supplier, lines=[{"quantity": 10, "unitPrice": 4.0}])
    po_id = po["header"]["purchaseOrderId"]
    billed = jag.create_invoice(po_id=po_id, lines=[{"poLineNumber": 1, "quantity": 4}])
    renamed = jag.create_invoice(po_id=po_id, lines=[{"poLineNumber": 1, "quantity": 2}])
    assert stack.run().ok
    billed_ref, renamed_ref = str(billed["header"]["invoiceId"]), str(renamed["header"]["invoiceId"])
    posted = stack.b1_docs("PurchaseInvoices")[billed_ref]

    jag.change_invoice(int(billed_ref), lines=[{"lineNumber": 1, "quantity": 5}])
    jag.change_invoice(int(renamed_ref), supplier_invoice_number="INV-2024-0042")
    before = stack.writes()
    report = stack.run()
    after = stack.writes()
    [problem] = report.problems
    assert (problem.pipeline, problem.ref, problem.status) == ("invoices", billed_ref, "failed")
    assert "posted" in problem.message and "credit memo" in problem.message
    assert (after["writes"] - before["writes"], after["PurchaseInvoices.PATCH"] - before.get("PurchaseInvoices.PATCH", 0)) == (1, 1)
    assert stack.b1_docs("PurchaseInvoices")[billed_ref] == posted
    assert stack.b1_docs("PurchaseInvoices")[renamed_ref]["NumAtCard"] == "INV-2024-0042"
    assert stack.b1_docs("PurchaseOrders")[str(po_id)]["DocumentLines"][0]["RemainingOpenQuantity"] == 4
    assert [row["external_ref"] for row in stack.audit("failures")] == [billed_ref]
    assert stack.run().writes == 0  # not re-sent by a plain run
