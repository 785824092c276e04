"""Business rules with B1's codes, and base-document copying: PO -> goods receipt -> A/P invoice (§5.4)."""

from __future__ import annotations

import pytest

from simulators.sapb1 import start_simulator
from simulators.sapb1.seed import INACTIVE_COST_CENTER, INACTIVE_PROJECT, NON_PURCHASE_ITEM

from .conftest import SL, error_of, po_body


def line(**values) -> dict:
    return {"ItemCode": "BRK-2210", "Quantity": 1, "UnitPrice": 10, **values}


@pytest.mark.parametrize(
    ("body", "code", "message"),
    [
        (po_body("V99999"), -10, "Invalid BP code [OPOR.CardCode] , 'V99999'"),
        (po_body("C20000"), -10, "Invalid BP code [OPOR.CardCode] , 'C20000'"),
        (po_body(lines=[line(AccountCode="999999")]), -5002, "Enter valid code  [DocumentLines.AccountCode][line: 1]"),
        (po_body(lines=[line(), line(AccountCode="500000")]), -5002,
         "Enter valid code  [DocumentLines.AccountCode][line: 2]"),  # a title account is not postable
        (po_body(lines=[line(CostingCode=INACTIVE_COST_CENTER)]), -5002,
         "Enter valid code  [DocumentLines.CostingCode][line: 1]"),
        (po_body(lines=[line(CostingCode="PROD")]), -5002,  # a dimension-2 rule in dimension 1
         "Enter valid code  [DocumentLines.CostingCode][line: 1]"),
        (po_body(lines=[line(CostingCode2="PLANT1")]), -5002, "Enter valid code  [DocumentLines.CostingCode2][line: 1]"),
        (po_body(lines=[line(ProjectCode="NOPE")]), -5002, "Enter valid code  [DocumentLines.ProjectCode][line: 1]"),
        (po_body(lines=[line(ProjectCode=INACTIVE_PROJECT)]), -5002,
         "Enter valid code  [DocumentLines.ProjectCode][line: 1]"),
        (po_body(Project="NOPE"), -5002, "Enter valid code  [OPOR.Project]"),
        (po_body(lines=[line(TaxCode="ZZ")]), -5002, "Enter valid code  [DocumentLines.TaxCode][line: 1]"),
        (po_body(lines=[{"Quantity": 1}]), -10,
         "Item number is missing; specify an item number [DocumentLines.ItemCode][line: 1]"),
        (po_body(lines=[line(ItemCode=NON_PURCHASE_ITEM)]), -5002, "Enter valid code  [DocumentLines.ItemCode][line: 1]"),
        (po_body(lines=[line(UnitPrice=-1)]), -5002, "Internal error (-5002) occurred"),
        (po_body(lines=[line(BaseEntry=1, BaseLine=0)]), -5002, "Internal error (-5002) occurred"),
        (po_body(lines=[line(Nope=1)]), -1000, "Property 'Nope' of 'DocumentLine' is invalid"),
        (po_body(Remark="x"), -1000, "Property 'Remark' of 'Document' is invalid"),
        (po_body(lines=[line(Quantity="ten")]), -1000, "Property 'Quantity' of 'DocumentLine' is invalid"),
        (po_body(DocDate="02/05/2024"), -1000, "Property 'DocDate' of 'Document' is invalid"),
        (po_body(DocType="dDocument_Nope"), -1000, "Property 'DocType' of 'Document' is invalid"),
        (po_body(NumAtCard="x" * 101), -8112, "Value too long in property 'NumAtCard' of 'Document'"),
        (po_body(lines=[line(CostingCode="X" * 9)]), -8112, "Value too long in property 'CostingCode' of 'DocumentLine'"),
        (po_body(DocumentLines="nope"), -1000, "Property 'DocumentLines' of 'Document' is invalid"),
    ],
)
def test_document_rule_errors(sl, sim, body, code, message):
    before = len(sim.entities("PurchaseOrders"))
    response = sl.post("PurchaseOrders", body)
    assert response.status_code == 400, response.text
    assert error_of(response) == (code, message)
    assert len(sim.entities("PurchaseOrders")) == before  # nothing written


