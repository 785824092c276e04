"""PATCH of documents (rules.py docstring): posted documents keep their amounts, closed documents and
closed rows stay as they are, and PO quantity changes keep the open-quantity bookkeeping right."""

from __future__ import annotations

import itertools

import pytest

from .conftest import error_of

_names = itertools.count(1)
LOCKED = "Field cannot be updated (ODBC -1029)"


def make_po(client, quantities=(10, 5)) -> int:
    lines = [{"ItemCode": "BRK-2210", "Quantity": q, "UnitPrice": 2.5 + i, "CostingCode": "PLANT2",
              "AccountCode": "510000", "TaxCode": "EX"} for i, q in enumerate(quantities)]
    response = client.post("PurchaseOrders", {"CardCode": "V10000", "DocumentLines": lines})
    assert response.status_code == 201, response.text
    return response.json()["DocEntry"]


def copy_to(client, entity_set: str, entry: int, quantities: dict[int, float], **header) -> dict:
    """A goods receipt or A/P invoice copying `quantities` ({PO LineNum: quantity}) from PO `entry`."""
    lines = [{"BaseType": 22, "BaseEntry": entry, "BaseLine": num, "Quantity": q} for num, q in quantities.items()]
    response = client.post(entity_set, {"CardCode": "V10000", "DocumentLines": lines, **header})
    assert response.status_code == 201, response.text
    return response.json()


def po_lines(client, entry: int) -> list[tuple]:
    lines = client.get(f"PurchaseOrders({entry})").json()["DocumentLines"]
    return [(ln["LineNum"], ln["Quantity"], ln["RemainingOpenQuantity"], ln["LineStatus"]) for ln in lines]


@pytest.fixture
def invoice(v2) -> dict:
    """A posted A/P invoice of two lines copied from a PO (4 of 10 and 5 of 5)."""
    entry = make_po(v2)
    doc = copy_to(v2, "PurchaseInvoices", entry, {0: 4, 1: 5}, NumAtCard="INV-P1", DocDate="2024-05-20")
    return {"po": entry, "path": f"PurchaseInvoices({doc['DocEntry']})", "doc": doc}


# -- posted documents keep their amounts --------------------------------------------------------------

@pytest.mark.parametrize(("field", "value", "column"), [
    ("Quantity", 3, "Quantity"), ("UnitPrice", 9.99, "PriceBefDi"), ("Price", 9.99, "Price"),
    ("LineTotal", 1.0, "LineTotal"), ("AccountCode", "612000", "AcctCode"), ("CostingCode", "PLANT1", "OcrCode"),
    ("CostingCode2", "PROD", "OcrCode2"), ("TaxCode", "TX8", "TaxCode"), ("ItemCode", "SEAL-0031", "ItemCode"),
    ("DiscountPercent", 10, "DiscPrcnt"),
])
def test_a_posted_invoice_line_keeps_its_amounts_and_codes(v2, invoice, field, value, column):
    response = v2.patch(invoice["path"], {"DocumentLines": [{"LineNum": 1, field: value}]})
    assert response.status_code == 400, response.text
    assert error_of(response) == (-1029, f"[PCH1.{column}][line: 2], {LOCKED}")
    after = v2.get(invoice["path"]).json()
    assert after["DataVersion"] == invoice["doc"]["DataVersion"]  # nothing written
    assert after["DocumentLines"] == invoice["doc"]["DocumentLines"]
    assert po_lines(v2, invoice["po"]) == [(0, 10.0, 6.0, "bost_Open"), (1, 5.0, 0.0, "bost_Close")]


@pytest.mark.parametrize(("field", "value", "column"), [
    ("DocDate", "2024-06-01", "DocDate"), ("TaxDate", "2024-06-01", "TaxDate"), ("DocCurrency", "EUR", "DocCur"),
    ("DiscountPercent", 5, "DiscPrcnt"), ("JournalMemo", "other", "JrnlMemo"), ("Project", "P-CAPEX", "Project"),
])
def test_a_posted_invoice_header_keeps_its_posting_fields(sl, field, value, column):
    entry = make_po(sl)
    doc = copy_to(sl, "PurchaseInvoices", entry, {0: 1}, DocDate="2024-05-20")
    response = sl.patch(f"PurchaseInvoices({doc['DocEntry']})", {"Comments": "checked", field: value})
    assert response.status_code == 400
    assert error_of(response) == (-1029, f"[OPCH.{column}], {LOCKED}")
    assert sl.get(f"PurchaseInvoices({doc['DocEntry']})").json()["Comments"] == doc["Comments"]


