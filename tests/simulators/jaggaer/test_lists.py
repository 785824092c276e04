"""List envelopes, paging, FIQL filters, single records and bad requests over real sockets."""

from __future__ import annotations

import httpx
import pytest

from simulators.jaggaer import start_simulator
from tests.simulators.jaggaer.conftest import COMPANY_PATH, INVOICE_PATH, PO_PATH, api_for

PO_KEY = ("jepurchaseorderList", "jepurchaseorder")
INV_KEY = ("jiinvoiceList", "jiinvoice")


def test_paging_walks_every_order_once_in_id_order_with_correct_totals(sim, api):
    records, envelopes = api.walk(PO_PATH, PO_KEY)
    ids = [r["header"]["purchaseOrderId"] for r in records]
    assert len(ids) == 240 and ids == sorted(set(ids))
    assert [e["startAt"] for e in envelopes] == [1, 51, 101, 151, 201]
    assert [e["returnedRecords"] for e in envelopes] == [50, 50, 50, 50, 40]
    assert all(e["totRecords"] == 240 and e["returnMessage"] == "" for e in envelopes)
    assert {r["header"]["purchaseOrderId"] for r in records} == {po["header"]["purchaseOrderId"] for po in sim.purchase_orders()}
    assert all("lineList" not in r and "billTo" not in r["header"] for r in records)


def test_invoice_and_company_lists_page_to_the_end(sim, api):
    invoices, _ = api.walk(INVOICE_PATH, INV_KEY)
    assert len(invoices) == len(sim.invoices()) > 100
    ids = [r["header"]["invoiceId"] for r in invoices]
    assert ids == sorted(ids)
    companies, envelopes = api.walk(COMPANY_PATH, ("returnCompanyData",))
    assert len(companies) == len(sim.company_profiles()) == len(sim.suppliers()) + 1
    assert envelopes[0]["returnMessage"] == "OK"


def test_page_past_the_end_and_empty_filter_are_successes(api):
    past = api.get(PO_PATH, start=1000).json()
    assert past == {"returnCode": 0, "returnMessage": "", "totRecords": 240, "returnedRecords": 0, "startAt": 1000,
                    "jepurchaseorderList": {"jepurchaseorder": []}}
    none = api.get(INVOICE_PATH, flt="invoiceNumber==NOPE", start=3).json()
    assert none["totRecords"] == 0 and none["startAt"] == 3 and none["jiinvoiceList"] == {"jiinvoice": []}
    companies = api.get(COMPANY_PATH, flt="BRAVOID==1").json()
    assert companies["returnCompanyData"] == [] and companies["totRecords"] == 0


