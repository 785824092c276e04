"""SAP B1 webhooks (Service Layer FP 2602+, `/b1s/v2` only): subscribe, receive, nudge a customer's runs.

    auth = WebhookAuth.hmac(key)                                   # what the subscription authenticates with
    body = subscription_body("ml-connector-acme", url, auth, {"BusinessPartners": ["Created", "Updated"]})
    await subscribe(client, body)                                  # EventSubscriptions (re)created; B1 handshakes
    receiver.handle("POST", "/b1-events/acme", headers, raw)       # -> (200, b"...") and the customer's pipelines due

`serve --webhooks` creates, per customer, one `EventSubscriptions` entry pointing at its own path on
the loopback receiver, for every transaction type of the entity sets its pipelines read or write. The
receiver answers the handshake (`X-B1-Webhook-Token` echoed as `{"Challenge": ...}`), checks every
request's authentication as the subscription chose (HMAC of the raw body, or of the token for the
handshake; Basic; None), and on a notification for an entity set marks the pipelines that read or write
it due. A burst marks them once; a duplicate (delivery is at least once) is dropped by its id and would
be harmless anyway, since runs are idempotent. Polling stays: a notification that never arrives is
caught by the next scheduled run. Our own writes also come back as notifications; they cost at most one
early run that finds nothing to do.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import re
import secrets as random_secrets
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

SUBSCRIPTIONS = "EventSubscriptions"
CATALOG = "EventSubscriptionsService_GetEventCatalog"
PATH_PREFIX = "/b1-events/"
MAX_BODY = 16 * 1024 * 1024  # MessageBatchLimit 1024 notifications is far below this
_HMAC = {"HMACSha256": hashlib.sha256, "HMACSha384": hashlib.sha384, "HMACSha512": hashlib.sha512}
_TYPE = re.compile(r"^sap\.b1\.(?P<entity>[^.]+)\.(?P<transaction>[^.]+)\.v\d+$")
DEFAULT_TRANSACTIONS = ("Created", "Updated")


@dataclass(frozen=True)
class WebhookAuth:
    """How the subscription authenticates to the receiver (SL §10.3)."""

    type: str = "HMAC"  # HMAC | Basic | None
    key: str = ""
    algorithm: str = "HMACSha256"
    username: str = ""
    password: str = ""

    @staticmethod
    def hmac(key: str | None = None, algorithm: str = "HMACSha256") -> WebhookAuth:
        """HMAC with `key` (a fresh random one when None)."""
        if algorithm not in _HMAC:
            raise ValueError(f"HMAC algorithm must be one of {', '.join(_HMAC)}")
        return WebhookAuth("HMAC", key or random_secrets.token_urlsafe(32), algorithm)

    def credential(self) -> str | None:
        """`AuthenticationCred` (a JSON string) for the subscription."""
        if self.type == "HMAC":
            return json.dumps({"Key": self.key, "Algorithm": self.algorithm})
        if self.type == "Basic":
            return json.dumps({"Username": self.username, "Password": self.password})
        return None

    def secret_values(self) -> list[str]:
        return [v for v in (self.key, self.password) if v]


def _header(headers: Mapping[str, str], name: str) -> str | None:
    wanted = name.lower()
    return next((v for k, v in headers.items() if k.lower() == wanted), None)


def verify(auth: WebhookAuth, headers: Mapping[str, str], signed: bytes) -> bool:
    """Does the request carry the subscription's authentication? `signed`: the raw body of a notification,
    or the token of a handshake. Constant-time comparisons."""
    if auth.type == "None":
        return True
    if auth.type == "HMAC":
        sent = _header(headers, "X-B1-Webhook-Signature") or ""
        digest = base64.b64encode(hmac.new(auth.key.encode(), signed, _HMAC[auth.algorithm]).digest()).decode()
        return hmac.compare_digest(sent.strip().encode(), digest.encode())
    if auth.type == "Basic":
        sent = _header(headers, "Authorization") or ""
        expected = "Basic " + base64.b64encode(f"{auth.username}:{auth.password}".encode()).decode()
        return hmac.compare_digest(sent.strip().encode(), expected.encode())
    return False


def sign(auth: WebhookAuth, payload: bytes) -> dict[str, str]:
    """The headers B1 sends with `payload` (for tests and tools that replay a notification)."""
    if auth.type == "HMAC":
        digest = hmac.new(auth.key.encode(), payload, _HMAC[auth.algorithm]).digest()
        return {"X-B1-Webhook-Signature": base64.b64encode(digest).decode()}
    if auth.type == "Basic":
        return {"Authorization": "Basic " + base64.b64encode(f"{auth.username}:{auth.password}".encode()).decode()}
    return {}


def webhook_id(customer: str) -> str:
    """The subscription's `WebhookID` for a customer (stable across restarts, at most 50 characters)."""
    name = f"ml-connector-{customer}"
    if len(name) <= 50:
        return name
    return name[:41] + "-" + hashlib.sha256(customer.encode()).hexdigest()[:8]