def test_a_posted_invoice_takes_free_fields_and_unchanged_values(v2, invoice):
    name = f"PP{next(_names)}"
    for table in ("OPCH", "PCH1"):
        assert v2.post("UserFieldsMD", {"TableName": table, "Name": name, "Type": "db_Alpha", "Size": 20}).status_code == 201
    old = invoice["doc"]["DocumentLines"][0]
    response = v2.patch(invoice["path"], {
        "Comments": "approved by AP", "NumAtCard": "INV-P1-A", "DocDueDate": "2024-07-01", f"U_{name}": "head",
        "DocDate": "2024-05-20",  # sent again unchanged: no change, no refusal
        "DocumentLines": [{"LineNum": 0, "FreeText": "partial", f"U_{name}": "row",
                           "Quantity": 4, "UnitPrice": old["UnitPrice"], "AccountCode": old["AccountCode"]}]})
    assert response.status_code == 204, response.text
    after = v2.get(invoice["path"]).json()
    assert (after["Comments"], after["NumAtCard"], after["DocDueDate"], after[f"U_{name}"]) == (
        "approved by AP", "INV-P1-A", "2024-07-01T00:00:00Z", "head")
    line = after["DocumentLines"][0]
    assert (line["FreeText"], line[f"U_{name}"]) == ("partial", "row")
    assert {k: v for k, v in line.items() if k not in ("FreeText", f"U_{name}")} == {
        k: v for k, v in old.items() if k not in ("FreeText", f"U_{name}")}
    assert after["DocTotal"] == invoice["doc"]["DocTotal"] and after["DataVersion"] == invoice["doc"]["DataVersion"] + 1
    assert po_lines(v2, invoice["po"]) == [(0, 10.0, 6.0, "bost_Open"), (1, 5.0, 0.0, "bost_Close")]


def test_a_posted_invoice_takes_no_new_rows_and_loses_none(v2, invoice):
    added = v2.patch(invoice["path"], {"DocumentLines": [{"BaseType": 22, "BaseEntry": invoice["po"], "BaseLine": 0,
                                                          "Quantity": 1}]})
    assert error_of(added) == (-10, "Cannot add or delete rows of a document that has been posted")
    removed = v2.patch(invoice["path"], {"DocumentLines": [{"LineNum": 0}]},
                       headers={"B1S-ReplaceCollectionsOnPatch": "true"})
    assert error_of(removed) == (-10, "Cannot add or delete rows of a document that has been posted")
    assert v2.get(invoice["path"]).json()["DocumentLines"] == invoice["doc"]["DocumentLines"]
    assert po_lines(v2, invoice["po"]) == [(0, 10.0, 6.0, "bost_Open"), (1, 5.0, 0.0, "bost_Close")]
    # all rows sent again under the replace header, unchanged: nothing is deleted, so it is accepted
    keep = v2.patch(invoice["path"], {"DocumentLines": [{"LineNum": 0}, {"LineNum": 1}]},
                    headers={"B1S-ReplaceCollectionsOnPatch": "true"})
    assert keep.status_code == 204, keep.text


def test_a_goods_receipt_is_posted_too(v1):
    entry = make_po(v1)
    receipt = copy_to(v1, "PurchaseDeliveryNotes", entry, {0: 4})
    response = v1.patch(f"PurchaseDeliveryNotes({receipt['DocEntry']})", {"DocumentLines": [{"LineNum": 0, "Quantity": 6}]})
    assert error_of(response) == (-1029, f"[PDN1.Quantity][line: 1], {LOCKED}")
    assert po_lines(v1, entry)[0] == (0, 10.0, 6.0, "bost_Open")


# -- PO quantities and the open-quantity bookkeeping -------------------------------------------------------