def test_filters_on_each_named_key(sim, api):
    orders = sim.purchase_orders()
    sample = orders[17]["header"]
    by_number = api.get(PO_PATH, flt=f"poNumber=={sample['poNumber']}").json()
    assert [r["header"]["purchaseOrderId"] for r in by_number["jepurchaseorderList"]["jepurchaseorder"]] == [sample["purchaseOrderId"]]
    supplier_number = sample["supplier"]["supplierNumber"]
    mine = api.walk(PO_PATH, PO_KEY, flt=f"supplierNumber=={supplier_number};workflowStatus==Completed")[0]
    expected = [o["header"]["purchaseOrderId"] for o in orders
                if o["header"]["supplier"]["supplierNumber"] == supplier_number and o["header"]["workflowStatus"] == "Completed"]
    assert [r["header"]["purchaseOrderId"] for r in mine] == expected
    some = [o["header"]["purchaseOrderId"] for o in orders[:3]]
    in_list = api.get(PO_PATH, flt=f"purchaseOrderId=in=({','.join(map(str, some))})").json()
    assert in_list["totRecords"] == 3
    gt = api.get(PO_PATH, flt=f"purchaseOrderId=gt={some[0]};purchaseOrderId<={some[2]}").json()
    assert [r["header"]["purchaseOrderId"] for r in gt["jepurchaseorderList"]["jepurchaseorder"]] == some[1:]
    not_open = api.walk(PO_PATH, PO_KEY, flt="poStatus!=Open")[0]
    assert not_open and all(r["header"]["poStatus"] != "Open" for r in not_open)
    # Keys are case-insensitive, values may be quoted, ';' may come percent-encoded.
    credit = api.walk(INVOICE_PATH, INV_KEY, flt="INVOICETYPE=='Credit memo'")[0]
    assert all(r["header"]["invoiceType"] == "Credit memo" for r in credit)
    raw = httpx.get(f"{sim.base_url}{INVOICE_PATH}?flt=invoiceLineType==Non-PO%3BworkflowStatus==Completed",
                    headers=api.client.headers).json()
    assert raw["totRecords"] > 0
    assert all(r["header"]["invoiceLineType"] == "Non-PO" for r in raw["jiinvoiceList"]["jiinvoice"])
    sellers = api.walk(COMPANY_PATH, ("returnCompanyData",), flt="TYPE==SELLER;status==ACTIVE")[0]
    assert sellers and all(c["returnCompanyInfo"]["type"] == "SELLER" for c in sellers)
    one = sellers[0]["returnCompanyInfo"]
    for flt in (f"BRAVOID=={one['bravoId']}", f"extCode=={one['extCode']}", f"fiscalCode=={one['fiscalCode']}"):
        found = api.get(COMPANY_PATH, flt=flt).json()["returnCompanyData"]
        assert [c["returnCompanyInfo"]["bravoId"] for c in found] == [one["bravoId"]]


