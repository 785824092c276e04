"""Webhooks (FP 2602+, contract §10): `EventSubscriptions`, the handshake and CloudEvents delivery.

Events are queued by committed transactions (`Store.emit`), matched against active subscriptions,
batched per subscription for a short window and POSTed as a JSON array, authenticated as the
subscription chose (None, Basic, HMAC signature of the raw body, OAuth client-credentials bearer).
Failed deliveries are retried `webhook_retry_times` times, `webhook_retry_interval_s` apart.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
import hmac
import ipaddress
import json
import re
import time
import uuid
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx

from simulators.http import Response
from simulators.sapb1 import errors as E
from simulators.sapb1.entities import ENTITY_SETS, EntitySet, parse_key
from simulators.sapb1.errors import SLError
from simulators.sapb1.odata import compile_filter

if TYPE_CHECKING:
    from simulators.sapb1.app import Call, ServiceLayerApp

TRANSACTION_TYPES = "Created,Updated,Deleted,Closed,Cancelled,Reopened"
CATALOG = [
    {"BusinessObject": "BusinessPartners", "ObjectType": "2", "TransactionTypes": "Created,Updated,Deleted"},
    {"BusinessObject": "PurchaseOrders", "ObjectType": "22", "TransactionTypes": TRANSACTION_TYPES},
    {"BusinessObject": "PurchaseDeliveryNotes", "ObjectType": "20", "TransactionTypes": TRANSACTION_TYPES},
    {"BusinessObject": "PurchaseInvoices", "ObjectType": "18", "TransactionTypes": TRANSACTION_TYPES},
    {"BusinessObject": "Items", "ObjectType": "4", "TransactionTypes": "Created,Updated,Deleted"},
]
_CATALOG_TYPES = {c["BusinessObject"]: set(c["TransactionTypes"].split(",")) for c in CATALOG}
_HMAC_ALGOS = {"HMACSha256": hashlib.sha256, "HMACSha384": hashlib.sha384, "HMACSha512": hashlib.sha512}
MAX_SUBSCRIPTIONS = 16
SUBSCRIPTIONS = "EventSubscriptions"


_FILTER_PARTS = re.compile(r"""('(?:[^']|'')*'|"[^"]*")""")
_FILTER_OPS = [(re.compile(p), r) for p, r in (
    (r">=", " ge "), (r"<=", " le "), (r"<>|!=", " ne "), (r"==|=", " eq "), (r">", " gt "), (r"<", " lt "),
    (r"&&|\bAND\b", " and "), (r"\|\||\bOR\b", " or "), (r"!(?!=)|\bNOT\b", " not "))]