def test_service_document_needs_description_and_account(v2):
    ok = v2.post("PurchaseOrders", po_body(DocType="dDocument_Service", lines=[
        {"ItemDescription": "Calibration", "AccountCode": "650000", "LineTotal": 250, "CostingCode": "QA"}]))
    assert ok.status_code == 201, ok.text
    assert ok.json()["DocTotal"] == 250.0 and ok.json()["DocumentLines"][0]["Price"] == 250.0
    missing = v2.post("PurchaseOrders", po_body(DocType="dDocument_Service", lines=[{"ItemDescription": "X"}]))
    assert error_of(missing) == (-5002, "Enter valid code  [DocumentLines.AccountCode][line: 1]")


def test_bp_over_long_address_field(v2):
    response = v2.post("BusinessPartners", {"CardCode": "VLONG", "CardName": "X",
                                            "BPAddresses": [{"AddressName": "A", "State": "OHIO"}]})
    assert error_of(response) == (-8112, "Value too long in property 'State' of 'BPAddress'")
    too_long_code = v2.post("BusinessPartners", {"CardCode": "V" * 16, "CardName": "X"})
    assert error_of(too_long_code) == (-8112, "Value too long in property 'CardCode' of 'BusinessPartner'")


def po(client, quantities=(10, 5), card="V10000") -> int:
    lines = [line(Quantity=q, UnitPrice=2.5 + i, CostingCode="PLANT2", ProjectCode="P-CAPEX", AccountCode="510000")
             for i, q in enumerate(quantities)]
    response = client.post("PurchaseOrders", po_body(card, lines=lines))
    assert response.status_code == 201, response.text
    return response.json()["DocEntry"]


def test_po_to_receipt_to_invoice_three_way_match(sl):
    entry = po(sl)
    receipt = sl.post("PurchaseDeliveryNotes", {"CardCode": "V10000", "DocumentLines": [
        {"BaseType": 22, "BaseEntry": entry, "BaseLine": 0, "Quantity": 4},
        {"BaseType": 22, "BaseEntry": entry, "BaseLine": 1}]})
    assert receipt.status_code == 201, receipt.text
    grpo = receipt.json()
    first = grpo["DocumentLines"][0]
    # fields not sent are copied from the PO line
    assert (first["ItemCode"], first["UnitPrice"], first["CostingCode"], first["ProjectCode"], first["AccountCode"]) == (
        "BRK-2210", 2.5, "PLANT2", "P-CAPEX", "510000")
    assert first["LineTotal"] == 10.0 and grpo["DocumentLines"][1]["Quantity"] == 5.0  # no quantity: all open
    order = sl.get(f"PurchaseOrders({entry})").json()
    assert [ln["RemainingOpenQuantity"] for ln in order["DocumentLines"]] == [6.0, 0.0]
    assert [ln["LineStatus"] for ln in order["DocumentLines"]] == ["bost_Open", "bost_Close"]
    assert order["DocumentStatus"] == "bost_Open" and order["DocumentLines"][0]["OpenAmount"] == 15.0
    # invoice: 3 from the receipt line, 6 straight from the PO line (not received yet), with a price variance
    invoice = sl.post("PurchaseInvoices", {"CardCode": "V10000", "NumAtCard": "INV-1", "DocumentLines": [
        {"BaseType": 20, "BaseEntry": grpo["DocEntry"], "BaseLine": 0, "Quantity": 3},
        {"BaseType": 22, "BaseEntry": entry, "BaseLine": 0, "Quantity": 6, "UnitPrice": 2.6}]})
    assert invoice.status_code == 201, invoice.text
    assert invoice.json()["DocTotal"] == round(3 * 2.5 + 6 * 2.6, 2)
    order = sl.get(f"PurchaseOrders({entry})").json()
    assert order["DocumentStatus"] == "bost_Close"  # every line fully copied
    assert [ln["RemainingOpenQuantity"] for ln in order["DocumentLines"]] == [0.0, 0.0]
    receipt_now = sl.get(f"PurchaseDeliveryNotes({grpo['DocEntry']})").json()
    assert [ln["RemainingOpenQuantity"] for ln in receipt_now["DocumentLines"]] == [1.0, 5.0]
    # the client-side match of §5.4: open receipts of the supplier with their lines
    found = sl.get("PurchaseDeliveryNotes", params={
        "$select": "DocEntry,DocumentStatus,DocumentLines",
        "$filter": "CardCode eq 'V10000' and DocumentStatus eq 'bost_Open'", "$orderby": "DocEntry"}).json()
    match = [d for d in found["value"] if d["DocEntry"] == grpo["DocEntry"]][0]
    assert [(ln["BaseType"], ln["BaseEntry"], ln["BaseLine"]) for ln in match["DocumentLines"]] == [
        (22, entry, 0), (22, entry, 1)]