def test_last_modified_filter_orders_by_stamp_then_id(sim, api):
    records = api.walk(INVOICE_PATH, INV_KEY, flt="lastUpdate=ge=2000-01-01T00:00:00Z")[0]
    keys = [(r["header"]["lastUpdate"], r["header"]["invoiceId"]) for r in records]
    assert keys == sorted(keys) and len(keys) == len(sim.invoices())
    middle = keys[len(keys) // 2][0]
    later = api.walk(INVOICE_PATH, INV_KEY, flt=f"lastUpdate=gt={middle}")[0]
    assert [r["header"]["lastUpdate"] for r in later] == [k[0] for k in keys if k[0] > middle]
    offset = api.walk(INVOICE_PATH, INV_KEY, flt=f"lastUpdate=ge={middle[:-1]}+00:00")[0]
    assert len(offset) == len([k for k in keys if k[0] >= middle])
    companies = api.walk(COMPANY_PATH, ("returnCompanyData",), flt="LASTMODTIME>=2000-01-01T00:00:00.000Z")[0]
    stamps = [(c["returnCompanyInfo"]["lastModTime"], int(c["returnCompanyInfo"]["bravoId"])) for c in companies]
    assert stamps == sorted(stamps)


def test_comp_adds_user_and_sso_blocks(api):
    plain = api.get(COMPANY_PATH, flt="TYPE==SELLER").json()["returnCompanyData"][0]
    assert set(plain) == {"returnCompanyInfo"} and "userEmail" not in plain["returnCompanyInfo"]
    full = api.get(COMPANY_PATH, flt="TYPE==SELLER", comp="USER;SSO_CODE").json()["returnCompanyData"][0]
    assert "returnSubUser" in full and "userEmail" in full["returnCompanyInfo"]
    assert "ssoCodeData" in full["returnCompanyInfo"]


@pytest.mark.parametrize(("flt", "message"), [
    ("lastUpdate=ge=yesterday", "Invalid filter expression: lastUpdate=ge=yesterday"),
    ("nosuchkey==1", "Invalid filter field: nosuchkey"),
    ("poNumber=gt=0000000001", "Invalid filter operator: =gt="),
    ("poNumber=like=1", "Invalid filter operator: =like="),
    ("poNumber==1,poNumber==2", None),
    ("purchaseOrderId==abc", "Invalid filter expression: purchaseOrderId==abc"),
    ("purchaseOrderId=in=()", "Invalid filter expression: purchaseOrderId=in=()"),
    ("(poNumber==1)", "Invalid filter expression: (poNumber==1)"),
    ("poStatus", "Invalid filter expression: poStatus"),
])
def test_bad_filters_are_application_errors_with_zeroed_list_fields(api, flt, message):
    response = api.get(PO_PATH, flt=flt)
    body = response.json()
    if message is None:  # FIQL OR is not supported: the value is literal, so nothing matches
        assert body["returnCode"] == 0 and body["totRecords"] == 0
        return
    assert response.status_code == 200
    assert body == {"returnCode": 2, "returnMessage": message, "totRecords": 0, "returnedRecords": 0, "startAt": 0}


@pytest.mark.parametrize("start", ["0", "-1", "abc", "1.5"])
def test_bad_start_is_an_application_error(api, start):
    body = api.get(INVOICE_PATH, start=start).json()
    assert (body["returnCode"], body["returnMessage"]) == (2, "Invalid parameter: start")


def test_single_records_and_unknown_ids_in_both_not_found_modes(sim, api):
    po = sim.purchase_orders()[5]
    got = api.get(f"{PO_PATH}/{po['header']['purchaseOrderId']}").json()
    assert got == po
    inv = sim.invoices()[3]
    assert api.get(f"{INVOICE_PATH}/{inv['header']['invoiceId']}").json() == inv
    missing = api.get(f"{PO_PATH}/999")
    assert missing.status_code == 200 and missing.json() == {"returnCode": 2, "returnMessage": "Record not found: 999"}
    assert api.get(f"{INVOICE_PATH}/abc").json()["returnMessage"] == "Record not found: abc"


def test_http404_not_found_mode():
    with start_simulator(seed=2, random_seed=1, not_found_mode="http404") as sim:
        api = api_for(sim)
        response = api.get(f"{INVOICE_PATH}/12345")
        assert response.status_code == 404
        assert response.json() == {"returnCode": 2, "returnMessage": "Record not found: 12345"}
        api.close()


def test_unknown_paths_and_methods(sim, api):
    unknown = api.get("/j1p/api/public/ji/v1/nothing")
    assert unknown.status_code == 404 and unknown.json() == {"returnCode": 2, "returnMessage": "Resource not found"}
    method = api.client.delete(PO_PATH)
    assert method.status_code == 405 and method.json()["returnMessage"] == "Method not allowed"
    post = api.post_json(INVOICE_PATH, {})
    assert post.status_code == 405
    assert api.get(f"{COMPANY_PATH}/20002").status_code == 404


def test_returncode_type_knob(fresh):
    api = api_for(fresh)
    fresh.set_knobs(returncode_type="string")
    assert api.get(PO_PATH).json()["returnCode"] == "0"
    assert api.get(PO_PATH, start="x").json()["returnCode"] == "2"
    fresh.set_knobs(returncode_type="mixed")
    codes = [api.get(PO_PATH).json()["returnCode"] for _ in range(4)]
    assert sorted(map(type, codes), key=str) and {type(c) for c in codes} == {int, str}
    assert {str(c) for c in codes} == {"0"}
    fresh.set_knobs(returncode_type="number")
    assert api.get(PO_PATH).json()["returnCode"] == 0
    api.close()


def test_unknown_tenant_and_oversized_body(sim, api):
    assert httpx.get(f"{sim.base_url}/tenants/nobody{PO_PATH}").status_code == 404
    token = httpx.post(f"{sim.base_url}/tenants/nobody/auth/realms/J1p-integrations/protocol/openid-connect/token",
                       data={"grant_type": "client_credentials", "client_id": sim.client_id,
                             "client_secret": sim.client_secret})
    assert token.status_code == 401
    huge = api.client.post(COMPANY_PATH, content=b"x" * 52_428_801, headers={"Content-Type": "application/json"})
    assert huge.status_code == 413 and huge.json()["returnMessage"] == "Request body too large"