def test_po_quantity_keeps_what_was_copied(v2):
    entry = make_po(v2)
    copy_to(v2, "PurchaseDeliveryNotes", entry, {0: 4})
    path = f"PurchaseOrders({entry})"
    below = v2.patch(path, {"DocumentLines": [{"LineNum": 0, "Quantity": 3}]})
    assert error_of(below) == (-10, "Quantity cannot be less than the quantity already delivered or invoiced  "
                                    "[DocumentLines.Quantity][line: 1]")
    assert po_lines(v2, entry)[0] == (0, 10.0, 6.0, "bost_Open")

    assert v2.patch(path, {"DocumentLines": [{"LineNum": 0, "Quantity": 12}]}).status_code == 204
    line = v2.get(path).json()["DocumentLines"][0]
    assert (line["Quantity"], line["RemainingOpenQuantity"], line["OpenAmount"], line["LineTotal"]) == (12.0, 8.0, 20.0, 30.0)
    # the grown open quantity can be copied
    copy_to(v2, "PurchaseInvoices", entry, {0: 8})
    assert po_lines(v2, entry)[0] == (0, 12.0, 0.0, "bost_Close")


def test_po_quantity_reduced_to_what_was_copied_closes_the_row_and_the_last_row_closes_the_order(v2):
    entry = make_po(v2, (10,))
    copy_to(v2, "PurchaseDeliveryNotes", entry, {0: 4})
    assert v2.patch(f"PurchaseOrders({entry})", {"DocumentLines": [{"LineNum": 0, "Quantity": 4}]}).status_code == 204
    order = v2.get(f"PurchaseOrders({entry})").json()
    assert po_lines(v2, entry) == [(0, 4.0, 0.0, "bost_Close")]
    assert order["DocumentStatus"] == "bost_Close" and order["DocumentLines"][0]["OpenAmount"] == 0.0


def test_a_fully_copied_row_cannot_change(v2):
    entry = make_po(v2)
    copy_to(v2, "PurchaseInvoices", entry, {1: 5})  # row 1 closed, the order stays open
    path = f"PurchaseOrders({entry})"
    grown = v2.patch(path, {"DocumentLines": [{"LineNum": 1, "Quantity": 8}]})
    assert error_of(grown) == (-10, "Cannot change a closed row  [DocumentLines.Quantity][line: 2]")
    account = v2.patch(path, {"DocumentLines": [{"LineNum": 1, "AccountCode": "612000"}]})
    assert error_of(account) == (-10, "Cannot change a closed row  [DocumentLines.AccountCode][line: 2]")
    assert po_lines(v2, entry)[1] == (1, 5.0, 0.0, "bost_Close")
    # free text still goes in, and a larger quantity is a new row
    response = v2.patch(path, {"DocumentLines": [{"LineNum": 1, "FreeText": "delivered"},
                                                 {"ItemCode": "BRK-2210", "Quantity": 3, "UnitPrice": 3.5}]})
    assert response.status_code == 204, response.text
    assert po_lines(v2, entry) == [(0, 10.0, 10.0, "bost_Open"), (1, 5.0, 0.0, "bost_Close"), (2, 3.0, 3.0, "bost_Open")]


def test_a_row_closed_by_patch_stays_closed_and_the_last_one_closes_the_order(v2):
    entry = make_po(v2)
    path = f"PurchaseOrders({entry})"
    assert v2.patch(path, {"DocumentLines": [{"LineNum": 0, "LineStatus": "bost_Close"}]}).status_code == 204
    assert v2.get(path).json()["DocumentStatus"] == "bost_Open"
    reopen = v2.patch(path, {"DocumentLines": [{"LineNum": 0, "LineStatus": "bost_Open"}]})
    assert error_of(reopen) == (-10, "Cannot change a closed row  [DocumentLines.LineStatus][line: 1]")
    refused = v2.post("PurchaseDeliveryNotes", {"CardCode": "V10000", "DocumentLines": [
        {"BaseType": 22, "BaseEntry": entry, "BaseLine": 0, "Quantity": 1}]})
    assert error_of(refused) == (-10, "One of the base documents has already been closed ")
    assert v2.patch(path, {"DocumentLines": [{"LineNum": 1, "LineStatus": "bost_Close"}]}).status_code == 204
    assert v2.get(path).json()["DocumentStatus"] == "bost_Close"


