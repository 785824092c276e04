"""Acceptance (issue 5): invoices against PO lines the warehouse already received in SAP B1.

The receipt (`PurchaseDeliveryNotes`) is posted in B1 as the warehouse would; the invoice then comes
from JAGGAER. Contract §5.4: the invoice line copies the open receipt line (BaseType 20) first, then
the PO line (BaseType 22) for what is not received yet, so B1's three-way match passes on the first
try and the PO line's open quantity falls once, not twice.
"""

from __future__ import annotations

import pytest

from tests.e2e.project_fixture import start_stack


@pytest.fixture
def stack(tmp_path):
    with start_stack(tmp_path, seed=20) as s:
        yield s


def synced_po(stack, quantities: list[float]) -> tuple[dict, dict]:
    """A new JAGGAER order synced to B1: (J1P order, B1 document)."""
    supplier = stack.jag.suppliers()[0]["returnCompanyInfo"]["bravoId"]
    po = stack.jag.create_purchase_order(supplier_id=supplier, lines=[{"quantity": q, "unitPrice": 5.0} for q in quantities])
    assert stack.run().ok
    return po, stack.b1_docs("PurchaseOrders")[str(po["header"]["purchaseOrderId"])]


def invoice_doc(stack, invoice: dict) -> dict:
    return stack.b1_docs("PurchaseInvoices")[str(invoice["header"]["invoiceId"])]


def links(doc: dict) -> list[tuple[int, int, int, float]]:
    return [(ln["BaseType"], ln["BaseEntry"], ln["BaseLine"], ln["Quantity"]) for ln in doc["DocumentLines"]]


def b1_doc(stack, entity_set: str, doc_entry: int) -> dict:
    return next(d for d in stack.b1.entities(entity_set) if d["DocEntry"] == doc_entry)


def test_invoice_of_a_received_po_line_copies_the_receipt_and_takes_the_open_quantity_once(stack):
    po, po_doc = synced_po(stack, [10, 4])
    receipt = stack.post_goods_receipt(po_doc["CardCode"], po_doc["DocEntry"], [(0, 10)])
    assert b1_doc(stack, "PurchaseOrders", po_doc["DocEntry"])["DocumentLines"][0]["RemainingOpenQuantity"] == 0

    invoice = stack.jag.create_invoice(po_id=po["header"]["purchaseOrderId"], lines=[{"poLineNumber": 1, "quantity": 10}])
    report = stack.run()
    assert report.ok and report.problems == [], report.problems
    assert links(invoice_doc(stack, invoice)) == [(20, receipt["DocEntry"], 0, 10.0)]
    # copied from the receipt line, which copied the PO line: same account and cost centre
    line = invoice_doc(stack, invoice)["DocumentLines"][0]
    assert (line["AccountCode"], line["CostingCode"]) == (po_doc["DocumentLines"][0]["AccountCode"],
                                                           po_doc["DocumentLines"][0]["CostingCode"])
    received = b1_doc(stack, "PurchaseDeliveryNotes", receipt["DocEntry"])
    assert (received["DocumentLines"][0]["RemainingOpenQuantity"], received["DocumentStatus"]) == (0, "bost_Close")
    po_lines = b1_doc(stack, "PurchaseOrders", po_doc["DocEntry"])["DocumentLines"]
    assert [ln["RemainingOpenQuantity"] for ln in po_lines] == [0, 4]  # not taken a second time by the invoice


def test_partly_received_po_line_splits_the_invoice_line_over_receipt_then_po_line(stack):
    po, po_doc = synced_po(stack, [10])
    entry = po_doc["DocEntry"]
    first = stack.post_goods_receipt(po_doc["CardCode"], entry, [(0, 3)])
    second = stack.post_goods_receipt(po_doc["CardCode"], entry, [(0, 2)])

    invoice = stack.jag.create_invoice(po_id=po["header"]["purchaseOrderId"], lines=[{"poLineNumber": 1, "quantity": 9}])
    report = stack.run()
    assert report.ok and report.problems == [], report.problems
    # oldest receipt first, each up to its open quantity, then the PO line for what is not received yet
    assert links(invoice_doc(stack, invoice)) == [(20, first["DocEntry"], 0, 3.0), (20, second["DocEntry"], 0, 2.0),
                                                  (22, entry, 0, 4.0)]
    assert b1_doc(stack, "PurchaseOrders", entry)["DocumentLines"][0]["RemainingOpenQuantity"] == 1
    for receipt in (first, second):
        assert b1_doc(stack, "PurchaseDeliveryNotes", receipt["DocEntry"])["DocumentStatus"] == "bost_Close"

    # the rest of the order, invoiced later, comes from the PO line (no open receipt is left)
    rest = stack.jag.create_invoice(po_id=po["header"]["purchaseOrderId"], lines=[{"poLineNumber": 1, "quantity": 1}])
    assert stack.run().ok
    assert links(invoice_doc(stack, rest)) == [(22, entry, 0, 1.0)]
    assert b1_doc(stack, "PurchaseOrders", entry)["DocumentStatus"] == "bost_Close"
    before = stack.writes()
    assert stack.run().writes == 0 and stack.writes() == before  # a split invoice is not sent again


def test_two_invoices_in_one_run_share_a_receipt_without_overdrawing_it(stack):
    po, po_doc = synced_po(stack, [10])
    entry = po_doc["DocEntry"]
    receipt = stack.post_goods_receipt(po_doc["CardCode"], entry, [(0, 6)])
    po_id = po["header"]["purchaseOrderId"]
    invoices = [stack.jag.create_invoice(po_id=po_id, lines=[{"poLineNumber": 1, "quantity": 4}]) for _ in range(2)]
    report = stack.run()
    assert report.ok and report.problems == [], report.problems
    taken = [link for inv in invoices for link in links(invoice_doc(stack, inv))]
    assert sum(q for t, e, _, q in taken if (t, e) == (20, receipt["DocEntry"])) == 6
    assert sum(q for t, e, _, q in taken if (t, e) == (22, entry)) == 2
    assert b1_doc(stack, "PurchaseOrders", entry)["DocumentLines"][0]["RemainingOpenQuantity"] == 2
    assert b1_doc(stack, "PurchaseDeliveryNotes", receipt["DocEntry"])["DocumentStatus"] == "bost_Close"
