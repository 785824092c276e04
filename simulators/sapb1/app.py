"""The Service Layer application: routing, sessions, envelopes of both roots (contract §1-§8).

`ServiceLayerApp.handle` is the HttpServer handler. `/b1s/v1|v2/...` is the API (behind the fault
injector), `/ping/...` the balancer's health checks, `/_sim/...` the admin endpoints (never faulted).
`dispatch` serves one API request synchronously so `$batch` can reuse it.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
import time
import traceback
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote

from simulators.faults import FaultInjector
from simulators.http import Request, Response
from simulators.sapb1 import errors as E
from simulators.sapb1 import odata
from simulators.sapb1.config import SapKnobs, SimConfig
from simulators.sapb1.entities import (
    ENTITY_SETS,
    EntitySet,
    Prop,
    format_key,
    load_schema,
    metadata_document,
    parse_key,
    render,
)
from simulators.sapb1.errors import SLError
from simulators.sapb1.rules import APPROVAL_SETS, Rules, etag_of
from simulators.sapb1.sessions import Session, Sessions
from simulators.sapb1.store import Store

CT_V1 = "application/json;odata=minimalmetadata;charset=utf-8"
CT_V2 = "application/json;odata.metadata=minimal;charset=utf-8"
CT_V2_ERROR = "application/json;charset=utf-8"
HDR_V1 = ("DataServiceVersion", "3.0")
HDR_V2 = ("OData-Version", "4.0")
DOC_ACTIONS = ("Close", "Cancel", "Reopen", "CreateCancellationDocument")
_SESSION_COOKIE = re.compile(r"(?:^|;)\s*B1SESSION=([^;\s]*)")
WRITE_METHODS = frozenset(("POST", "PATCH", "PUT", "DELETE", "MERGE"))


def dumps(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


@dataclass
class Call:
    """One API request, direct or from a `$batch` part."""

    v2: bool
    method: str
    resource: str  # raw (percent-encoded) path after `/b1s/vN/`
    query_string: str
    headers: dict[str, str]
    body: bytes
    base: str  # scheme://host
    session: Session | None = None
    in_batch: bool = False
    extra_headers: list[tuple[str, str]] = field(default_factory=list)

    @property
    def root(self) -> str:
        return f"{self.base}/b1s/{'v2' if self.v2 else 'v1'}"

    @property
    def version(self) -> str:
        return "v2" if self.v2 else "v1"


class ServiceLayerApp:
    def __init__(self, config: SimConfig | None = None, knobs: SapKnobs | None = None) -> None:
        self.config = config or SimConfig()
        self.knobs = knobs or SapKnobs()
        self.schema = load_schema()
        self.store = Store(self.config.state)
        self.rules = Rules(self.store, self.schema, lambda: self.knobs)
        self.sessions = Sessions(self.config.session_timeout)
        self.injector = FaultInjector(self.knobs, self.fault_response)
        self.requests: dict[str, int] = {}
        self.by_entity: dict[str, dict[str, int]] = {}
        self.logins = 0
        self._keys: dict[tuple[str, str], tuple] = {}  # parsed entity keys of the hot path
        from simulators.sapb1.webhooks import Webhooks

        self.webhooks = Webhooks(self)
        self.store.on_commit.append(self.webhooks.on_events)
        self.load_initial_data()

    def load_initial_data(self) -> None:
        if self.store.load():
            return
        if self.config.seed == "demo":
            from simulators.sapb1.seed import load_demo

            load_demo(self.rules)

    # -- entry point ---------------------------------------------------------------------------

    async def handle(self, request: Request) -> Response:
        path = request.raw_path
        if path.startswith("/b1s/"):
            return await self.injector.handle(request, self.handle_api)
        if path.startswith("/ping"):
            return self.ping(path)
        if path.startswith("/_sim/"):
            from simulators.sapb1.admin import handle_admin

            return handle_admin(self, request)
        return _apache_error(404, "Not Found")

    def ping(self, path: str) -> Response:
        sender = "load balancer"
        if path.startswith("/ping/node/"):
            node = path[len("/ping/node/"):].strip("/")
            if node != "1":
                return _apache_error(503, "Service Unavailable")
            sender = "node 1"
        elif path not in ("/ping", "/ping/", "/ping/load-balancer", "/ping/load-balancer/"):
            return _apache_error(404, "Not Found")
        body = b'{"message":"pong","sender":"' + sender.encode() + b'","timestamp":' + str(
            int(time.time())).encode() + b"}"
        return Response(200, [("Content-Type", "application/json")], body)

    async def handle_api(self, request: Request) -> Response:
        raw = request.raw_path
        version, _, resource = raw[5:].partition("/")
        if version not in ("v1", "v2"):
            return _apache_error(404, "Not Found")
        v2 = version == "v2"
        self.requests[request.method] = self.requests.get(request.method, 0) + 1
        method = request.method
        if method == "POST" and "x-http-method-override" in request.headers:
            method = request.headers["x-http-method-override"].strip().upper()
        call = Call(v2, method, resource, request.query_string, request.headers, request.body, request.base_url)
        try:
            if self.knobs.expect_continue_500 and request.headers.get("expect", "").lower() == "100-continue":
                return Response(500, [], b"")
            if resource == "Login" and method == "POST":
                return await self.login(call)
            cookie = _SESSION_COOKIE.search(request.headers.get("cookie", ""))
            session = self.sessions.get(cookie.group(1) if cookie else None)
            if session is None:
                raise E.session_error()
            if self.knobs.session_kill_rate and self.injector.random.random() < self.knobs.session_kill_rate:
                self.sessions.end(session.id)
                raise E.session_error()
            call.session = session
            try:
                if method in WRITE_METHODS:
                    await self.before_write(call)
                if method == "POST" and resource.startswith("EventSubscriptions") and v2:
                    return await self.webhooks.subscription_request(call)
                return self.dispatch(call)
            finally:
                self.sessions.touch(session)  # idle clock restarts when a request completes (§2.4)
        except SLError as exc:
            return self.error(call, exc)
        except Exception:  # a simulator bug must still answer in the envelope, never hang or drop
            traceback.print_exc(file=sys.stderr)
            return self.error(call, SLError(500, -1, "Unexpected error in the Service Layer simulator"))

    async def before_write(self, call: Call) -> None:
        knobs = self.knobs
        if knobs.internal_error_rate and self.injector.random.random() < knobs.internal_error_rate:
            raise SLError(400, -5002, E.MSG_INTERNAL)
        if knobs.write_latency_ms or knobs.write_latency_per_line_ms:
            lines = call.body.count(b'"LineNum"') + call.body.count(b'"ItemCode"') if call.body else 0
            await asyncio.sleep((knobs.write_latency_ms + lines * knobs.write_latency_per_line_ms) / 1000)

    # -- login / logout --------------------------------------------------------------------------

    async def login(self, call: Call) -> Response:
        if self.knobs.login_latency_ms:
            await asyncio.sleep(self.knobs.login_latency_ms / 1000)
        try:
            body = json.loads(call.body or b"null")
        except (ValueError, UnicodeDecodeError):
            body = None
        keys = ("CompanyDB", "UserName", "Password")
        if not isinstance(body, dict) or not all(isinstance(body.get(k), str) for k in keys):
            raise SLError(400, -1000, "Invalid login parameters")
        if body["CompanyDB"] != self.config.company:
            raise SLError(401, -304, "Fail to get DB Credentials from SLD")
        if body["UserName"] != self.config.user or body["Password"] != self.config.password:
            raise SLError(401, 100000027, "Login failed")
        if self.knobs.user_locked:
            raise SLError(401, 100000055, "User is locked")
        session = self.sessions.create(body["UserName"], body["CompanyDB"])
        self.logins += 1
        payload: dict[str, Any] = {}
        if call.v2:
            payload["@odata.context"] = f"{call.root}/$metadata#B1Sessions/$entity"
        else:
            payload["odata.metadata"] = f"{call.root}/$metadata#B1Sessions/@Element"
        payload.update(SessionId=session.id, Version=self.config.version,
                       SessionTimeout=self.sessions.timeout_minutes)
        headers = self.json_headers(call.v2) + [
            ("Set-Cookie", f"B1SESSION={session.id};HttpOnly;"),
            ("Set-Cookie", "ROUTEID=.node1; path=/b1s"),
        ]
        return Response(200, headers, dumps(payload))

    # -- dispatch (also used by $batch parts) ----------------------------------------------------

    def dispatch(self, call: Call) -> Response:
        name, key_text, rest = split_resource(call.resource)
        if name == "Logout" and call.method == "POST" and key_text is None:
            if call.session:
                self.sessions.end(call.session.id)
            return Response(204, self.base_headers(call.v2))
        if name == "$metadata" and call.method == "GET":
            with_mapping = call.headers.get("b1s-withmappinginfo", "").strip().lower() in ("1", "true")
            return Response(200, [("Content-Type", "application/xml"), self.version_header(call.v2)],
                            metadata_document(self.store.udfs, with_mapping))
        if name == "$batch" and call.method == "POST" and not call.in_batch:
            from simulators.sapb1.batch import run_batch

            return run_batch(self, call)
        if name.startswith("EventSubscriptionsService_") or name.startswith("CompanyService_"):
            return self.webhooks.service_call(call, name)
        eset = ENTITY_SETS.get(name)
        if eset is None or (eset.v2_only and not call.v2):
            raise E.segment_not_found(name)
        per = self.by_entity.setdefault(name, {})
        per[call.method] = per.get(call.method, 0) + 1
        if key_text is None:
            return self.collection(call, eset, rest)
        key = self._keys.get((name, key_text))
        if key is None:
            key = parse_key(eset, self.schema, unquote(key_text))
            if len(self._keys) > 10_000:
                self._keys.clear()
            self._keys[(name, key_text)] = key
        return self.entity(call, eset, key, rest)

    def collection(self, call: Call, eset: EntitySet, rest: str | None) -> Response:
        if call.method == "GET":
            if rest == "$count":
                return self.count(call, eset)
            if rest:
                raise E.segment_not_found(rest)
            return self.query(call, eset)
        if call.method == "POST" and not rest:
            body = self.json_body(call)
            if eset.kind == "subscription":
                raise SLError(400, -1000, "EventSubscriptions cannot be created inside $batch")
            if self.knobs.approval_procedures and eset.name in APPROVAL_SETS:
                return self.create_draft(call, eset, body)
            with self.store.transaction():
                key, record = self.rules.create(eset, body)
            return self.created(call, eset, key, record)
        raise SLError(405, -1000, f"Method '{call.method}' is not allowed on '{eset.name}'")

    def entity(self, call: Call, eset: EntitySet, key: tuple, rest: str | None) -> Response:
        method = call.method
        if_match = None if call.in_batch else call.headers.get("if-match")
        if method == "GET":
            record = self.store.get(eset.name, key)
            if record is None:
                raise E.not_found()
            if rest:
                return self.single_property(call, eset, record, rest)
            return self.single(call, eset, key, record, 200)
        if eset.kind == "subscription":
            return self.webhooks.subscription_entity(call, eset, key, rest, if_match)
        if method in ("PATCH", "PUT", "MERGE") and not rest:
            body = self.json_body(call)
            replace = method == "PUT" or call.headers.get("b1s-replacecollectionsonpatch", "").lower() == "true"
            with self.store.transaction():
                record = self.rules.patch(eset, key, body, replace, if_match)
            return Response(204, self.base_headers(call.v2) + self.etag_headers(eset, record))
        if method == "DELETE" and not rest:
            if call.v2 and eset.kind == "bp" and self.store.get(eset.name, key) is None:
                # recorded on release 2511 (§4.3); other keys and v1 answer the ODBC -2028 text
                raise SLError(404, -2028, f"Entity with value('{key[0]}') does not exist")
            with self.store.transaction():
                self.rules.delete(eset, key, if_match)
            return Response(204, self.base_headers(call.v2))
        if method == "POST" and rest and eset.kind == "document" and rest in DOC_ACTIONS:
            with self.store.transaction():
                result = self.rules.action(eset, key, rest, if_match)
            if result is not None:
                body = {self.context_key(call.v2): f"{call.root}/$metadata#{eset.name}/"
                        + ("$entity" if call.v2 else "@Element")}
                body.update(render(self.schema, eset.type_name, result, call.v2, self.store.udfs))
                return Response(200, self.json_headers(call.v2), dumps(body))
            return Response(204, self.base_headers(call.v2))
        if rest:
            raise E.segment_not_found(rest)
        raise SLError(405, -1000, f"Method '{method}' is not allowed on '{eset.name}'")

    # -- reads -------------------------------------------------------------------------------------

    def resolver(self, eset: EntitySet):
        props = self.schema.types[eset.type_name].props
        udfs = self.store.udfs.get(eset.type_name, {})
        type_name = eset.type_name

        def resolve(name: str) -> Prop:
            prop = props.get(name) or udfs.get(name)
            if prop is None:
                raise E.invalid_property(name, type_name)
            return prop

        return resolve

    def rendered(self, eset: EntitySet, key: tuple, record: dict[str, Any], v2: bool) -> tuple[dict, bytes]:
        cache_key = (eset.name, key, v2)
        cached = self.store.render_cache.get(cache_key)
        if cached is None:
            out = render(self.schema, eset.type_name, record, v2, self.store.udfs)
            cached = (out, dumps(out))
            self.store.render_cache[cache_key] = cached
        return cached

    def single(self, call: Call, eset: EntitySet, key: tuple, record: dict[str, Any], status: int,
               extra: list[tuple[str, str]] | None = None) -> Response:
        _, fragment = self.rendered(eset, key, record, call.v2)
        if call.v2:
            head = f'{{"@odata.context":"{call.root}/$metadata#{eset.name}/$entity"'
        else:
            head = f'{{"odata.metadata":"{call.root}/$metadata#{eset.name}/@Element"'
        headers = self.json_headers(call.v2)
        if eset.etag:
            tag = etag_of(record.get("DataVersion"))
            head += f',"{"@odata.etag" if call.v2 else "odata.etag"}":"{tag.replace(chr(34), chr(92) + chr(34))}"'
            headers.append(("ETag", tag))
        if extra:
            headers.extend(extra)
        select = self.single_select(call, eset)
        if select is not None:
            rendered, _ = self.rendered(eset, key, record, call.v2)
            fragment = dumps({name: rendered.get(name) for name in select})
        return Response(status, headers, head.encode() + b"," + fragment[1:])

    def single_select(self, call: Call, eset: EntitySet) -> list[str] | None:
        """`$select` on a single-entity GET (contract §9.2 uses it); None when absent or `*`."""
        if call.method != "GET" or not call.query_string:
            return None
        query = dict(parse_qsl(call.query_string, keep_blank_values=True))
        if not query.get("$select"):
            return None
        select = odata.parse_select(query["$select"], self.resolver(eset))
        return None if "*" in select else select

    def single_property(self, call: Call, eset: EntitySet, record: dict[str, Any], rest: str) -> Response:
        name, _, raw = rest.partition("/")
        try:
            self.resolver(eset)(name)
        except SLError:
            raise E.segment_not_found(name) from None
        value = render(self.schema, eset.type_name, {name: record.get(name)}, call.v2, self.store.udfs)[name]
        if raw == "$value":
            return Response(200, [("Content-Type", "text/plain;charset=utf-8")], str(value).encode())
        if raw:
            raise E.segment_not_found(raw)
        body = {self.context_key(call.v2): f"{call.root}/$metadata#{eset.name}/{name}", "value": value}
        return Response(200, self.json_headers(call.v2), dumps(body))

    def select_records(self, call: Call, eset: EntitySet, query: dict[str, str]) -> list[tuple[tuple, dict]]:
        odata.check_options(query)
        resolve = self.resolver(eset)
        items = sorted(self.store.data[eset.name].items(), key=lambda kv: kv[0])
        if "$filter" in query:
            ci = call.headers.get("b1s-caseinsensitive", "").lower() == "true"
            predicate = odata.compile_filter(query["$filter"], resolve, ci)
            items = [kv for kv in items if predicate(kv[1])]
        if "$orderby" in query:
            order = odata.parse_orderby(query["$orderby"], resolve)
            records = odata.sort_records([r for _, r in items], order)
            keys = {id(r): k for k, r in items}
            items = [(keys[id(r)], r) for r in records]
        return items

    def count(self, call: Call, eset: EntitySet) -> Response:
        query = dict(parse_qsl(call.query_string, keep_blank_values=True))
        items = self.select_records(call, eset, query)
        return Response(200, [("Content-Type", "text/plain;charset=utf-8"), self.version_header(call.v2)],
                        str(len(items)).encode())

    def query(self, call: Call, eset: EntitySet) -> Response:
        query = dict(parse_qsl(call.query_string, keep_blank_values=True))
        items = self.select_records(call, eset, query)
        resolve = self.resolver(eset)
        select = odata.parse_select(query["$select"], resolve) if query.get("$select") else None
        if select and "*" in select:
            select = None
        skip = odata.parse_count(query["$skip"], "$skip") if "$skip" in query else 0
        top = odata.parse_count(query["$top"], "$top") if "$top" in query else None
        prefer = parse_prefer(call.headers.get("prefer", ""))
        page_size = self.config.page_size
        headers = self.json_headers(call.v2)
        if "odata.maxpagesize" in prefer and prefer["odata.maxpagesize"].isdigit():
            page_size = int(prefer["odata.maxpagesize"])
            headers.append(("Preference-Applied", f"odata.maxpagesize={page_size}"))
        elif call.headers.get("b1s-pagesize", "").strip().isdigit():
            page_size = int(call.headers["b1s-pagesize"].strip())
        total = len(items)
        window = items[skip:] if top is None else items[skip:skip + top]
        page = window if page_size == 0 else window[:page_size]
        more = len(window) > len(page)
        values = [self.project(call, eset, key, record, select) for key, record in page]
        ctx = eset.name + (f"({','.join(select)})" if select and call.v2 else "")
        if select and not call.v2:
            ctx += "&$select=" + ",".join(select)
        body: dict[str, Any] = {self.context_key(call.v2): f"{call.root}/$metadata#{ctx}"}
        if call.v2 and query.get("$count") == "true":
            body["@odata.count"] = total
        if not call.v2 and query.get("$inlinecount") == "allpages":
            body["odata.count"] = total
        body["value"] = values
        if more:
            link = next_link(call, eset.name, skip + len(page), None if top is None else top - len(page))
            body["@odata.nextLink" if call.v2 else "odata.nextLink"] = link
        return Response(200, headers, dumps(body))

    def project(self, call: Call, eset: EntitySet, key: tuple, record: dict, select: list[str] | None) -> dict:
        rendered, _ = self.rendered(eset, key, record, call.v2)
        if eset.etag:
            out = {"@odata.etag" if call.v2 else "odata.etag": etag_of(record.get("DataVersion"))}
            if select is None:
                out.update(rendered)
            else:
                out.update({name: rendered.get(name) for name in select})
            return out
        if select is None:
            return rendered
        return {name: rendered.get(name) for name in select}

    # -- writes -------------------------------------------------------------------------------------

    def json_body(self, call: Call) -> dict[str, Any]:
        try:
            body = json.loads(call.body.decode("utf-8")) if call.body else None
        except (ValueError, UnicodeDecodeError):
            raise SLError(400, -1000, E.MSG_BAD_JSON) from None
        if not isinstance(body, dict):
            raise SLError(400, -1000, E.MSG_BAD_JSON)
        return body

    def create_draft(self, call: Call, eset: EntitySet, body: dict[str, Any]) -> Response:
        """Approval procedures (§5.4): the document becomes a pending `Drafts` row; -2028 or 204."""
        with self.store.transaction():
            self.rules.create_document(ENTITY_SETS["Drafts"], body, draft_of=eset)
        if "return-no-content" in parse_prefer(call.headers.get("prefer", "")):
            return Response(204, self.base_headers(call.v2))
        raise SLError(400, -2028, E.MSG_NOT_FOUND)

    def created(self, call: Call, eset: EntitySet, key: tuple, record: dict[str, Any]) -> Response:
        location = [("Location", f"{call.root}/{eset.name}{format_key(eset, key)}")]
        prefer = parse_prefer(call.headers.get("prefer", ""))
        if "return-no-content" in prefer:
            return Response(204, self.base_headers(call.v2) + location + self.etag_headers(eset, record)
                            + [("Preference-Applied", "return-no-content")])
        return self.single(call, eset, key, record, 201, location)

    # -- envelopes ------------------------------------------------------------------------------

    @staticmethod
    def context_key(v2: bool) -> str:
        return "@odata.context" if v2 else "odata.metadata"

    @staticmethod
    def version_header(v2: bool) -> tuple[str, str]:
        return HDR_V2 if v2 else HDR_V1

    def base_headers(self, v2: bool) -> list[tuple[str, str]]:
        return [HDR_V2 if v2 else HDR_V1]

    def json_headers(self, v2: bool) -> list[tuple[str, str]]:
        return [("Content-Type", CT_V2 if v2 else CT_V1), HDR_V2 if v2 else HDR_V1]

    @staticmethod
    def etag_headers(eset: EntitySet, record: dict[str, Any]) -> list[tuple[str, str]]:
        return [("ETag", etag_of(record.get("DataVersion")))] if eset.etag else []

    def error(self, call: Call, exc: SLError) -> Response:
        return error_response(call.v2, exc, "/b1s/" + call.version + "/" + call.resource.split("?")[0])

    def fault_response(self, request: Request, status: int) -> Response:
        reason = {500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable"}.get(status, "Error")
        return _apache_error(status, reason)

    def too_large(self, request: Request) -> Response:
        v2 = not request.raw_path.startswith("/b1s/v1/")
        return error_response(v2, SLError(413, -1000, E.MSG_TOO_LARGE), request.raw_path)

    # -- admin helpers ---------------------------------------------------------------------------

    def counters(self) -> dict[str, Any]:
        return {
            "requests": dict(self.requests),
            "requests_total": sum(self.requests.values()),
            "by_entity": {k: dict(v) for k, v in self.by_entity.items()},
            "writes": self.store.write_total,
            "writes_by_entity": {k: dict(v) for k, v in self.store.writes.items()},
            "logins": self.logins,
            "sessions": len(self.sessions),
            "faults": dict(self.injector.counters),
            "webhooks": dict(self.webhooks.counters),
        }


def error_response(v2: bool, exc: SLError, path: str) -> Response:
    if v2:
        body = {"error": {"code": str(exc.code), "details": [{"code": "", "message": ""}], "message": exc.message}}
        headers = [("Content-Type", CT_V2_ERROR), HDR_V2]
        if exc.status == 401:
            headers.append(("WWW-Authenticate", f"Basic realm={path}"))
    else:
        body = {"error": {"code": exc.code, "message": {"lang": "en-us", "value": exc.message}}}
        headers = [("Content-Type", CT_V1), HDR_V1]
    return Response(exc.status, headers + exc.headers, dumps(body))


def _apache_error(status: int, reason: str) -> Response:
    body = (f"<!DOCTYPE HTML PUBLIC \"-//IETF//DTD HTML 2.0//EN\">\n<html><head>\n<title>{status} {reason}</title>\n"
            f"</head><body>\n<h1>{reason}</h1>\n</body></html>\n").encode()
    return Response(status, [("Content-Type", "text/html; charset=iso-8859-1")], body)


_SIMPLE_RESOURCE = re.compile(r"^([A-Za-z_$][\w]*)(?:\(([^()'%]*|'[^'%()]*')\))?(?:/([\w$]+))?$")


def split_resource(resource: str) -> tuple[str, str | None, str | None]:
    """`Set('A%27B')/Close` -> ("Set", "'A%27B'", "Close"), keys still percent-encoded."""
    simple = _SIMPLE_RESOURCE.match(resource)
    if simple:  # the hot path: no quotes inside keys, nothing percent-encoded
        return simple.group(1), simple.group(2), simple.group(3)
    index = 0
    while index < len(resource) and resource[index] not in "(/":
        index += 1
    name = resource[:index]
    key_text = None
    if index < len(resource) and resource[index] == "(":
        quoted = False
        end = index + 1
        while end < len(resource):
            ch = resource[end]
            if ch == "'":
                quoted = not quoted
            elif ch == ")" and not quoted:
                break
            end += 1
        if end >= len(resource):
            raise SLError(400, -1000, f"Invalid key value: {resource[index:]}")
        key_text = resource[index + 1:end]
        index = end + 1
    rest = resource[index + 1:] if index < len(resource) and resource[index] == "/" else None
    if index < len(resource) and resource[index] != "/":
        raise E.segment_not_found(resource)
    return unquote(name), key_text, unquote(rest) if rest else None


def parse_prefer(header: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        if name:
            out[name.strip().lower()] = value.strip()
    return out


def next_link(call: Call, set_name: str, skip: int, top: int | None) -> str:
    """The original options with a new `$skip` (and the remaining `$top`), §7.2."""
    parts = []
    for part in call.query_string.split("&") if call.query_string else []:
        name = unquote(part.split("=", 1)[0])
        if name not in ("$skip", "$top"):
            parts.append(part)
    if top is not None:
        parts.append(f"$top={top}")
    parts.append(f"$skip={skip}")
    query = "&".join(parts)
    if call.v2:
        return f"{set_name}?{query}"
    return f"/b1s/v1/{set_name}?{query}"