@pytest.mark.parametrize("action", ["Close", "Cancel"])
def test_a_closed_or_cancelled_order_takes_only_free_fields(sl, action):
    entry = make_po(sl)
    path = f"PurchaseOrders({entry})"
    assert sl.post(f"{path}/{action}").status_code == 204
    before = sl.get(path).json()
    for body in ({"DocumentLines": [{"LineNum": 0, "Quantity": 12}]},
                 {"DocumentLines": [{"ItemCode": "BRK-2210", "Quantity": 1}]},
                 {"DocumentLines": [{"LineNum": 0}]},  # with the replace header below: deletes row 1
                 {"JournalMemo": "changed"}, {"DocDate": "2024-01-01"}):
        headers = {"B1S-ReplaceCollectionsOnPatch": "true"} if body == {"DocumentLines": [{"LineNum": 0}]} else {}
        response = sl.patch(path, body, headers=headers)
        assert response.status_code == 400, body
        assert error_of(response) == (-10, "Document is already closed"), body
    assert sl.get(path).json() == before
    assert sl.patch(path, {"Comments": "closed by buyer", "DocumentLines": [{"LineNum": 0, "FreeText": "x"}]}).status_code == 204
    after = sl.get(path).json()
    assert (after["Comments"], after["DocumentLines"][0]["FreeText"], after["DocumentStatus"]) == (
        "closed by buyer", "x", "bost_Close")


def test_the_item_of_a_partly_copied_row_cannot_change(v2):
    entry = make_po(v2)
    copy_to(v2, "PurchaseDeliveryNotes", entry, {0: 1})
    response = v2.patch(f"PurchaseOrders({entry})", {"DocumentLines": [{"LineNum": 0, "ItemCode": "SEAL-0031"}]})
    assert error_of(response) == (-10, "Cannot change the item of a row that has been copied to a target document  "
                                       "[DocumentLines.ItemCode][line: 1]")
    # an untouched row may change its item
    assert v2.patch(f"PurchaseOrders({entry})", {"DocumentLines": [{"LineNum": 1, "ItemCode": "SEAL-0031"}]}).status_code == 204


def test_rows_added_to_an_open_order_are_numbered_after_the_highest_ever(v2):
    entry = make_po(v2, (1, 2, 3))
    path = f"PurchaseOrders({entry})"
    replaced = v2.patch(path, {"DocumentLines": [{"LineNum": 0}, {"LineNum": 1}]},
                        headers={"B1S-ReplaceCollectionsOnPatch": "true"})
    assert replaced.status_code == 204  # row 2 deleted
    assert v2.patch(path, {"DocumentLines": [{"ItemCode": "SEAL-0031", "Quantity": 4, "UnitPrice": 1},
                                             {"ItemCode": "BOLT-M8", "Quantity": 5, "UnitPrice": 1}]}).status_code == 204
    assert po_lines(v2, entry) == [(0, 1.0, 1.0, "bost_Open"), (1, 2.0, 2.0, "bost_Open"),
                                   (3, 4.0, 4.0, "bost_Open"), (4, 5.0, 5.0, "bost_Open")]
    # an error on an added row names its place in the document
    bad = v2.patch(path, {"DocumentLines": [{"ItemCode": "BRK-2210", "Quantity": 1, "AccountCode": "999999"}]})
    assert error_of(bad) == (-5002, "Enter valid code  [DocumentLines.AccountCode][line: 5]")


def test_a_draft_takes_nothing_from_its_base_when_its_rows_change(v2):
    entry = make_po(v2, (5,))
    copy_to(v2, "PurchaseDeliveryNotes", entry, {0: 3})
    draft = v2.post("Drafts", {"CardCode": "V10000", "DocObjectCode": "oPurchaseInvoices", "DocumentLines": [
        {"BaseType": 22, "BaseEntry": entry, "BaseLine": 0, "Quantity": 2}]})
    assert draft.status_code == 201, draft.text
    path = f"Drafts({draft.json()['DocEntry']})"
    assert v2.patch(path, {"DocumentLines": [{"ItemCode": "BRK-2210", "Quantity": 1, "UnitPrice": 1}]},
                    headers={"B1S-ReplaceCollectionsOnPatch": "true"}).status_code == 204
    assert po_lines(v2, entry) == [(0, 5.0, 2.0, "bost_Open")]  # nothing given back that was never taken
    assert v2.patch(path, {"DocumentLines": [{"BaseType": 22, "BaseEntry": entry, "BaseLine": 0,
                                              "Quantity": 2}]}).status_code == 204
    assert po_lines(v2, entry) == [(0, 5.0, 2.0, "bost_Open")]  # nor taken by a draft row