def test_base_document_errors(v2):
    entry = po(v2, (2,))
    other_supplier = po(v2, (2,), card="V10001")

    def receipt(lines, card="V10000"):
        return v2.post("PurchaseDeliveryNotes", {"CardCode": card, "DocumentLines": lines})

    over = receipt([{"BaseType": 22, "BaseEntry": entry, "BaseLine": 0, "Quantity": 3}])
    assert error_of(over) == (-10, "Quantity exceeds the open quantity of the base document line  "
                                   "[DocumentLines.Quantity][line: 1]")
    split_over = receipt([{"BaseType": 22, "BaseEntry": entry, "BaseLine": 0, "Quantity": 1.5},
                          {"BaseType": 22, "BaseEntry": entry, "BaseLine": 0, "Quantity": 1}])
    assert error_of(split_over)[0] == -10
    assert error_of(receipt([{"BaseType": 22, "BaseEntry": other_supplier, "BaseLine": 0}])) == (
        -10, "Base document card and target document card do not match.")
    assert error_of(receipt([{"BaseType": 22, "BaseEntry": 999999, "BaseLine": 0}])) == (
        -2028, "No matching records found (ODBC -2028)")
    assert error_of(receipt([{"BaseType": 22, "BaseEntry": entry, "BaseLine": 7}]))[0] == -2028
    assert error_of(receipt([{"BaseType": 18, "BaseEntry": entry, "BaseLine": 0}])) == (
        -5002, "Internal error (-5002) occurred")  # an invoice is not a base of a receipt
    assert error_of(receipt([{"BaseEntry": entry, "BaseLine": 0}])) == (-5002, "Internal error (-5002) occurred")
    # nothing was taken from the PO by the refused receipts
    assert v2.get(f"PurchaseOrders({entry})").json()["DocumentLines"][0]["RemainingOpenQuantity"] == 2.0
    assert v2.post(f"PurchaseOrders({entry})/Close").status_code == 204
    closed = receipt([{"BaseType": 22, "BaseEntry": entry, "BaseLine": 0, "Quantity": 1}])
    assert error_of(closed) == (-10, "One of the base documents has already been closed ")


def test_closed_header_rejects_copy_even_with_open_quantity(v2):
    entry = po(v2, (5,))
    assert v2.post("PurchaseDeliveryNotes", {"CardCode": "V10000", "DocumentLines": [
        {"BaseType": 22, "BaseEntry": entry, "BaseLine": 0, "Quantity": 2}]}).status_code == 201
    v2.post(f"PurchaseOrders({entry})/Close")
    order = v2.get(f"PurchaseOrders({entry})").json()
    assert order["DocumentLines"][0]["RemainingOpenQuantity"] == 3.0  # open quantity stays as it was
    refused = v2.post("PurchaseInvoices", {"CardCode": "V10000", "DocumentLines": [
        {"BaseType": 22, "BaseEntry": entry, "BaseLine": 0, "Quantity": 1}]})
    assert error_of(refused)[0] == -10


