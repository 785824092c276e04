"""Rate limit (429), returnCode -998, latency, 5xx, dropped connections and slow answers (§9, §10)."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.simulators.jaggaer.conftest import COMPANY_PATH, INVOICE_PATH, PO_PATH, api_for, get_token


@pytest.fixture
def client(fresh):
    api = api_for(fresh)
    yield api
    api.close()


def test_rate_limit_per_token_with_retry_after(fresh, client):
    fresh.set_knobs(rate_limit=3, retry_after=2)
    statuses = [client.get(PO_PATH) for _ in range(8)]
    limited = [r for r in statuses if r.status_code == 429]
    assert limited and statuses[0].status_code == 200
    assert all(r.headers["retry-after"] == "2" for r in limited)
    # Another token has its own budget.
    other = api_for(fresh)
    assert other.get(PO_PATH).status_code == 200
    other.close()
    time.sleep(0.7)  # the bucket refills at 3/s
    assert client.get(PO_PATH).status_code == 200


def test_rate_limit_without_retry_after(fresh, client):
    fresh.set_knobs(rate_limit=1, retry_after=0)
    responses = [client.get(PO_PATH) for _ in range(4)]
    limited = [r for r in responses if r.status_code == 429]
    assert limited and all("retry-after" not in r.headers for r in limited)
    assert fresh.counters["rate_limited"] == len(limited)


def test_retryable_return_code(fresh, client):
    fresh.set_knobs(retryable_rate=1.0)
    listed = client.get(INVOICE_PATH).json()
    assert listed == {"returnCode": -998, "returnMessage": "Temporary error, please retry",
                      "totRecords": 0, "returnedRecords": 0, "startAt": 0}
    po_id = fresh.purchase_orders()[0]["header"]["purchaseOrderId"]
    single = client.get(f"{PO_PATH}/{po_id}").json()
    assert single == {"returnCode": -998, "returnMessage": "Temporary error, please retry"}
    fresh.set_knobs(retryable_rate=0.0, returncode_type="string")
    assert client.get(f"{PO_PATH}/{po_id}").json()["header"]["purchaseOrderId"] == po_id


def test_server_errors_hit_the_api_not_the_token_endpoint(fresh, client):
    fresh.set_knobs(error_rate=1.0)
    statuses = {client.get(PO_PATH).status_code for _ in range(10)}
    assert statuses <= {500, 502, 503} and statuses
    assert get_token(fresh.token_url, fresh.client_id, fresh.client_secret)
    fresh.set_knobs(error_rate=0.0)
    assert client.get(PO_PATH).status_code == 200


def test_dropped_before_applies_nothing_and_dropped_after_applies(fresh, client):
    supplier = fresh.suppliers()[0]["returnCompanyInfo"]
    body = {"company": {"operationCode": "UPDATE", "sendEMail": "0",
                        "companyInfo": {"bravoId": supplier["bravoId"], "bizPhone": "+1 111"}}}
    fresh.set_knobs(drop_before_rate=1.0)
    with pytest.raises(httpx.TransportError):
        client.post_json(COMPANY_PATH, body)
    fresh.set_knobs(drop_before_rate=0.0)
    assert client.get(COMPANY_PATH, flt=f"BRAVOID=={supplier['bravoId']}").json()[
        "returnCompanyData"][0]["returnCompanyInfo"]["bizPhone"] == supplier["bizPhone"]
    fresh.set_knobs(drop_after_rate=1.0)
    with pytest.raises(httpx.TransportError):
        client.post_json(COMPANY_PATH, body)
    fresh.set_knobs(drop_after_rate=0.0)
    assert client.get(COMPANY_PATH, flt=f"BRAVOID=={supplier['bravoId']}").json()[
        "returnCompanyData"][0]["returnCompanyInfo"]["bizPhone"] == "+1 111"
    counters = fresh.counters
    assert counters["faults_dropped_before"] == 1 and counters["faults_dropped_after"] == 1


def test_slow_answers_and_latency(fresh):
    token = get_token(fresh.token_url, fresh.client_id, fresh.client_secret)
    headers = {"Authorization": f"Bearer {token}"}
    fresh.set_knobs(slow_rate=1.0, slow_seconds=2)
    with pytest.raises(httpx.ReadTimeout):
        httpx.get(fresh.base_url + PO_PATH, headers=headers, timeout=0.3)
    fresh.set_knobs(slow_rate=0.0, latency_ms=150)
    started = time.perf_counter()
    assert httpx.get(fresh.base_url + PO_PATH, headers=headers).status_code == 200
    assert time.perf_counter() - started >= 0.15
    fresh.set_knobs(latency_ms=0, token_latency_ms=150)
    started = time.perf_counter()
    get_token(fresh.token_url, fresh.client_id, fresh.client_secret)
    assert time.perf_counter() - started >= 0.15


def test_bad_knob_values_are_refused(fresh):
    with pytest.raises(ValueError):
        fresh.set_knobs(returncode_type="float")
    with pytest.raises(ValueError):
        fresh.set_knobs(error_rate=2)
    with pytest.raises(TypeError):
        fresh.set_knobs(no_such_knob=1)
