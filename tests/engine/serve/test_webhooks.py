"""The webhook receiver's rules (contract §10): handshake, authentication as the subscription chose,
notifications nudging the pipelines of the entity, duplicates recognised. No network here."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest

from engine.serve.webhooks import (
    Endpoint,
    Receiver,
    WebhookAuth,
    event_collection,
    parse_notifications,
    sign,
    subscription_body,
    verify,
    webhook_id,
)


def notification(ident: str, entity: str = "BusinessPartners", tx: str = "Updated", subject: str = "V10020") -> dict:
    return {"id": ident, "specversion": "1.0", "source": "/default/sap.b1/SBODEMOUS", "type": f"sap.b1.{entity}.{tx}.v1",
            "subject": subject, "time": "2024-05-02T13:42:07.118Z", "datacontenttype": "application/json",
            "data": {"CardCode": subject}}


@pytest.fixture
def setup():
    auth = WebhookAuth.hmac("k3y-for-tests-only")
    nudged: list[list[str]] = []
    counts: list[tuple[str, str]] = []
    receiver = Receiver(count=lambda c, r: counts.append((c, r)))
    receiver.add(Endpoint("acme", auth, {"BusinessPartners": ["suppliers"], "PurchaseOrders": ["purchase_orders"]},
                          nudged.append))
    return auth, receiver, nudged, counts


def test_hmac_signature_is_base64_of_the_raw_body():
    auth = WebhookAuth.hmac("key", "HMACSha512")
    body = b'[{"id":"1"}]'
    expected = base64.b64encode(hmac.new(b"key", body, hashlib.sha512).digest()).decode()
    assert sign(auth, body) == {"X-B1-Webhook-Signature": expected}
    assert verify(auth, {"x-b1-webhook-signature": expected}, body)
    assert not verify(auth, {"X-B1-Webhook-Signature": expected}, body + b" ")
    assert not verify(auth, {}, body)


def test_basic_and_none_authentication():
    basic = WebhookAuth("Basic", username="b1", password="pw-for-tests")
    assert verify(basic, sign(basic, b"x"), b"anything")
    assert not verify(basic, {"Authorization": "Basic Zm9vOmJhcg=="}, b"anything")
    assert verify(WebhookAuth("None"), {}, b"x")


def test_the_handshake_echoes_the_token_when_authenticated(setup):
    auth, receiver, nudged, counts = setup
    token = "7b0e6a0c-2b1f-4f5e-9d8e-0c7c1e2f3a4b"
    status, body = receiver.handle("GET", "/b1-events/acme", {"X-B1-Webhook-Token": token, **sign(auth, token.encode())}, b"")
    assert (status, json.loads(body)) == (200, {"Challenge": token})
    status, _ = receiver.handle("GET", "/b1-events/acme", {"X-B1-Webhook-Token": token}, b"")
    assert status == 401 and counts == [("acme", "rejected")]
    assert receiver.handle("GET", "/b1-events/acme", {}, b"")[0] == 400
    assert receiver.handle("GET", "/b1-events/globex", {"X-B1-Webhook-Token": token}, b"")[0] == 404
    assert nudged == []


def test_a_notification_nudges_the_pipelines_of_its_entity_once_and_a_redelivery_is_dropped(setup):
    auth, receiver, nudged, counts = setup
    body = json.dumps([notification("n1"), notification("n2", subject="V10021"),
                       notification("n3", "PurchaseOrders", "Created", "415"), notification("n4", "Items")]).encode()
    assert receiver.handle("POST", "/b1-events/acme", sign(auth, body), body)[0] == 200
    assert nudged == [["suppliers", "purchase_orders"]]  # a burst: each pipeline once
    assert receiver.handle("POST", "/b1-events/acme", sign(auth, body), body)[0] == 200  # at-least-once delivery
    assert nudged == [["suppliers", "purchase_orders"]]
    assert sorted(r for _, r in counts) == ["accepted"] * 3 + ["duplicate"] * 4 + ["ignored"]


def test_forged_or_malformed_notifications_are_refused(setup):
    auth, receiver, nudged, _ = setup
    body = json.dumps([notification("n1")]).encode()
    assert receiver.handle("POST", "/b1-events/acme", {"X-B1-Webhook-Signature": "AAAA"}, body)[0] == 401
    bad = b'{"not": "a notification"}'
    assert receiver.handle("POST", "/b1-events/acme", sign(auth, bad), bad)[0] == 400
    assert receiver.handle("PUT", "/b1-events/acme", sign(auth, body), body)[0] == 405
    assert nudged == []


def test_parse_notifications():
    assert parse_notifications(json.dumps([notification("x", "PurchaseInvoices", "Cancelled", "9")]).encode()) == [
        {"id": "x", "entity": "PurchaseInvoices", "transaction": "Cancelled", "subject": "9"}]
    with pytest.raises(ValueError):
        parse_notifications(b'[{"type": "something.else"}]')
    with pytest.raises(ValueError):
        parse_notifications(b"not json")


def test_the_subscription_asks_for_every_catalogued_transaction_of_the_entities():
    catalog = [{"BusinessObject": "BusinessPartners", "ObjectType": "2", "TransactionTypes": "Created,Updated,Deleted"},
               {"BusinessObject": "PurchaseOrders", "ObjectType": "22", "TransactionTypes": "Created,Updated,Closed"}]
    events = event_collection(["BusinessPartners", "PurchaseOrders", "PurchaseOrders", "Unknown"], catalog)
    assert [(e["BusinessObject"], e["TransactionType"]) for e in events] == [
        ("BusinessPartners", "Created"), ("BusinessPartners", "Updated"), ("BusinessPartners", "Deleted"),
        ("PurchaseOrders", "Created"), ("PurchaseOrders", "Updated"), ("PurchaseOrders", "Closed")]
    assert len(event_collection(["BusinessPartners"], None)) == 2  # no catalogue: Created and Updated
    body = subscription_body("ml-connector-acme", "http://127.0.0.1:9464/b1-events/acme", WebhookAuth.hmac("kk"), events)
    assert body["AuthenticationType"] == "HMAC" and body["Handshake"] == "tYES"
    assert json.loads(body["AuthenticationCred"]) == {"Key": "kk", "Algorithm": "HMACSha256"}


def test_webhook_ids_are_stable_and_short():
    assert webhook_id("acme") == "ml-connector-acme"
    long = webhook_id("x" * 80)
    assert len(long) <= 50 and long == webhook_id("x" * 80) and long != webhook_id("x" * 79)