def event_collection(entities: Iterable[str], catalog: list[dict[str, Any]] | None) -> list[dict[str, str]]:
    """`EventCollection` for the entity sets: every transaction type the catalogue lists for each (those
    it does not list are left out); without a catalogue, Created and Updated."""
    types = {c.get("BusinessObject"): str(c.get("TransactionTypes") or "").split(",") for c in catalog or []}
    out = []
    for entity in dict.fromkeys(entities):
        wanted = types.get(entity) if catalog is not None else list(DEFAULT_TRANSACTIONS)
        out += [{"BusinessObject": entity, "TransactionType": t.strip()} for t in wanted or [] if t.strip()]
    return out


def subscription_body(webhook: str, url: str, auth: WebhookAuth, events: list[dict[str, str]],
                      *, verify_certificate: bool = True) -> dict[str, Any]:
    body: dict[str, Any] = {
        "WebhookID": webhook, "WebhookURL": url, "AuthenticationType": auth.type,
        "VerifyCertificate": "tYES" if verify_certificate else "tNO", "Handshake": "tYES",
        "EventCollection": events,
    }
    if auth.credential() is not None:
        body["AuthenticationCred"] = auth.credential()
    return body


async def subscribe(client: Any, entities: Iterable[str], webhook: str, url: str, auth: WebhookAuth,
                    *, verify_certificate: bool = True) -> dict[str, Any]:
    """(Re)create the subscription on the Service Layer (`client`: an `engine.sapb1.SapB1Client` on
    /b1s/v2): the catalogue says which transaction types exist; an entry left by an earlier serve is
    deleted first (its key is gone). B1 handshakes with the receiver before it answers. Returns
    {"events": [...], "webhooks_enabled": bool or None}."""
    from engine.sapb1.errors import ServiceLayerError

    try:
        catalog = (await client.get(CATALOG)).get("value")
    except ServiceLayerError:
        catalog = None
    events = event_collection(entities, catalog)
    if not events:
        raise ValueError("no entity set of these pipelines is in SAP B1's event catalogue")
    enabled = None
    with contextlib.suppress(ServiceLayerError):
        enabled = (await client.get("CompanyService_GetAdminInfo")).get("EnableWebhook") == "tYES"
    await unsubscribe(client, webhook)
    await client.create(SUBSCRIPTIONS, subscription_body(webhook, url, auth, events, verify_certificate=verify_certificate))
    return {"events": events, "webhooks_enabled": enabled}


async def unsubscribe(client: Any, webhook: str) -> bool:
    """Delete the subscription; False when there was none."""
    from engine.sapb1.errors import ServiceLayerError

    try:
        await client.request("DELETE", f"{SUBSCRIPTIONS}('{webhook}')")
        return True
    except ServiceLayerError as exc:
        if exc.status == 404:
            return False
        raise


