"""Writes: POST 201/204, PATCH merge and replace, ETags, DELETE rules, actions, user-defined fields."""

from __future__ import annotations

import hashlib
import itertools

from .conftest import error_of, po_body

_codes = itertools.count(1)


def new_code(prefix: str = "VT") -> str:
    return f"{prefix}{next(_codes):05d}"


def etag(version: int) -> str:
    return 'W/"' + hashlib.sha1(str(version).encode()).hexdigest().upper() + '"'


def test_create_bp_201_location_etag_defaults(sl):
    code = new_code()
    response = sl.post("BusinessPartners", {"CardCode": code, "CardName": "Test Supplier", "CardType": "cSupplier",
                                            "BPAddresses": [{"AddressName": "REMIT", "AddressType": "bo_BillTo",
                                                             "City": "Dayton", "Country": "US"}]})
    assert response.status_code == 201
    assert response.headers["location"] == f"{sl.root}/BusinessPartners('{code}')"
    assert response.headers["etag"] == 'W/"356A192B7913B04C54574D18C28D46E6395428AB"' == etag(1)
    body = response.json()
    if sl.version == "v2":
        assert body["@odata.context"].endswith("$metadata#BusinessPartners/$entity")
        assert body["@odata.etag"] == etag(1)
        assert body["CreateDate"].endswith("T00:00:00Z")
    else:
        assert body["odata.metadata"].endswith("$metadata#BusinessPartners/@Element")
        assert body["odata.etag"] == etag(1) and len(body["CreateDate"]) == 10
    assert body["GroupCode"] == 101 and body["Currency"] == "USD" and body["PayTermsGrpCode"] == -1
    assert body["Valid"] == "tYES" and body["Frozen"] == "tNO" and body["DataVersion"] == 1
    assert body["CurrentAccountBalance"] == 0.0 and body["Phone1"] is None and body["ContactEmployees"] == []
    assert body["BilltoDefault"] == "REMIT" and body["City"] == "Dayton"
    assert body["BPAddresses"][0]["BPCode"] == code and body["BPAddresses"][0]["RowNum"] == 0
    assert len(body) > 250  # every property of the type is returned


def test_customer_gets_group_100(v2):
    body = v2.post("BusinessPartners", {"CardCode": new_code("C"), "CardName": "X"}).json()
    assert body["CardType"] == "cCustomer" and body["GroupCode"] == 100


def test_return_no_content(v2):
    code = new_code()
    response = v2.post("BusinessPartners", {"CardCode": code, "CardName": "X", "CardType": "cSupplier"},
                       headers={"Prefer": "return-no-content"})
    assert response.status_code == 204 and response.content == b""
    assert response.headers["location"].endswith(f"BusinessPartners('{code}')")
    assert v2.get(f"BusinessPartners('{code}')").status_code == 200


def test_duplicate_key_and_not_found(sl):
    code = new_code()
    assert sl.post("BusinessPartners", {"CardCode": code, "CardName": "X"}).status_code == 201
    response = sl.post("BusinessPartners", {"CardCode": code, "CardName": "Y"})
    assert response.status_code == 400
    assert error_of(response) == (-2035, "This entry already exists in the following tables (ODBC -2035)")
    missing = sl.get("BusinessPartners('NOPE')")
    assert missing.status_code == 404 and error_of(missing) == (-2028, "No matching records found (ODBC -2028)")
    assert sl.patch("PurchaseOrders(999999)", {"Comments": "x"}).status_code == 404


def test_string_keys_with_quotes_and_reserved_characters(v2):
    for code in ("O'Brien", "A#B/C d"):
        assert v2.post("BusinessPartners", {"CardCode": code, "CardName": "Odd"}).status_code == 201
    assert v2.get("BusinessPartners('O''Brien')").json()["CardCode"] == "O'Brien"
    assert v2.get("BusinessPartners('A%23B%2FC%20d')").json()["CardCode"] == "A#B/C d"


def test_patch_merges_and_bumps_etag(sl):
    code = new_code()
    sl.post("BusinessPartners", {"CardCode": code, "CardName": "Before", "CardType": "cSupplier"})
    response = sl.patch(f"BusinessPartners('{code}')", {"CardName": "After", "PayTermsGrpCode": 2})
    assert response.status_code == 204 and response.content == b""
    assert response.headers["etag"] == etag(2)
    body = sl.get(f"BusinessPartners('{code}')").json()
    assert body["CardName"] == "After" and body["PayTermsGrpCode"] == 2 and body["CardType"] == "cSupplier"
    assert body["DataVersion"] == 2


