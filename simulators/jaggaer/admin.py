"""`/_sim/...`: the simulator's admin endpoint (no auth; loopback tool, not part of J1P).

    GET   /_sim/knobs                     PATCH /_sim/knobs  {"rate_limit": 5, ...}
    GET   /_sim/clock                     POST  /_sim/clock  {"action": "freeze|unfreeze|set|advance", "at": ISO, "seconds": N}
    GET   /_sim/counters
    GET   /_sim/tenants                   POST  /_sim/tenants {"name", "client_id", "client_secret", "seed", "random_seed", "history_days"}
    POST  /_sim/state/save
    [/_sim/tenants/<t>]/_sim/... or /_sim/...  (default tenant):
    POST  /_sim/purchaseorders            create  {"supplier_id", "lines": [{...}], "n_lines", "workflow_status", "note"}
    PATCH /_sim/purchaseorders/<id>       change  {"workflowStatus", "lines": [{"lineNumber", "quantity", ...}], "addLines": [...], ...}
    POST  /_sim/purchaseorders/<id>/close | /cancel
    POST  /_sim/invoices                  create  {"po_id", "lines", "supplier_id", "invoice_type", "workflow_status"}
    PATCH /_sim/invoices/<id>             change  {"workflowStatus", "paymentStatus", "lines": [...], ...}
    POST  /_sim/companyprofiles           create  {company fields}
    PATCH /_sim/companyprofiles/<bravoId> change  {company fields}
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import TYPE_CHECKING, Any

from simulators.http import Request, Response
from simulators.jaggaer import ops, render
from simulators.jaggaer.envelope import dumps

if TYPE_CHECKING:
    from simulators.jaggaer.app import JaggaerApp, Tenant


def _snake(body: dict[str, Any]) -> dict[str, Any]:
    """Create-call keywords: `supplierId` and `supplier_id` alike."""
    return {re.sub(r"(?<!^)([A-Z])", r"_\1", k).lower(): v for k, v in body.items()}


def _answer(status: int, body: Any) -> Response:
    return Response(status, [("Content-Type", "application/json")], dumps(body))


def _error(status: int, message: str) -> Response:
    return _answer(status, {"error": message})


def counters(app: JaggaerApp) -> dict[str, int]:
    out = dict(app.counters)
    out.update({f"faults_{k}": v for k, v in app.injector.counters.items()})
    return out


def clock_action(app: JaggaerApp, body: dict[str, Any]) -> dict[str, Any]:
    action = body.get("action")
    clock = app.clock
    if action == "freeze":
        clock.freeze(datetime.fromisoformat(body["at"].replace("Z", "+00:00")) if body.get("at") else None)
    elif action == "unfreeze":
        clock.unfreeze()
    elif action == "set":
        clock.set(datetime.fromisoformat(str(body["at"]).replace("Z", "+00:00")))
    elif action == "advance":
        clock.advance(float(body["seconds"]))
    else:
        raise ValueError("action must be freeze, unfreeze, set or advance")
    return clock.as_dict()


def handle_admin(app: JaggaerApp, request: Request) -> Response:
    try:
        body = json.loads(request.body.decode("utf-8")) if request.body else {}
    except (UnicodeDecodeError, ValueError):
        return _error(400, "body is not valid JSON")
    if not isinstance(body, dict):
        return _error(400, "body must be a JSON object")
    parts = [p for p in request.path.split("/") if p][1:]  # after "_sim"
    method = request.method
    try:
        if parts == ["knobs"]:
            if method == "PATCH":
                unknown = app.knobs.update(body)
                if unknown:
                    return _error(400, f"unknown knobs: {', '.join(unknown)}")
            return _answer(200, app.knobs.as_dict())
        if parts == ["clock"]:
            return _answer(200, clock_action(app, body) if method == "POST" else app.clock.as_dict())
        if parts == ["counters"]:
            return _answer(200, counters(app))
        if parts == ["state", "save"] and method == "POST":
            from simulators.jaggaer.state import save_state

            path = body.get("path") or app.state_file
            if not path:
                return _error(400, "no state file: start with --state FILE or give {\"path\"}")
            save_state(app, path)
            return _answer(200, {"saved": str(path)})
        if parts == ["tenants"]:
            if method == "POST":
                tenant = app.add_tenant(body["name"], body["client_id"], body["client_secret"], int(body.get("seed", 0)),
                                        body.get("random_seed"), float(body.get("history_days", 30)))
                return _answer(201, {"name": tenant.name, "client_id": tenant.client_id})
            return _answer(200, [{"name": t.name, "client_id": t.client_id} for t in app.tenants.values()])
        tenant_name = None
        if parts[:1] == ["tenants"] and len(parts) >= 3:
            tenant_name, parts = parts[1], parts[2:]
        return _data(app, app.tenant(tenant_name), method, parts, body)
    except ops.NotFound as exc:
        return _error(404, str(exc))
    except KeyError as exc:
        return _error(404 if "tenant" in str(exc) else 400, f"missing or unknown: {exc}")
    except (ValueError, TypeError) as exc:
        return _error(400, str(exc))


def _data(app: JaggaerApp, tenant: Tenant, method: str, parts: list[str], body: dict[str, Any]) -> Response:
    store, gen = tenant.store, tenant.generator
    resource, rest = (parts[0], parts[1:]) if parts else ("", [])
    if resource == "purchaseorders":
        if not rest and method == "POST":
            return _answer(201, render.purchase_order(ops.create_order(store, gen, **_snake(body))))
        if len(rest) == 1 and method == "PATCH":
            return _answer(200, render.purchase_order(ops.change_order(store, gen, rest[0], body)))
        if len(rest) == 1 and method == "GET":
            return _answer(200, render.purchase_order(ops.get_order(store, rest[0])))
        if len(rest) == 2 and rest[1] in ("close", "cancel") and method == "POST":
            action = ops.close_order if rest[1] == "close" else ops.cancel_order
            return _answer(200, render.purchase_order(action(store, rest[0])))
    if resource == "invoices":
        if not rest and method == "POST":
            return _answer(201, render.invoice(ops.create_invoice(store, gen, **_snake(body)), store.salt))
        if len(rest) == 1 and method == "PATCH":
            return _answer(200, render.invoice(ops.change_invoice(store, gen, rest[0], body), store.salt))
        if len(rest) == 1 and method == "GET":
            return _answer(200, render.invoice(ops.get_invoice(store, rest[0]), store.salt))
    if resource == "companyprofiles":
        if not rest and method == "POST":
            new, unknown = ops.company_changes(ops.normalise(body))
            if unknown:
                raise ValueError(f"unknown company fields: {', '.join(unknown)}")
            return _answer(201, render.company(ops.create_company(store, new)))
        if len(rest) == 1 and method == "PATCH":
            supplier = ops.get_supplier(store, rest[0])
            new, unknown = ops.company_changes(ops.normalise(body))
            if unknown:
                raise ValueError(f"unknown company fields: {', '.join(unknown)}")
            ops.update_company(store, supplier, new)
            return _answer(200, render.company(supplier))
    return _error(404, "unknown admin path or method")