def parse_notifications(payload: bytes) -> list[dict[str, str]]:
    """The notifications of a POST body (a JSON array, §10.3) as {id, entity, transaction, subject};
    raises ValueError when the body is not such an array."""
    data = json.loads(payload)
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list):
        raise ValueError("expected a JSON array of notifications")
    out = []
    for item in data:
        if not isinstance(item, dict):
            raise ValueError("a notification is not an object")
        match = _TYPE.match(str(item.get("type") or ""))
        if match is None:
            raise ValueError(f"unknown notification type {item.get('type')!r}")
        out.append({"id": str(item.get("id") or ""), "entity": match["entity"], "transaction": match["transaction"],
                    "subject": str(item.get("subject") or "")})
    return out


class Deduper:
    """Remembers the last `size` notification ids: a redelivery is recognised and dropped."""

    def __init__(self, size: int = 10_000) -> None:
        self.size = size
        self.seen: OrderedDict[str, None] = OrderedDict()

    def fresh(self, ident: str) -> bool:
        if not ident:
            return True
        if ident in self.seen:
            self.seen.move_to_end(ident)
            return False
        self.seen[ident] = None
        while len(self.seen) > self.size:
            self.seen.popitem(last=False)
        return True


@dataclass
class Endpoint:
    """One customer's receiving end: its authentication and what a notification about an entity nudges."""

    customer: str
    auth: WebhookAuth
    entities: dict[str, list[str]]  # entity set -> pipelines
    nudge: Callable[[list[str]], Any]  # marks pipelines due


class Receiver:
    """The HTTP side: `handle(method, path, headers, body)` -> (status, JSON body). Thread-safe enough for
    a threading server: the deduper is per customer and touched under the GIL in one call."""

    def __init__(self, count: Callable[[str, str], None] | None = None,
                 log: Callable[..., None] | None = None) -> None:
        self.endpoints: dict[str, Endpoint] = {}
        self.dedupers: dict[str, Deduper] = {}
        self.count = count or (lambda _customer, _result: None)
        self.log = log or (lambda *_a, **_k: None)

    def add(self, endpoint: Endpoint) -> None:
        self.endpoints[endpoint.customer] = endpoint
        self.dedupers[endpoint.customer] = Deduper()

    def handle(self, method: str, path: str, headers: Mapping[str, str], body: bytes) -> tuple[int, bytes]:
        customer = path[len(PATH_PREFIX):].strip("/")
        endpoint = self.endpoints.get(customer)
        if endpoint is None:
            return 404, b'{"error": "no such webhook"}'
        if method == "GET":  # the handshake: echo the token, authenticated over the token itself
            token = _header(headers, "X-B1-Webhook-Token")
            if not token:
                return 400, b'{"error": "no X-B1-Webhook-Token"}'
            if not verify(endpoint.auth, headers, token.encode()):
                self.count(customer, "rejected")
                self.log("webhook_rejected", customer=customer, reason="handshake authentication")
                return 401, b'{"error": "authentication failed"}'
            self.log("webhook_handshake", customer=customer)
            return 200, json.dumps({"Challenge": token}).encode()
        if method != "POST":
            return 405, b'{"error": "method not allowed"}'
        if not verify(endpoint.auth, headers, body):
            self.count(customer, "rejected")
            self.log("webhook_rejected", customer=customer, reason="notification authentication")
            return 401, b'{"error": "authentication failed"}'
        try:
            notes = parse_notifications(body)
        except ValueError as exc:
            self.count(customer, "invalid")
            self.log("webhook_invalid", customer=customer, reason=str(exc))
            return 400, json.dumps({"error": str(exc)}).encode()
        nudged: dict[str, None] = {}
        deduper = self.dedupers[customer]
        for note in notes:
            if not deduper.fresh(note["id"]):
                self.count(customer, "duplicate")
                continue
            pipelines = endpoint.entities.get(note["entity"])
            if not pipelines:
                self.count(customer, "ignored")
                continue
            self.count(customer, "accepted")
            nudged.update(dict.fromkeys(pipelines))
        if nudged:
            endpoint.nudge(list(nudged))
        self.log("webhook", customer=customer, notifications=len(notes), pipelines=list(nudged),
                 entities=sorted({n["entity"] for n in notes}))
        return 200, json.dumps({"accepted": len(notes)}).encode()
