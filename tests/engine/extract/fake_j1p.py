"""An in-process J1P stand-in for unit tests (httpx.MockTransport): token endpoint, purchase-order
list with the flt subset the keyset read uses, and single-record reads. End-to-end tests use the
real simulator over sockets instead."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

LIST = "/j1p/api/public/je/v1/purchaseorders"
TOKEN = "/auth/realms/J1p-integrations/protocol/openid-connect/token"
BASE = "http://127.0.0.1:8443"


def stamp(second: int, ms: int = 0) -> str:
    return f"2024-05-02T13:{second // 60:02d}:{second % 60:02d}.{ms:03d}Z"


@dataclass
class FakeJ1P:
    page_size: int = 3
    orders: dict[int, dict[str, Any]] = field(default_factory=dict)
    tokens: set[str] = field(default_factory=set)
    expires_in: int = 300
    log: list[str] = field(default_factory=list)
    # faults: callables deciding per request; return an httpx.Response to short-circuit
    faults: list[Callable[[httpx.Request], httpx.Response | None]] = field(default_factory=list)
    after_list: Callable[[int], None] | None = None
    list_calls: int = 0
    token_calls: int = 0

    def add(self, po_id: int, last_update: str, status: str = "Completed", **header: Any) -> None:
        self.orders[po_id] = {"header": {"purchaseOrderId": po_id, "poNumber": f"{po_id:010d}", "lastUpdate": last_update,
                                         "workflowStatus": status, **header},
                              "lineList": {"purchaseOrderLine": [{"lineNumber": 1, "quantity": 1}]}}

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def handle(self, request: httpx.Request) -> httpx.Response:
        url = urlsplit(str(request.url))
        self.log.append(f"{request.method} {url.path}?{url.query}")
        for fault in self.faults:
            if (answer := fault(request)) is not None:
                return answer
        if url.path == TOKEN:
            self.token_calls += 1
            form = parse_qs(request.content.decode())
            if form.get("client_secret") != ["secret"]:
                return httpx.Response(401, json={"error": "invalid_client", "error_description": "Invalid client or Invalid client credentials"})
            token = f"tok{len(self.tokens) + 1}"
            self.tokens.add(token)
            return httpx.Response(200, json={"access_token": token, "expires_in": self.expires_in, "token_type": "Bearer"})
        if request.headers.get("Authorization", "").removeprefix("Bearer ") not in self.tokens:
            return httpx.Response(401, headers={"Content-Type": "; charset=UTF-8"})
        if url.path == LIST:
            return self._list(parse_qs(url.query))
        if m := re.fullmatch(LIST + r"/(\d+)", url.path):
            po = self.orders.get(int(m.group(1)))
            if po is None:
                return httpx.Response(200, json={"returnCode": 2, "returnMessage": f"Record not found: {m.group(1)}"})
            return httpx.Response(200, content=json.dumps(po))
        return httpx.Response(404, json={"returnCode": 2, "returnMessage": "Resource not found"})

    def _list(self, query: dict[str, list[str]]) -> httpx.Response:
        self.list_calls += 1
        rows = sorted(self.orders.values(), key=lambda o: (o["header"]["lastUpdate"], o["header"]["purchaseOrderId"]))
        for constraint in query.get("flt", [""])[0].split(";"):
            if not constraint:
                continue
            m = re.fullmatch(r"(\w+)(==|=ge=|=gt=)(.+)", constraint)
            if not m:
                return httpx.Response(200, json={"returnCode": 2, "returnMessage": f"Invalid filter expression: {constraint}"})
            key, op, value = m.groups()
            if key not in ("lastUpdate", "purchaseOrderId", "workflowStatus"):
                return httpx.Response(200, json={"returnCode": 2, "returnMessage": f"Invalid filter field: {key}",
                                                 "totRecords": 0, "returnedRecords": 0})
            conv = int if key == "purchaseOrderId" else str
            ops = {"==": lambda a, b: a == b, "=ge=": lambda a, b: a >= b, "=gt=": lambda a, b: a > b}
            rows = [r for r in rows if ops[op](conv(r["header"][key]), conv(value))]
        start = int(query.get("start", ["1"])[0])
        page = rows[start - 1:start - 1 + self.page_size]
        body = {"returnCode": 0, "returnMessage": "", "totRecords": len(rows), "returnedRecords": len(page),
                "startAt": start, "jepurchaseorderList": {"jepurchaseorder": [{"header": dict(r["header"])} for r in page]}}
        if self.after_list:
            self.after_list(self.list_calls)
        return httpx.Response(200, content=json.dumps(body))
