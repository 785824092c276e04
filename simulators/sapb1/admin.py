"""Admin endpoints outside `/b1s` (never faulted, never counted):

    GET   /_sim/knobs                 current knobs
    PATCH /_sim/knobs                 {"latency_ms": 20, ...} -> takes effect at once (400 on unknown names)
    POST  /_sim/sessions/expire       kill every session (next call -> 401/301)
    GET   /_sim/dump/<EntitySet>      every stored record of the set, as stored
    GET   /_sim/counters              requests and committed writes per method and entity
    POST  /_sim/reset                 back to the seed (`?seed=demo|empty`), counters zeroed
    GET   /_sim/health                {"ok": true}
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, unquote

from simulators.http import Request, Response
from simulators.sapb1.entities import ENTITY_SETS

if TYPE_CHECKING:
    from simulators.sapb1.app import ServiceLayerApp


def _json(status: int, value: Any) -> Response:
    return Response(status, [("Content-Type", "application/json")], json.dumps(value, default=str).encode())


def handle_admin(app: ServiceLayerApp, request: Request) -> Response:
    path = unquote(request.raw_path)[len("/_sim/"):].strip("/")
    method = request.method
    if path == "health":
        return _json(200, {"ok": True})
    if path == "knobs":
        if method == "GET":
            return _json(200, app.knobs.as_dict())
        if method in ("PATCH", "POST"):
            try:
                changes = json.loads(request.body or b"{}")
            except ValueError:
                return _json(400, {"error": "body is not JSON"})
            if not isinstance(changes, dict):
                return _json(400, {"error": "body must be a JSON object"})
            unknown = [name for name in changes if name not in app.knobs.as_dict()]
            if unknown:
                return _json(400, {"error": f"unknown knobs: {', '.join(sorted(unknown))}"})
            try:
                app.knobs.update(changes)
            except (TypeError, ValueError) as exc:
                return _json(400, {"error": f"bad knob value: {exc}"})
            return _json(200, app.knobs.as_dict())
    if path == "sessions/expire" and method == "POST":
        return _json(200, {"expired": app.sessions.expire_all()})
    if path.startswith("dump/") and method == "GET":
        name = path[len("dump/"):]
        if name not in ENTITY_SETS:
            return _json(404, {"error": f"unknown entity set {name!r}"})
        return _json(200, app.store.all(name))
    if path == "counters" and method == "GET":
        return _json(200, app.counters())
    if path == "reset" and method == "POST":
        seed = dict(parse_qsl(request.query_string)).get("seed", app.config.seed)
        reset(app, seed)
        return _json(200, {"ok": True, "seed": seed})
    return _json(404, {"error": f"unknown admin endpoint /_sim/{path}"})


def reset(app: ServiceLayerApp, seed: str) -> None:
    app.store.reset()
    app.sessions.expire_all()
    app.requests.clear()
    app.by_entity.clear()
    app.logins = 0
    app.webhooks.pending.clear()
    if seed == "demo":
        from simulators.sapb1.seed import load_demo

        load_demo(app.rules)
    else:
        app.store.save()
