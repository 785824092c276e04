"""The JAGGAER J1P simulator's HTTP application: tenants, token endpoint, J1P API, admin.

Every tenant is served under `/tenants/<name>`; the default tenant also at the root (§2.2).
API requests pass the shared `FaultInjector` (latency, 5xx, drops, slow), then the bearer check
(401), the per-token rate limit (429), the injected `returnCode` -998, and finally the resource.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from simulators.faults import FaultInjector
from simulators.http import Request, Response
from simulators.jaggaer import ops, render
from simulators.jaggaer.auth import TOKEN_PATH, TokenIssuer, bearer, token_endpoint, unauthorized
from simulators.jaggaer.envelope import (
    RETRYABLE,
    ReturnCodes,
    error_response,
    json_response,
    list_envelope,
)
from simulators.jaggaer.fiql import FieldSpec, FilterError, compile_filter
from simulators.jaggaer.generator import Generator, seed_tenant
from simulators.jaggaer.knobs import JaggaerKnobs
from simulators.jaggaer.ratelimit import RateLimiter
from simulators.jaggaer.store import SimClock, TenantStore

API_PREFIX = "/j1p/api/public/"
DEFAULT_CLIENT_ID = "demo-erp-sync"
DEFAULT_CLIENT_SECRET = "demo-secret-change-me"

INVOICE_FIELDS = {
    "lastupdate": FieldSpec("ts", lambda r: r.last_ms, stamp=True),
    "invoiceid": FieldSpec("id", lambda r: r.id),
    "invoicenumber": FieldSpec("str", lambda r: r.invoice_number),
    "supplierinvoicenumber": FieldSpec("str", lambda r: r.supplier_invoice_number),
    "suppliernumber": FieldSpec("str", lambda r: r.supplier.number),
    "workflowstatus": FieldSpec("str", lambda r: r.workflow),
    "paymentstatus": FieldSpec("str", lambda r: r.payment_status),
    "invoicetype": FieldSpec("str", lambda r: r.type),
    "invoicelinetype": FieldSpec("str", lambda r: r.line_type),
}
ORDER_FIELDS = {
    "lastupdate": FieldSpec("ts", lambda r: r.last_ms, stamp=True),
    "purchaseorderid": FieldSpec("id", lambda r: r.id),
    "ponumber": FieldSpec("str", lambda r: r.po_number),
    "postatus": FieldSpec("str", lambda r: r.status),
    "workflowstatus": FieldSpec("str", lambda r: r.workflow),
    "suppliernumber": FieldSpec("str", lambda r: r.supplier.number),
}
COMPANY_FIELDS = {
    "lastmodtime": FieldSpec("ts", lambda r: r.last_ms, stamp=True),
    "bravoid": FieldSpec("id", lambda r: r.id),
    "type": FieldSpec("str", lambda r: r.info.get("type")),
    "extcode": FieldSpec("str", lambda r: r.info.get("extCode")),
    "extuniquecode": FieldSpec("str", lambda r: r.info.get("extUniqueCode")),
    "fiscalcode": FieldSpec("str", lambda r: r.info.get("fiscalCode")),
    "status": FieldSpec("str", lambda r: r.info.get("status")),
}


@dataclass
class Tenant:
    name: str
    client_id: str
    client_secret: str
    store: TenantStore
    generator: Generator


class JaggaerApp:
    """All tenants of one simulator process, their knobs, clock, tokens and counters."""

    def __init__(self, knobs: JaggaerKnobs | None = None, clock: SimClock | None = None, default_tenant: str = "demo") -> None:
        self.knobs = knobs or JaggaerKnobs()
        self.clock = clock or SimClock()
        self.default_tenant = default_tenant
        self.tenants: dict[str, Tenant] = {}
        self.tokens = TokenIssuer()
        self.limiter = RateLimiter()
        self.rc = ReturnCodes(self.knobs)
        self.injector = FaultInjector(self.knobs, self._fault_response)
        self.counters: Counter[str] = Counter()
        self.state_file: str | None = None  # --state FILE (for POST /_sim/state/save)

    # -- tenants -------------------------------------------------------------------------------

    def add_tenant(self, name: str, client_id: str, client_secret: str, seed: int = 0,
                   random_seed: int | None = None, history_days: float = 30) -> Tenant:
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
            raise ValueError(f"tenant name {name!r}: use letters, digits, '.', '_' or '-'")
        if name in self.tenants:
            raise ValueError(f"tenant {name!r} exists already")
        if any(t.client_id == client_id for t in self.tenants.values()):
            raise ValueError(f"client id {client_id!r} is used by another tenant")
        store = TenantStore(self.clock, salt=name)
        generator = seed_tenant(store, seed, random_seed, history_days, self.knobs.dirty_data_rate)
        tenant = Tenant(name, client_id, client_secret, store, generator)
        self.tenants[name] = tenant
        return tenant

    def tenant(self, name: str | None = None) -> Tenant:
        tenant = self.tenants.get(name or self.default_tenant)
        if tenant is None:
            raise KeyError(f"no tenant {name!r}")
        return tenant

    # -- dispatch ------------------------------------------------------------------------------

    async def __call__(self, request: Request) -> Response:
        path = request.path
        if path.startswith("/_sim"):
            from simulators.jaggaer.admin import handle_admin

            return handle_admin(self, request)
        tenant_name, prefix, rest = self.default_tenant, "", path
        if path.startswith("/tenants/"):
            _, _, name, *tail = path.split("/", 3)
            tenant_name, prefix, rest = name, f"/tenants/{name}", "/" + (tail[0] if tail else "")
        tenant = self.tenants.get(tenant_name)
        if rest.rstrip("/") == TOKEN_PATH:
            self.counters["token"] += 1
            if self.knobs.token_latency_ms:
                await asyncio.sleep(self.knobs.token_latency_ms / 1000)
            return token_endpoint(request, tenant, request.base_url + prefix, self.tokens, self.knobs.token_lifetime)
        if rest.startswith("/j1p/") and tenant is not None:
            return await self.injector.handle(request, lambda req: self._api(req, tenant, rest))
        self.counters["not_found"] += 1
        return error_response(self.rc, 404, 2, "Resource not found")

    def too_large(self, request: Request) -> Response:
        """HttpServer's answer to a body over its limit, in the J1P error envelope."""
        return error_response(self.rc, 413, 2, "Request body too large")

    def _fault_response(self, request: Request, status: int) -> Response:
        self.counters[f"http_{status}"] += 1
        return Response(status, [("Content-Type", "text/html")], f"<html><body>{status} Service error</body></html>".encode())

    async def _api(self, request: Request, tenant: Tenant, path: str) -> Response:
        token = bearer(request)
        claims = self.tokens.verify(token, tenant.name) if token else None
        if claims is None:
            self.counters["unauthorized"] += 1
            return unauthorized(self.knobs.unauthorized_body)
        if not self.limiter.allow(claims.jti, self.knobs.rate_limit):
            self.counters["rate_limited"] += 1
            headers = [("Content-Type", "text/plain")]
            if self.knobs.retry_after > 0:
                headers.append(("Retry-After", str(int(self.knobs.retry_after))))
            return Response(429, headers, b"Too Many Requests")
        route, target = self._route(path)
        if route is None:
            self.counters["not_found"] += 1
            return error_response(self.rc, 404, 2, "Resource not found")
        endpoint, methods = route
        if request.method not in methods:
            self.counters["method_not_allowed"] += 1
            return error_response(self.rc, 405, 2, "Method not allowed")
        name = f"{endpoint}.{'list' if target is None else 'get'}" if request.method == "GET" else f"{endpoint}.update"
        self.counters[name] += 1
        if self.knobs.retryable_rate and self.injector.random.random() < self.knobs.retryable_rate:
            self.counters["retryable"] += 1
            return error_response(self.rc, 200, RETRYABLE, "Temporary error, please retry",
                                  list_fields=request.method == "GET" and target is None)
        handler: Callable[..., Response] = getattr(self, f"_{endpoint}_{request.method.lower()}")
        return handler(request, tenant, target)

    @staticmethod
    def _route(path: str) -> tuple[tuple[str, tuple[str, ...]] | None, str | None]:
        rest = path[len(API_PREFIX):] if path.startswith(API_PREFIX) else None
        if rest is None:
            return None, None
        parts = [p for p in rest.split("/") if p]
        routes = {
            ("ji", "v1", "invoices"): ("invoices", ("GET",)),
            ("je", "v1", "purchaseorders"): ("purchaseorders", ("GET",)),
            ("ja", "v1", "companyprofiles"): ("companyprofiles", ("GET", "POST")),
        }
        if len(parts) == 3 and tuple(parts) in routes:
            return routes[tuple(parts)], None
        if len(parts) == 4 and tuple(parts[:3]) in routes and parts[2] != "companyprofiles":
            return (routes[tuple(parts[:3])][0], ("GET",)), parts[3]
        return None, None

    # -- lists ---------------------------------------------------------------------------------

    def _list(self, request: Request, collection: Any, fields: dict[str, FieldSpec], key: Any,
              render_item: Callable[[Any], dict[str, Any]], message: str = "") -> Response:
        query = request.query
        start_text = query.get("start", "1").strip()
        if not start_text.isdigit() or int(start_text) < 1:
            return error_response(self.rc, 200, 2, "Invalid parameter: start", list_fields=True)
        start = int(start_text)
        flt_text = query.get("flt", "")
        try:
            flt = compile_filter(flt_text, fields)
        except FilterError as exc:
            return error_response(self.rc, 200, 2, str(exc), list_fields=True)
        records = collection.query(flt_text, flt.stamp_range, flt.predicates)
        page = records[start - 1:start - 1 + self.knobs.page_size]
        return json_response(200, list_envelope(self.rc, len(records), [render_item(r) for r in page], start, key, message))

    def _not_found(self, id: str) -> Response:
        status = 404 if self.knobs.not_found_mode == "http404" else 200
        return error_response(self.rc, status, 2, f"Record not found: {id}")

    def _invoices_get(self, request: Request, tenant: Tenant, target: str | None) -> Response:
        store = tenant.store
        if target is None:
            return self._list(request, store.invoices, INVOICE_FIELDS, ("jiinvoiceList", "jiinvoice"),
                              lambda r: render.invoice_item(r, store.salt))
        inv = store.invoices.get(int(target)) if target.isdigit() else None
        return self._not_found(target) if inv is None else json_response(200, render.invoice(inv, store.salt))

    def _purchaseorders_get(self, request: Request, tenant: Tenant, target: str | None) -> Response:
        store = tenant.store
        if target is None:
            return self._list(request, store.orders, ORDER_FIELDS, ("jepurchaseorderList", "jepurchaseorder"),
                              render.purchase_order_item)
        po = store.orders.get(int(target)) if target.isdigit() else None
        return self._not_found(target) if po is None else json_response(200, render.purchase_order(po))

    def _companyprofiles_get(self, request: Request, tenant: Tenant, target: str | None) -> Response:
        comp = frozenset(part.strip().upper() for part in request.query.get("comp", "").split(";") if part.strip())
        return self._list(request, tenant.store.suppliers, COMPANY_FIELDS, "returnCompanyData",
                          lambda r: render.company(r, comp), message="OK")

    def _companyprofiles_post(self, request: Request, tenant: Tenant, target: str | None) -> Response:
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != "application/json":
            return error_response(self.rc, 415, 2, "Unsupported content type")
        try:
            body = json.loads(request.body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            return error_response(self.rc, 400, 2, "Malformed JSON request body")
        code, message, bravo_id = company_post(tenant, body)
        answer: dict[str, Any] = {"returnCode": self.rc(code), "returnMessage": message}
        if bravo_id is not None:
            answer["bravoId"] = bravo_id
        return json_response(200, answer)


def company_post(tenant: Tenant, body: Any) -> tuple[int, str, int | None]:
    """(returnCode, returnMessage, bravoId) of a company-profile POST (§6.3)."""
    company = body.get("company") if isinstance(body, dict) else None
    if not isinstance(company, dict):
        return 2, "Missing mandatory field: company", None
    operation = company.get("operationCode")
    if operation not in ("UPDATE", "CREATE", "CREATEUPDATE"):
        return 2, f"Unsupported operationCode: {operation}", None
    info = company.get("companyInfo")
    if not isinstance(info, dict):
        return 2, "Missing mandatory field: companyInfo", None
    store = tenant.store
    try:
        new, unknown = ops.company_changes(info)
    except ops.InvalidField as exc:
        return 2, str(exc), None
    bravo_id = info.get("bravoId")
    existing = None
    if bravo_id not in (None, ""):
        try:
            existing = ops.get_supplier(store, bravo_id)
        except ops.NotFound:
            if operation == "UPDATE":
                return 2, f"Company not found: {bravo_id}", None
    if operation == "UPDATE":
        if existing is None:
            return 2, "Missing mandatory field: bravoId", None
        ops.update_company(store, existing, new)
        supplier = existing
    elif operation == "CREATEUPDATE" and existing is not None:
        ops.update_company(store, existing, new)
        supplier = existing
    else:
        company_type = info.get("type", "SELLER")
        if company_type != "SELLER":
            return 2, "Invalid value for field type", None
        try:
            supplier = ops.create_company(store, new)
        except ValueError as exc:
            return 2, str(exc), None
    if unknown:
        return 1, f"Ignored unknown fields: {', '.join(unknown)}", supplier.id
    return 0, "OK", supplier.id