def test_cancelling_a_target_gives_quantity_back_and_copied_po_cannot_be_cancelled(v2):
    entry = po(v2, (4,))
    grpo = v2.post("PurchaseDeliveryNotes", {"CardCode": "V10000", "DocumentLines": [
        {"BaseType": 22, "BaseEntry": entry, "BaseLine": 0}]}).json()["DocEntry"]
    assert v2.get(f"PurchaseOrders({entry})").json()["DocumentStatus"] == "bost_Close"
    refused = v2.post(f"PurchaseOrders({entry})/Reopen")
    assert refused.status_code == 400
    assert v2.post(f"PurchaseDeliveryNotes({grpo})/Cancel").status_code == 204
    order = v2.get(f"PurchaseOrders({entry})").json()
    assert order["DocumentStatus"] == "bost_Open" and order["DocumentLines"][0]["RemainingOpenQuantity"] == 4.0
    v2.post("PurchaseInvoices", {"CardCode": "V10000", "DocumentLines": [
        {"BaseType": 22, "BaseEntry": entry, "BaseLine": 0, "Quantity": 1}]})
    response = v2.post(f"PurchaseOrders({entry})/Cancel")
    assert error_of(response) == (-10, "Cannot cancel a document that has been copied to a target document")


def test_copied_line_cannot_be_deleted_by_replace(v2):
    entry = po(v2, (4, 2))
    v2.post("PurchaseDeliveryNotes", {"CardCode": "V10000", "DocumentLines": [
        {"BaseType": 22, "BaseEntry": entry, "BaseLine": 0, "Quantity": 1}]})
    response = v2.patch(f"PurchaseOrders({entry})", {"DocumentLines": [{"LineNum": 1}]},
                        headers={"B1S-ReplaceCollectionsOnPatch": "true"})
    assert response.status_code == 400 and error_of(response)[0] == -10
    assert len(v2.get(f"PurchaseOrders({entry})").json()["DocumentLines"]) == 2


def test_duplicate_numatcard_switch():
    with start_simulator(seed="demo") as sim:
        client = SL(sim)
        body = po_body("V10002", NumAtCard="INV-88412")
        assert client.post("PurchaseInvoices", body).status_code == 201
        assert client.post("PurchaseInvoices", body).status_code == 201  # off by default, as in B1
        sim.set_knobs(duplicate_numatcard=True)
        response = client.post("PurchaseInvoices", body)
        assert response.status_code == 400
        assert error_of(response) == (
            -5002, "10001467 - There is already a record with duplicated customer/vendor reference number.")
        # another supplier or another entity set may reuse the reference
        assert client.post("PurchaseInvoices", po_body("V10003", NumAtCard="INV-88412")).status_code == 201
        assert client.post("PurchaseOrders", body).status_code == 201
        client.close()


def test_approval_procedures_turn_posts_into_pending_drafts():
    with start_simulator(seed="demo", approval_procedures=True) as sim:
        client = SL(sim)
        refused = client.post("PurchaseOrders", po_body(NumAtCard="APPROVE-1"))
        assert refused.status_code == 400
        assert error_of(refused) == (-2028, "No matching records found (ODBC -2028)")
        quiet = client.post("PurchaseOrders", po_body(NumAtCard="APPROVE-2"), headers={"Prefer": "return-no-content"})
        assert quiet.status_code == 204
        assert sim.entities("PurchaseOrders") == []
        drafts = client.get("Drafts", params={"$filter": "DocObjectCode eq 'oPurchaseOrders'"}).json()["value"]
        assert [(d["NumAtCard"], d["AuthorizationStatus"]) for d in drafts] == [
            ("APPROVE-1", "dasPending"), ("APPROVE-2", "dasPending")]
        assert client.delete(f"Drafts({drafts[0]['DocEntry']})").status_code == 204
        sim.set_knobs(approval_procedures=False)
        assert client.post("PurchaseOrders", po_body()).status_code == 201
        client.close()