def test_if_match_412_and_weak_only(v2):
    code = new_code()
    v2.post("BusinessPartners", {"CardCode": code, "CardName": "X"})
    stale = v2.patch(f"BusinessPartners('{code}')", {"CardName": "Y"}, headers={"If-Match": etag(7)})
    assert stale.status_code == 412
    assert error_of(stale) == (-2039, "Another user or another operation modified data; to continue, open the "
                                      "window again (ODBC -2039)")
    assert v2.get(f"BusinessPartners('{code}')").json()["DataVersion"] == 1  # refused write: unchanged
    assert v2.patch(f"BusinessPartners('{code}')", {"CardName": "Y"}, headers={"If-Match": etag(1)}).status_code == 204
    # a strong or malformed If-Match is ignored, as the Service Layer does
    assert v2.patch(f"BusinessPartners('{code}')", {"CardName": "Z"}, headers={"If-Match": '"nope"'}).status_code == 204
    # If-None-Match on GET still answers 200 with the body
    assert v2.get(f"BusinessPartners('{code}')", headers={"If-None-Match": etag(3)}).status_code == 200
    # If-Match on a create is ignored
    assert v2.post("BusinessPartners", {"CardCode": new_code(), "CardName": "X"},
                   headers={"If-Match": etag(9)}).status_code == 201


def test_bp_address_patch_append_update_replace_numbering(v2):
    """The recorded sequence of §8.2: RowNum 0,1,2 -> append 3 -> update 3 -> replace gives 4,5."""
    code = new_code()
    addresses = [{"AddressName": f"A{i}", "AddressType": "bo_BillTo", "City": "X"} for i in range(3)]
    v2.post("BusinessPartners", {"CardCode": code, "CardName": "X", "BPAddresses": addresses})
    path = f"BusinessPartners('{code}')"
    assert v2.patch(path, {"BPAddresses": [{"AddressName": "A3", "AddressType": "bo_BillTo"}]}).status_code == 204
    rows = v2.get(path).json()["BPAddresses"]
    assert [(a["AddressName"], a["RowNum"]) for a in rows] == [("A0", 0), ("A1", 1), ("A2", 2), ("A3", 3)]
    same_key = v2.patch(path, {"BPAddresses": [{"AddressName": "A1", "AddressType": "bo_BillTo"}]})
    assert same_key.status_code == 400 and error_of(same_key)[0] == -2035
    full = {"BPCode": code, "AddressName": "A3", "AddressType": "bo_BillTo", "RowNum": 3, "City": "Updated"}
    assert v2.patch(path, {"BPAddresses": [full]}).status_code == 204
    rows = v2.get(path).json()["BPAddresses"]
    assert len(rows) == 4 and rows[3]["City"] == "Updated"
    replace = v2.patch(path, {"BPAddresses": [{"AddressName": "N1", "AddressType": "bo_BillTo"},
                                              {"AddressName": "N2", "AddressType": "bo_ShipTo"}]},
                       headers={"B1S-ReplaceCollectionsOnPatch": "true"})
    assert replace.status_code == 204
    body = v2.get(path).json()
    assert [(a["AddressName"], a["RowNum"]) for a in body["BPAddresses"]] == [("N1", 4), ("N2", 5)]
    assert body["BilltoDefault"] == "N1"


def test_po_create_defaults_and_totals(sl):
    response = sl.post("PurchaseOrders", po_body(DocDate="2024-05-02", lines=[
        {"ItemCode": "BRK-2210", "Quantity": 10, "UnitPrice": 12.4, "TaxCode": "TX8", "CostingCode": "PLANT1",
         "CostingCode2": "PROD", "ProjectCode": "P-2024-01", "AccountCode": "510000"},
        {"ItemCode": "SEAL-0031", "Quantity": "40", "UnitPrice": 0.85, "DiscountPercent": 10}]))
    assert response.status_code == 201, response.text
    body = response.json()
    assert response.headers["location"] == f"{sl.root}/PurchaseOrders({body['DocEntry']})"
    date = "2024-05-02" if sl.version == "v1" else "2024-05-02T00:00:00Z"
    assert body["DocDate"] == body["DocDueDate"] == body["TaxDate"] == date
    assert body["CardName"] == "Acme Industrial Supply" and body["DocCurrency"] == "USD"
    assert body["PaymentGroupCode"] == 2 and body["DocumentStatus"] == "bost_Open"
    assert body["DocType"] == "dDocument_Items" and body["DocObjectCode"] == "oPurchaseOrders"
    first, second = body["DocumentLines"]
    assert (first["LineNum"], second["LineNum"]) == (0, 1)
    assert first["LineTotal"] == 124.0 and first["TaxTotal"] == 9.92 and first["RemainingOpenQuantity"] == 10.0
    assert first["BaseType"] == -1 and first["LineStatus"] == "bost_Open"
    assert second["Price"] == 0.765 and second["LineTotal"] == 30.6 and second["AccountCode"] == "510000"
    assert body["VatSum"] == 9.92 and body["DocTotal"] == 164.52
    assert body["DocNum"] != body["DocEntry"]