def filter_to_odata(expression: str) -> str:
    """`DocTotal > 1000 && CardCode == "V1"` -> `DocTotal gt 1000 and CardCode eq 'V1'`."""
    out = []
    for index, part in enumerate(_FILTER_PARTS.split(expression)):
        if index % 2:  # a string literal
            out.append("'" + part[1:-1].replace("'", "''") + "'" if part.startswith('"') else part)
            continue
        for pattern, replacement in _FILTER_OPS:
            part = pattern.sub(replacement, part)
        out.append(part)
    return "".join(out)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class Webhooks:
    def __init__(self, app: ServiceLayerApp) -> None:
        self.app = app
        self.pending: dict[str, list[dict[str, Any]]] = {}
        self.flushing: set[str] = set()
        self.tokens: dict[str, tuple[str, float]] = {}
        self.counters = {"posts": 0, "delivered": 0, "failed_attempts": 0, "dropped": 0, "handshakes": 0}

    @property
    def store(self):
        return self.app.store

    def enabled(self) -> bool:
        return bool(self.app.knobs.webhooks_enabled) or self.store.settings.get("EnableWebhook") == "tYES"

    def credentials(self, webhook_id: str) -> dict[str, Any]:
        return self.store.settings.get("webhook_creds", {}).get(webhook_id, {})

    # -- company service and catalogue ----------------------------------------------------------

    def service_call(self, call: Call, name: str) -> Response:
        if name == "EventSubscriptionsService_GetEventCatalog" and call.v2 and call.method in ("GET", "POST"):
            body = {"@odata.context": f"{call.root}/$metadata#Collection(SAPB1.EventCatalog)", "value": CATALOG}
            return Response(200, self.app.json_headers(True), json.dumps(body).encode())
        if name == "CompanyService_UpdateAdminInfo" and call.method in ("POST", "PATCH"):
            info = self.app.json_body(call).get("AdminInfo")
            if not isinstance(info, dict):
                raise E.invalid_property("AdminInfo", "CompanyService_UpdateAdminInfo")
            with self.store.transaction():
                for key in ("EnableWebhook",):
                    if key in info:
                        if info[key] not in ("tYES", "tNO"):
                            raise E.invalid_property(key, "AdminInfo")
                        self.store.set_setting(key, info[key])
            return Response(204, self.app.base_headers(call.v2))
        if name == "CompanyService_GetAdminInfo" and call.method in ("GET", "POST"):
            body = {self.app.context_key(call.v2): f"{call.root}/$metadata#AdminInfo",
                    "EnableWebhook": self.store.settings.get("EnableWebhook", "tNO"), "LocalCurrency": "USD",
                    "CompanyName": self.app.config.company}
            return Response(200, self.app.json_headers(call.v2), json.dumps(body).encode())
        raise E.segment_not_found(name)

    # -- subscriptions ----------------------------------------------------------------------

    async def subscription_request(self, call: Call) -> Response:
        """POST on `EventSubscriptions` (create) or on a bound action (`/Pause`, `/Handshake`, ...)."""
        from simulators.sapb1.app import split_resource

        name, key_text, rest = split_resource(call.resource)
        if name != SUBSCRIPTIONS:
            return self.app.dispatch(call)
        eset = ENTITY_SETS[SUBSCRIPTIONS]
        if key_text is None and not rest:
            return await self.create(call, eset)
        if key_text is None:
            raise E.segment_not_found(rest or name)
        from urllib.parse import unquote

        key = parse_key(eset, self.app.schema, unquote(key_text))
        record = self.store.get(SUBSCRIPTIONS, key)
        if record is None:
            raise E.not_found()
        if rest in ("Handshake", "Resume"):
            if rest == "Handshake" or record.get("Handshake") == "tYES":
                await self.handshake(record)
            self._set_state(key, "Active")
        elif rest == "Pause":
            self._set_state(key, "Inactive")
        elif rest == "Replay":
            self._set_state(key, "Active")
        else:
            raise E.segment_not_found(rest or "")
        return Response(204, self.app.base_headers(True))

    async def create(self, call: Call, eset: EntitySet) -> Response:
        body = self.app.json_body(call)
        sent = self.app.rules.coerce("EventSubscription", body)
        record = self.app.rules.new_record("EventSubscription")
        record.update({k: v for k, v in sent.items() if k != "EventCollection"})
        record["EventCollection"] = [self.app.rules.fill_member("EventSubscriptionEvent", m)
                                     for m in sent.get("EventCollection", [])]
        creds = self._validate(record)
        record["AuthenticationCred"] = None  # never read back
        if record["Handshake"] == "tYES":
            await self.handshake(record, creds)
        with self.store.transaction():
            if self.store.get(SUBSCRIPTIONS, (record["WebhookID"],)) is not None:
                raise E.duplicate()
            all_creds = dict(self.store.settings.get("webhook_creds", {}))
            all_creds[record["WebhookID"]] = creds
            self.store.set_setting("webhook_creds", all_creds)
            self.store.put(SUBSCRIPTIONS, (record["WebhookID"],), record)
            self.store.count_write(SUBSCRIPTIONS, "POST")
        return self.app.created(call, eset, (record["WebhookID"],), record)

    def _validate(self, record: dict[str, Any], creds_text: str | None = None) -> dict[str, Any]:
        if not record.get("WebhookID"):
            raise E.invalid_property("WebhookID", "EventSubscription")
        url = record.get("WebhookURL")
        if not url:
            raise E.invalid_property("WebhookURL", "EventSubscription")
        parts = urlsplit(url)
        if parts.scheme != "https" and not (parts.scheme == "http" and _is_loopback(parts.hostname or "")):
            raise SLError(400, -1000, "WebhookURL must be an HTTPS URL")
        subs = self.store.all(SUBSCRIPTIONS)
        if any(s["WebhookURL"] == url and s["WebhookID"] != record["WebhookID"] for s in subs):
            raise E.duplicate()
        if len(subs) >= MAX_SUBSCRIPTIONS and self.store.get(SUBSCRIPTIONS, (record["WebhookID"],)) is None:
            raise SLError(400, -1000, f"The number of webhooks exceeds the maximum ({MAX_SUBSCRIPTIONS})")
        events = record.get("EventCollection") or []
        if not events:
            raise E.invalid_property("EventCollection", "EventSubscription")
        for event in events:
            allowed = _CATALOG_TYPES.get(event.get("BusinessObject") or "")
            if allowed is None or event.get("TransactionType") not in allowed:
                raise E.invalid_property("EventCollection", "EventSubscription")
            resolve = self.app.resolver(ENTITY_SETS[event["BusinessObject"]])
            try:
                for name in filter(None, (p.strip() for p in (event.get("BizObjProps") or "").split(","))):
                    if resolve(name).kind in ("coll", "complex"):
                        raise E.invalid_property(name, "EventSubscription")
                if event.get("FilterExpr"):
                    compile_filter(filter_to_odata(event["FilterExpr"]), resolve)
            except SLError:
                raise E.invalid_property("EventCollection", "EventSubscription") from None
        text = record.get("AuthenticationCred") if creds_text is None else creds_text
        auth = record.get("AuthenticationType") or "HMAC"
        if auth == "None":
            return {}
        try:
            creds = json.loads(text or "")
        except ValueError:
            creds = None
        need = {"Basic": ("Username", "Password"), "HMAC": ("Key", "Algorithm"),
                "OAuth": ("token_endpoint", "client_id", "client_secret")}[auth]
        if not isinstance(creds, dict) or not all(isinstance(creds.get(k), str) for k in need):
            raise E.invalid_property("AuthenticationCred", "EventSubscription")
        if auth == "HMAC" and creds["Algorithm"] not in _HMAC_ALGOS:
            raise E.invalid_property("AuthenticationCred", "EventSubscription")
        return creds

    def subscription_entity(self, call: Call, eset: EntitySet, key: tuple, rest: str | None,
                            if_match: str | None) -> Response:
        current = self.store.get(SUBSCRIPTIONS, key)
        if current is None:
            raise E.not_found()
        if call.method == "DELETE" and not rest:
            with self.store.transaction():
                self.store.delete(SUBSCRIPTIONS, key)
                self.store.count_write(SUBSCRIPTIONS, "DELETE")
            self.pending.pop(key[0], None)
            return Response(204, self.app.base_headers(True))
        if call.method == "PATCH" and not rest:
            sent = self.app.rules.coerce("EventSubscription", self.app.json_body(call))
            record = self.store.mutable(current)
            replace = call.headers.get("b1s-replacecollectionsonpatch", "").lower() == "true"
            for name, value in sent.items():
                if name == "EventCollection":
                    members = [self.app.rules.fill_member("EventSubscriptionEvent", m) for m in value]
                    record[name] = members if replace else record[name] + members
                elif name != "AuthenticationCred":
                    record[name] = value
            creds_text = sent.get("AuthenticationCred")
            if creds_text is None and record.get("AuthenticationType") != current.get("AuthenticationType"):
                creds_text = ""
            creds = self._validate(record, json.dumps(self.credentials(key[0])) if creds_text is None else creds_text)
            with self.store.transaction():
                all_creds = dict(self.store.settings.get("webhook_creds", {}))
                all_creds[key[0]] = creds
                self.store.set_setting("webhook_creds", all_creds)
                self.store.put(SUBSCRIPTIONS, key, record)
                self.store.count_write(SUBSCRIPTIONS, "PATCH")
            return Response(204, self.app.base_headers(True))
        raise SLError(405, -1000, f"Method '{call.method}' is not allowed on '{SUBSCRIPTIONS}'")

    def _set_state(self, key: tuple, state: str) -> None:
        current = self.store.get(SUBSCRIPTIONS, key)
        if current is None or current["State"] == state:
            return
        record = dict(current)
        record["State"] = state
        with self.store.transaction():
            self.store.put(SUBSCRIPTIONS, key, record)

    # -- outbound HTTP ------------------------------------------------------------------------

    async def auth_headers(self, record: dict[str, Any], payload: bytes, creds: dict[str, Any] | None = None,
                           client: httpx.AsyncClient | None = None) -> dict[str, str]:
        creds = self.credentials(record["WebhookID"]) if creds is None else creds
        auth = record.get("AuthenticationType") or "HMAC"
        if auth == "Basic":
            raw = f"{creds['Username']}:{creds['Password']}".encode()
            return {"Authorization": "Basic " + base64.b64encode(raw).decode()}
        if auth == "HMAC":
            digest = hmac.new(creds["Key"].encode(), payload, _HMAC_ALGOS[creds["Algorithm"]]).digest()
            return {"X-B1-Webhook-Signature": base64.b64encode(digest).decode()}
        if auth == "OAuth":
            return {"Authorization": "Bearer " + await self.oauth_token(record["WebhookID"], creds, client)}
        return {}

    async def oauth_token(self, webhook_id: str, creds: dict[str, Any], client: httpx.AsyncClient | None) -> str:
        cached = self.tokens.get(webhook_id)
        if cached and cached[1] > time.monotonic():
            return cached[0]
        data = {"grant_type": creds.get("grant_type") or "client_credentials", "client_id": creds["client_id"],
                "client_secret": creds["client_secret"]}
        async with httpx.AsyncClient(timeout=self.app.knobs.webhook_timeout_s) as own:
            answer = await (client or own).post(creds["token_endpoint"], data=data)
        answer.raise_for_status()
        token = answer.json()
        self.tokens[webhook_id] = (token["access_token"], time.monotonic() + float(token.get("expires_in", 300)) - 5)
        return token["access_token"]

    async def handshake(self, record: dict[str, Any], creds: dict[str, Any] | None = None) -> None:
        token = str(uuid.uuid4())
        verify = record.get("VerifyCertificate") != "tNO"
        try:
            async with httpx.AsyncClient(timeout=self.app.knobs.webhook_timeout_s, verify=verify) as client:
                headers = {"X-B1-Webhook-Token": token}
                headers.update(await self.auth_headers(record, token.encode(), creds, client))
                answer = await client.get(record["WebhookURL"], headers=headers)
            self.counters["handshakes"] += 1
            ok = answer.status_code == 200 and answer.json().get("Challenge") == token
        except (httpx.HTTPError, ValueError, AttributeError, KeyError):
            ok = False
        if not ok:
            raise SLError(400, -1000, "Webhook handshake failed: the endpoint did not return the challenge token")

    # -- events -------------------------------------------------------------------------------

    def on_events(self, events: list[dict[str, Any]]) -> None:
        if not self.enabled():
            return
        subs = [s for s in self.store.all(SUBSCRIPTIONS) if s["State"] != "Inactive"]
        if not subs:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        for sub in subs:
            for event in events:
                match = next((e for e in sub["EventCollection"] if e["BusinessObject"] == event["set"]
                              and e["TransactionType"] == event["type"] and self.passes(e, event)), None)
                if match is not None:
                    self.pending.setdefault(sub["WebhookID"], []).append(self.notification(event, match))
            if self.pending.get(sub["WebhookID"]) and sub["WebhookID"] not in self.flushing:
                self.flushing.add(sub["WebhookID"])
                loop.call_later(self.app.knobs.webhook_batch_window_ms / 1000,
                                lambda wid=sub["WebhookID"]: asyncio.ensure_future(self.flush(wid)))

    def passes(self, subscribed: dict[str, Any], event: dict[str, Any]) -> bool:
        """`FilterExpr` (FP 2608), e.g. `DocTotal > 1000`, on the record after the change."""
        expression = subscribed.get("FilterExpr")
        if not expression or event.get("record") is None:
            return True
        resolve = self.app.resolver(ENTITY_SETS[event["set"]])
        try:
            return bool(compile_filter(filter_to_odata(expression), resolve)(event["record"]))
        except SLError:
            return False

    def notification(self, event: dict[str, Any], match: dict[str, Any]) -> dict[str, Any]:
        key = event["key"]
        data: dict[str, Any] = {name: str(value) for name, value in key.items()}
        record = event.get("record") or {}
        for name in (match.get("BizObjProps") or "").split(","):
            name = name.strip()
            if name and name in record and not isinstance(record[name], (list, dict)):
                data[name] = record[name]
        now = dt.datetime.now(dt.UTC)
        return {
            "id": str(uuid.uuid4()),
            "specversion": "1.0",
            "source": f"/default/sap.b1/{self.app.config.company}",
            "type": f"sap.b1.{event['set']}.{event['type']}.v1",
            "subject": ",".join(str(v) for v in key.values()),
            "time": now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z",
            "datacontenttype": "application/json",
            "data": data,
        }

    async def flush(self, webhook_id: str) -> None:
        try:
            while self.pending.get(webhook_id):
                limit = max(1, self.app.knobs.webhook_batch_limit)
                batch, self.pending[webhook_id] = self.pending[webhook_id][:limit], self.pending[webhook_id][limit:]
                await self.deliver(webhook_id, batch)
        finally:
            self.flushing.discard(webhook_id)

    async def deliver(self, webhook_id: str, batch: list[dict[str, Any]]) -> bool:
        knobs = self.app.knobs
        payload = json.dumps(batch, separators=(",", ":")).encode()
        for attempt in range(1 + max(0, knobs.webhook_retry_times)):
            record = self.store.get(SUBSCRIPTIONS, (webhook_id,))
            if record is None or record["State"] == "Inactive":
                self.counters["dropped"] += len(batch)
                return False
            if attempt:
                await asyncio.sleep(knobs.webhook_retry_interval_s)
            try:
                async with httpx.AsyncClient(timeout=knobs.webhook_timeout_s,
                                             verify=record.get("VerifyCertificate") != "tNO") as client:
                    headers = {"Content-Type": "application/json"}
                    headers.update(await self.auth_headers(record, payload, client=client))
                    self.counters["posts"] += 1
                    answer = await client.post(record["WebhookURL"], content=payload, headers=headers)
                ok = 200 <= answer.status_code < 300
            except (httpx.HTTPError, KeyError, ValueError):
                ok = False
            if ok:
                self.counters["delivered"] += len(batch)
                self._set_state((webhook_id,), "Active")
                return True
            self.counters["failed_attempts"] += 1
            self._set_state((webhook_id,), "Exceptional")
        self.counters["dropped"] += len(batch)
        self._set_state((webhook_id,), "Inactive")
        return False
