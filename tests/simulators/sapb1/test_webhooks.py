"""Webhooks (§10): subscription, handshake, CloudEvents notifications authenticated per subscription."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator

import pytest

from simulators.http import HttpServer, Request, Response, ServerThread
from simulators.sapb1 import start_simulator

from .conftest import SL, error_of, po_body


class Receiver:
    """A loopback webhook endpoint: answers the handshake, records notifications, can fail on demand."""

    def __init__(self) -> None:
        self.posts: list[tuple[dict[str, str], bytes]] = []
        self.handshakes: list[dict[str, str]] = []
        self.fail_next = 0
        self.wrong_challenge = False
        self.token_requests: list[bytes] = []
        self.event = threading.Event()

    async def handle(self, request: Request) -> Response:
        if request.path == "/token":
            self.token_requests.append(request.body)
            body = json.dumps({"access_token": "tok-123", "token_type": "bearer", "expires_in": 300}).encode()
            return Response(200, [("Content-Type", "application/json")], body)
        if request.method == "GET":
            self.handshakes.append(request.headers)
            token = "nope" if self.wrong_challenge else request.headers.get("x-b1-webhook-token", "")
            return Response(200, [("Content-Type", "application/json")], json.dumps({"Challenge": token}).encode())
        if self.fail_next:
            self.fail_next -= 1
            return Response(503, [], b"busy")
        self.posts.append((request.headers, request.body))
        self.event.set()
        return Response(200, [], b"")

    def events(self) -> list[dict]:
        return [e for _, body in self.posts for e in json.loads(body)]

    def wait_for(self, count: int, timeout: float = 5.0) -> list[dict]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.events()) >= count:
                return self.events()
            time.sleep(0.02)
        return self.events()


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, str]]:
    receiver = Receiver()
    with ServerThread(HttpServer(receiver.handle)) as running:
        yield receiver, running.base_url


@pytest.fixture
def hooked() -> Iterator[SL]:
    with start_simulator(seed="demo", webhook_retry_interval_s=0.05, webhook_batch_window_ms=30) as sim:
        client = SL(sim)
        response = client.post("CompanyService_UpdateAdminInfo", {"AdminInfo": {"EnableWebhook": "tYES"}})
        assert response.status_code == 204
        yield client
        client.close()


def subscription(url: str, **overrides) -> dict:
    body = {
        "WebhookID": "bridge",
        "WebhookURL": url,
        "AuthenticationType": "HMAC",
        "AuthenticationCred": json.dumps({"Key": "s3cr3t-key", "Algorithm": "HMACSha256"}),
        "EventCollection": [{"BusinessObject": "BusinessPartners", "TransactionType": "Updated"},
                            {"BusinessObject": "BusinessPartners", "TransactionType": "Created"},
                            {"BusinessObject": "PurchaseOrders", "TransactionType": "Created",
                             "BizObjProps": "DocNum,CardCode"}],
    }
    body.update(overrides)
    return body


def signature(key: str, payload: bytes) -> str:
    return base64.b64encode(hmac.new(key.encode(), payload, hashlib.sha256).digest()).decode()


def test_subscribe_with_handshake_and_hmac_notifications(hooked, receiver):
    rec, base = receiver
    created = hooked.post("EventSubscriptions", subscription(f"{base}/b1-events"))
    assert created.status_code == 201, created.text
    assert created.headers["location"].endswith("EventSubscriptions('bridge')")
    assert created.json()["State"] == "Active" and created.json()["AuthenticationCred"] is None
    assert len(rec.handshakes) == 1
    token = rec.handshakes[0]["x-b1-webhook-token"]
    assert rec.handshakes[0]["x-b1-webhook-signature"] == signature("s3cr3t-key", token.encode())
    hooked.patch("BusinessPartners('V10001')", {"Phone1": "555"})
    entry = hooked.post("PurchaseOrders", po_body()).json()["DocEntry"]
    events = rec.wait_for(2)
    assert [e["type"] for e in events] == ["sap.b1.BusinessPartners.Updated.v1", "sap.b1.PurchaseOrders.Created.v1"]
    bp_event, po_event = events
    assert bp_event["subject"] == "V10001" and bp_event["data"] == {"CardCode": "V10001"}
    assert bp_event["source"] == "/default/sap.b1/SBODEMOUS" and bp_event["specversion"] == "1.0"
    assert bp_event["time"].endswith("Z") and len(bp_event["time"]) == 24
    assert po_event["data"]["DocEntry"] == str(entry) and po_event["data"]["CardCode"] == "V10000"
    assert isinstance(po_event["data"]["DocNum"], int)
    for headers, body in rec.posts:  # HMAC of the raw body; the handshake token is not sent again
        assert headers["x-b1-webhook-signature"] == signature("s3cr3t-key", body)
        assert "x-b1-webhook-token" not in headers
        assert headers["content-type"] == "application/json"
    # events of a refused write are never sent
    hooked.patch("BusinessPartners('V10001')", {"Nope": 1})
    time.sleep(0.15)
    assert len(rec.events()) == 2


def test_events_are_batched(hooked, receiver):
    rec, base = receiver
    hooked.sim.set_knobs(webhook_batch_window_ms=500)
    assert hooked.post("EventSubscriptions", subscription(f"{base}/hook")).status_code == 201
    for code in ("V10000", "V10001", "V10002"):
        hooked.patch(f"BusinessPartners('{code}')", {"Phone2": "1"})
    events = rec.wait_for(3)
    assert len(events) == 3 and len(rec.posts) == 1


def test_failed_handshake_refuses_the_subscription(hooked, receiver):
    rec, base = receiver
    rec.wrong_challenge = True
    response = hooked.post("EventSubscriptions", subscription(f"{base}/hook"))
    assert response.status_code == 400
    assert hooked.get("EventSubscriptions('bridge')").status_code == 404


def test_url_rules(hooked):
    refused = hooked.post("EventSubscriptions", subscription("http://bridge.example.com/hook"))
    assert error_of(refused) == (-1000, "WebhookURL must be an HTTPS URL")
    bad_creds = hooked.post("EventSubscriptions", subscription("https://bridge.example.com/hook",
                                                               AuthenticationCred="{}", Handshake="tNO"))
    assert error_of(bad_creds) == (-1000, "Property 'AuthenticationCred' of 'EventSubscription' is invalid")
    bad_event = hooked.post("EventSubscriptions", subscription(
        "https://bridge.example.com/hook", Handshake="tNO",
        EventCollection=[{"BusinessObject": "Nope", "TransactionType": "Created"}]))
    assert bad_event.status_code == 400


def test_retry_then_deliver_basic_auth(hooked, receiver):
    rec, base = receiver
    rec.fail_next = 2
    creds = json.dumps({"Username": "b1", "Password": "pw"})
    assert hooked.post("EventSubscriptions", subscription(f"{base}/hook", AuthenticationType="Basic",
                                                          AuthenticationCred=creds)).status_code == 201
    hooked.patch("BusinessPartners('V10002')", {"Phone1": "1"})
    events = rec.wait_for(1)
    assert len(events) == 1
    assert rec.posts[0][0]["authorization"] == "Basic " + base64.b64encode(b"b1:pw").decode()
    assert hooked.get("EventSubscriptions('bridge')").json()["State"] == "Active"


def test_retries_run_out_and_subscription_goes_inactive(hooked, receiver):
    rec, base = receiver
    rec.fail_next = 100
    assert hooked.post("EventSubscriptions", subscription(f"{base}/hook")).status_code == 201
    hooked.patch("BusinessPartners('V10002')", {"Phone1": "2"})
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if hooked.get("EventSubscriptions('bridge')").json()["State"] == "Inactive":
            break
        time.sleep(0.05)
    assert hooked.get("EventSubscriptions('bridge')").json()["State"] == "Inactive"
    assert rec.fail_next == 100 - 4  # one attempt and three retries
    assert hooked.post("EventSubscriptions('bridge')/Resume").status_code == 204


def test_oauth_bearer(hooked, receiver):
    rec, base = receiver
    creds = json.dumps({"token_endpoint": f"{base}/token", "client_id": "cid", "client_secret": "cs",
                        "grant_type": "client_credentials"})
    assert hooked.post("EventSubscriptions", subscription(f"{base}/hook", AuthenticationType="OAuth",
                                                          AuthenticationCred=creds)).status_code == 201
    hooked.patch("BusinessPartners('V10003')", {"Phone1": "3"})
    rec.wait_for(1)
    assert rec.posts[0][0]["authorization"] == "Bearer tok-123"
    assert b"grant_type=client_credentials" in rec.token_requests[0]


def test_nothing_sent_when_webhooks_are_off(receiver):
    rec, base = receiver
    with start_simulator(seed="demo", webhook_batch_window_ms=10) as sim:
        client = SL(sim)
        assert client.post("EventSubscriptions", subscription(f"{base}/hook", Handshake="tNO")).status_code == 201
        client.patch("BusinessPartners('V10000')", {"Phone1": "1"})
        time.sleep(0.2)
        assert rec.posts == []
        sim.set_knobs(webhooks_enabled=True)
        client.patch("BusinessPartners('V10000')", {"Phone1": "2"})
        assert len(rec.wait_for(1)) == 1
        client.close()


def test_catalog_pause_delete_and_v2_only(hooked, receiver, sim):
    rec, base = receiver
    catalog = hooked.get("EventSubscriptionsService_GetEventCatalog").json()["value"]
    assert {"BusinessPartners", "PurchaseOrders", "PurchaseInvoices"} <= {c["BusinessObject"] for c in catalog}
    assert hooked.post("EventSubscriptions", subscription(f"{base}/hook")).status_code == 201
    assert hooked.post("EventSubscriptions('bridge')/Pause").status_code == 204
    hooked.patch("BusinessPartners('V10000')", {"Phone1": "9"})
    time.sleep(0.15)
    assert rec.posts == []
    assert hooked.delete("EventSubscriptions('bridge')").status_code == 204
    v1 = SL(sim, "v1")
    response = v1.get("EventSubscriptions")
    assert response.status_code == 404 and error_of(response)[0] == -1000
    v1.close()


def test_filter_expression_and_biz_props(hooked, receiver):
    rec, base = receiver
    events = [{"BusinessObject": "PurchaseOrders", "TransactionType": "Created", "FilterExpr": "DocTotal > 100",
               "BizObjProps": "DocTotal"}]
    assert hooked.post("EventSubscriptions", subscription(f"{base}/hook", EventCollection=events)).status_code == 201
    small = po_body(lines=[{"ItemCode": "BRK-2210", "Quantity": 1, "UnitPrice": 5}])
    large = po_body(lines=[{"ItemCode": "BRK-2210", "Quantity": 100, "UnitPrice": 5}])
    hooked.post("PurchaseOrders", small)
    entry = hooked.post("PurchaseOrders", large).json()["DocEntry"]
    delivered = rec.wait_for(1)
    time.sleep(0.1)
    assert [e["data"] for e in rec.events()] == [{"DocEntry": str(entry), "DocTotal": 500.0}]
    assert len(delivered) == 1
    bad = [{"BusinessObject": "PurchaseOrders", "TransactionType": "Created", "FilterExpr": "Nope > 1"}]
    response = hooked.post("EventSubscriptions", subscription(f"{base}/other", WebhookID="x", EventCollection=bad))
    assert error_of(response) == (-1000, "Property 'EventCollection' of 'EventSubscription' is invalid")