def test_invoice_due_date_from_payment_terms(v2):
    body = v2.post("PurchaseInvoices", po_body("V10001", DocDate="2024-05-02")).json()  # Net 45
    assert body["DocDueDate"] == "2024-06-16T00:00:00Z"


def test_document_patch_lines_merge_and_replace(v2):
    entry = v2.post("PurchaseOrders", po_body()).json()["DocEntry"]
    path = f"PurchaseOrders({entry})"
    assert v2.patch(path, {"Comments": "hello", "DocumentLines": [
        {"LineNum": 0, "Quantity": 12}, {"ItemCode": "BOLT-M8", "Quantity": 1, "UnitPrice": 5}]}).status_code == 204
    lines = v2.get(path).json()["DocumentLines"]
    assert [(ln["LineNum"], ln["ItemCode"], ln["Quantity"]) for ln in lines] == [
        (0, "BRK-2210", 12.0), (1, "SEAL-0031", 40.0), (2, "BOLT-M8", 1.0)]
    assert lines[0]["LineTotal"] == 148.8 and lines[0]["RemainingOpenQuantity"] == 12.0
    response = v2.patch(path, {"DocumentLines": [{"LineNum": 2, "Quantity": 3}, {"ItemCode": "CART-500"}]},
                        headers={"B1S-ReplaceCollectionsOnPatch": "true"})
    assert response.status_code == 204
    body = v2.get(path).json()
    assert [(ln["LineNum"], ln["ItemCode"]) for ln in body["DocumentLines"]] == [(2, "BOLT-M8"), (3, "CART-500")]
    assert body["Comments"] == "hello" and body["DataVersion"] == 3


def test_no_delete_on_orders_and_invoices_but_on_receipts_and_bps(sl):
    po = sl.post("PurchaseOrders", po_body()).json()["DocEntry"]
    response = sl.delete(f"PurchaseOrders({po})")
    assert response.status_code == 400
    assert error_of(response) == (-5006, "Action not supported for this object")
    inv = sl.post("PurchaseInvoices", po_body()).json()["DocEntry"]
    assert error_of(sl.delete(f"PurchaseInvoices({inv})"))[0] == -5006
    grpo = sl.post("PurchaseDeliveryNotes", po_body()).json()["DocEntry"]
    assert sl.delete(f"PurchaseDeliveryNotes({grpo})").status_code == 204
    assert sl.get(f"PurchaseDeliveryNotes({grpo})").status_code == 404
    code = new_code()
    sl.post("BusinessPartners", {"CardCode": code, "CardName": "Gone"})
    assert sl.delete(f"BusinessPartners('{code}')").status_code == 204
    again = sl.delete(f"BusinessPartners('{code}')")
    assert again.status_code == 404
    if sl.version == "v2":  # the recorded release-2511 text
        assert error_of(again) == (-2028, f"Entity with value('{code}') does not exist")
    else:
        assert error_of(again) == (-2028, "No matching records found (ODBC -2028)")


def test_close_cancel_reopen(sl):
    entry = sl.post("PurchaseOrders", po_body()).json()["DocEntry"]
    path = f"PurchaseOrders({entry})"
    assert sl.post(f"{path}/Close").status_code == 204
    body = sl.get(path).json()
    assert body["DocumentStatus"] == "bost_Close"
    assert {ln["LineStatus"] for ln in body["DocumentLines"]} == {"bost_Close"}
    again = sl.post(f"{path}/Close")
    assert again.status_code == 400 and error_of(again) == (-10, "Document is already closed")
    assert sl.post(f"{path}/Reopen").status_code == 204
    assert sl.get(path).json()["DocumentStatus"] == "bost_Open"
    assert sl.post(f"{path}/Cancel").status_code == 204
    body = sl.get(path).json()
    assert (body["Cancelled"], body["CancelStatus"], body["DocumentStatus"]) == ("tYES", "csYes", "bost_Close")
    assert error_of(sl.post(f"{path}/Reopen"))[0] == -10
    assert sl.post("PurchaseOrders(999999)/Close").status_code == 404


def test_action_honours_if_match(v2):
    entry = v2.post("PurchaseOrders", po_body()).json()["DocEntry"]
    assert v2.post(f"PurchaseOrders({entry})/Close", headers={"If-Match": etag(5)}).status_code == 412
    assert v2.post(f"PurchaseOrders({entry})/Close", headers={"If-Match": etag(1)}).status_code == 204


def test_method_override(v2):
    code = new_code()
    v2.post("BusinessPartners", {"CardCode": code, "CardName": "X"})
    response = v2.post(f"BusinessPartners('{code}')", {"CardName": "Over"},
                       headers={"X-HTTP-Method-Override": "PATCH"})
    assert response.status_code == 204
    assert v2.get(f"BusinessPartners('{code}')").json()["CardName"] == "Over"


