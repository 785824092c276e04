"""Company-profile read by filter and the UPDATE/CREATE POST with partial semantics (§6)."""

from __future__ import annotations

import pytest

from tests.simulators.jaggaer.conftest import COMPANY_PATH, api_for


def _read(api, bravo_id) -> dict:
    body = api.get(COMPANY_PATH, flt=f"BRAVOID=={bravo_id}").json()
    assert body["totRecords"] == 1
    return body["returnCompanyData"][0]["returnCompanyInfo"]


def _update(api, info: dict, operation: str = "UPDATE"):
    return api.post_json(COMPANY_PATH, {"company": {"operationCode": operation, "sendEMail": "0", "companyInfo": info}})


@pytest.fixture
def client(fresh):
    api = api_for(fresh)
    yield api
    api.close()


def test_update_round_trip_changes_only_the_fields_sent(fresh, client):
    bravo_id = fresh.suppliers()[0]["returnCompanyInfo"]["bravoId"]
    before = _read(client, bravo_id)
    fresh.clock.advance(5)
    answer = _update(client, {"bravoId": bravo_id, "bizEmail": "ap@changed.example", "standardPaymentTermsCode": "Net 45",
                              "city": None})
    assert answer.status_code == 200
    assert answer.json() == {"returnCode": 0, "returnMessage": "OK", "bravoId": int(bravo_id)}
    after = _read(client, bravo_id)
    assert after["bizEmail"] == "ap@changed.example" and after["standardPaymentTermsCode"] == "Net 45"
    untouched = {k: v for k, v in before.items() if k not in ("bizEmail", "standardPaymentTermsCode", "lastModTime")}
    assert {k: after[k] for k in untouched} == untouched
    assert after["lastModTime"] > before["lastModTime"]
    # The same update again changes nothing and leaves the stamp alone (safe to retry).
    again = _update(client, {"bravoId": bravo_id, "bizEmail": "ap@changed.example"}).json()
    assert again["returnCode"] == 0 and _read(client, bravo_id)["lastModTime"] == after["lastModTime"]
    # "" clears a field; read-only fields are ignored.
    _update(client, {"bravoId": bravo_id, "webSite": "", "type": "BUYER", "lastModTime": "2000-01-01T00:00:00.000Z"})
    cleared = _read(client, bravo_id)
    assert cleared["webSite"] == "" and cleared["type"] == "SELLER" and cleared["lastModTime"] >= after["lastModTime"]
    # The change is visible through the incremental filter.
    changed = client.get(COMPANY_PATH, flt=f"LASTMODTIME=gt={before['lastModTime']}").json()["returnCompanyData"]
    assert bravo_id in [c["returnCompanyInfo"]["bravoId"] for c in changed]


def test_extcode_write_back_is_visible_on_new_orders_only(fresh, client):
    supplier = fresh.suppliers()[1]["returnCompanyInfo"]
    _update(client, {"bravoId": supplier["bravoId"], "extCode": "C20417"})
    po = fresh.create_purchase_order(supplier_id=int(supplier["bravoId"]))
    assert po["header"]["supplier"]["supplierNumber"] == "C20417"
    assert po["header"]["supplier"]["id"] == int(supplier["bravoId"])


def test_unknown_fields_are_ignored_with_a_warning(fresh, client):
    bravo_id = fresh.suppliers()[0]["returnCompanyInfo"]["bravoId"]
    body = _update(client, {"bravoId": bravo_id, "bizPhone": "+1 555 0100", "iban": "X", "colour": "red"}).json()
    assert body == {"returnCode": 1, "returnMessage": "Ignored unknown fields: iban, colour", "bravoId": int(bravo_id)}
    assert _read(client, bravo_id)["bizPhone"] == "+1 555 0100"


@pytest.mark.parametrize(("field", "value"), [
    ("isoCountry", "usa"), ("currency", "US"), ("bizEmail", "no-at-sign"), ("standardPaymentTermsCode", "Net 999"),
    ("companyName", ""), ("zip", 43604),
])
def test_invalid_values_change_nothing(fresh, client, field, value):
    bravo_id = fresh.suppliers()[0]["returnCompanyInfo"]["bravoId"]
    before = _read(client, bravo_id)
    body = _update(client, {"bravoId": bravo_id, "bizFax": "+1 000", field: value}).json()
    assert body == {"returnCode": 2, "returnMessage": f"Invalid value for field {field}"}
    assert _read(client, bravo_id) == before


def test_update_errors(fresh, client):
    assert _update(client, {"bizEmail": "a@b.example"}).json() == {"returnCode": 2, "returnMessage": "Missing mandatory field: bravoId"}
    assert _update(client, {"bravoId": "999"}).json() == {"returnCode": 2, "returnMessage": "Company not found: 999"}
    assert _update(client, {"bravoId": "20002"}, "UPDATE_RESET").json() == {
        "returnCode": 2, "returnMessage": "Unsupported operationCode: UPDATE_RESET"}
    bad_json = client.client.post(COMPANY_PATH, content=b"{not json", headers={"Content-Type": "application/json"})
    assert bad_json.status_code == 400
    assert bad_json.json() == {"returnCode": 2, "returnMessage": "Malformed JSON request body"}
    wrong_type = client.client.post(COMPANY_PATH, content=b"company=x", headers={"Content-Type": "text/plain"})
    assert wrong_type.status_code == 415
    assert wrong_type.json() == {"returnCode": 2, "returnMessage": "Unsupported content type"}


def test_create_a_seller(fresh, client):
    body = _update(client, {"companyName": "Fresh Supplier LLC", "extCode": "V99990", "isoCountry": "US"}, "CREATE").json()
    assert body["returnCode"] == 0 and isinstance(body["bravoId"], int)
    created = _read(client, body["bravoId"])
    assert created["companyName"] == "Fresh Supplier LLC" and created["type"] == "SELLER"
    missing = _update(client, {"extCode": "V1"}, "CREATE").json()
    assert missing == {"returnCode": 2, "returnMessage": "Missing mandatory field: companyName"}
    upsert = _update(client, {"bravoId": str(body["bravoId"]), "zip": "10001"}, "CREATEUPDATE").json()
    assert upsert["bravoId"] == body["bravoId"] and _read(client, body["bravoId"])["zip"] == "10001"