def test_user_defined_fields(sl, sim):
    name = f"JGR{next(_codes)}"
    before = sl.post("PurchaseOrders", po_body(**{f"U_{name}": "PO-1"}))
    assert before.status_code == 400
    assert error_of(before) == (-1000, f"Property 'U_{name}' of 'Document' is invalid")
    created = sl.post("UserFieldsMD", {"TableName": "OPOR", "Name": name, "Type": "db_Alpha", "Size": 12,
                                       "Description": "JAGGAER id"})
    assert created.status_code == 201, created.text
    field = created.json()
    assert created.headers["location"].endswith(f"UserFieldsMD(TableName='OPOR',FieldID={field['FieldID']})")
    assert sl.post("UserFieldsMD", {"TableName": "OPOR", "Name": name, "Type": "db_Alpha"}).status_code == 400
    # header tables are shared by every marketing document
    for entity_set in ("PurchaseOrders", "PurchaseInvoices"):
        response = sl.post(entity_set, po_body(**{f"U_{name}": "PO-1", "NumAtCard": "REF-1"}))
        assert response.status_code == 201, response.text
        assert response.json()[f"U_{name}"] == "PO-1"
    too_long = sl.post("PurchaseOrders", po_body(**{f"U_{name}": "X" * 13}))
    assert error_of(too_long) == (-8112, f"Value too long in property 'U_{name}' of 'Document'")
    query = sl.get("PurchaseOrders", params={"$filter": f"U_{name} eq 'PO-1' and NumAtCard eq 'REF-1'",
                                             "$select": f"DocEntry,U_{name}"}).json()
    assert len(query["value"]) == 1
    # older documents read the new field as null
    assert any(d.get(f"U_{name}") is None for d in sim.entities("PurchaseOrders"))


def test_line_and_bp_user_fields(v2):
    name = f"LN{next(_codes)}"
    assert v2.post("UserFieldsMD", {"TableName": "POR1", "Name": name, "Type": "db_Numeric"}).status_code == 201
    assert v2.post("UserFieldsMD", {"TableName": "OCRD", "Name": name, "Type": "db_Alpha", "Size": 20}).status_code == 201
    lines = [{"ItemCode": "BRK-2210", "Quantity": 1, f"U_{name}": 7}]
    body = v2.post("PurchaseDeliveryNotes", po_body(lines=lines)).json()
    assert body["DocumentLines"][0][f"U_{name}"] == 7
    wrong = v2.post("PurchaseOrders", po_body(lines=[{"ItemCode": "BRK-2210", f"U_{name}": "seven"}]))
    assert error_of(wrong) == (-1000, f"Property 'U_{name}' of 'DocumentLine' is invalid")
    code = new_code()
    assert v2.post("BusinessPartners", {"CardCode": code, "CardName": "X", f"U_{name}": "ext-1"}).status_code == 201
    found = v2.get("BusinessPartners", params={"$filter": f"U_{name} eq 'ext-1'", "$select": "CardCode"}).json()
    assert [r["CardCode"] for r in found["value"]] == [code]


def test_profit_center_creates_direct_rule(v2):
    assert v2.post("ProfitCenters", {"CenterCode": "NEWCC", "CenterName": "New", "InWhichDimension": 1}).status_code == 201
    rule = v2.get("DistributionRules('NEWCC')").json()
    assert rule["Direct"] == "Y" and rule["InWhichDimension"] == 1 and rule["TotalFactor"] == 100.0
    assert rule["DistributionRuleLines"][0]["CenterCode"] == "NEWCC"
    assert v2.post("PurchaseOrders", po_body(lines=[{"ItemCode": "BRK-2210", "CostingCode": "NEWCC"}])).status_code == 201


def test_payment_terms_get_assigned_group_number(v2):
    body = v2.post("PaymentTermsTypes", {"PaymentTermsGroupName": "Net 60", "NumberOfAdditionalDays": 60}).json()
    assert body["GroupNumber"] == 5
    assert v2.get("PaymentTermsTypes(5)").json()["PaymentTermsGroupName"] == "Net 60"


def test_entities_dump_and_counters(sim, v2):
    before = sim.counters
    entry = v2.post("PurchaseOrders", po_body()).json()["DocEntry"]
    v2.get(f"PurchaseOrders({entry})")
    after = sim.counters
    assert after["writes"] == before["writes"] + 1
    assert after["writes_by_entity"]["PurchaseOrders"]["POST"] == before["writes_by_entity"].get(
        "PurchaseOrders", {}).get("POST", 0) + 1
    stored = {d["DocEntry"]: d for d in sim.entities("PurchaseOrders")}
    assert stored[entry]["DocDate"] and len(stored[entry]["DocDate"]) == 10  # stored form, not rendered
