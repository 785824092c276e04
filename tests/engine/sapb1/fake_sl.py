"""An in-process Service Layer stand-in for unit tests (httpx.MockTransport), per the contract.

Only what the client's unit tests need: Login/Logout with the real cookie shape, 401/301 on a bad
session, both error envelopes, canned routes. End-to-end behaviour is tested against the simulator.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

Route = Callable[[httpx.Request], httpx.Response]


def envelope(version: str, code: int, message: str) -> dict:
    if version == "v1":
        return {"error": {"code": code, "message": {"lang": "en-us", "value": message}}}
    return {"error": {"code": str(code), "details": [{"code": "", "message": ""}], "message": message}}


@dataclass
class FakeServiceLayer:
    version: str = "v2"
    company: str = "SBODEMOUS"
    user: str = "manager"
    password: str = "s3cret-pw"
    routes: dict[tuple[str, str], Route] = field(default_factory=dict)  # (method, path after root) -> handler
    sessions: set[str] = field(default_factory=set)
    logins: int = 0
    logouts: int = 0
    requests: list[httpx.Request] = field(default_factory=list)
    login_status: tuple[int, int, str] | None = None  # force a Login failure

    @property
    def root(self) -> str:
        return f"http://127.0.0.1:50000/b1s/{self.version}"

    def error(self, status: int, code: int, message: str) -> httpx.Response:
        return httpx.Response(status, json=envelope(self.version, code, message))

    def expire_sessions(self) -> None:
        self.sessions.clear()

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        prefix = f"/b1s/{self.version}/"
        path = request.url.raw_path.decode().split("?", 1)[0]
        resource = path[len(prefix):] if path.startswith(prefix) else path
        if request.method == "POST" and resource == "Login":
            return self._login(request)
        cookies = dict(
            part.strip().split("=", 1) for part in request.headers.get("cookie", "").split(";") if "=" in part
        )
        if cookies.get("B1SESSION") not in self.sessions:
            return self.error(401, 301, "Invalid session or session already timeout.")
        if request.method == "POST" and resource == "Logout":
            self.sessions.discard(cookies["B1SESSION"])
            self.logouts += 1
            return httpx.Response(204)
        route = self.routes.get((request.method, resource))
        if route is None:
            return self.error(404, -1000, f"Resource not found for the segment '{resource}'.")
        return route(request)

    def _login(self, request: httpx.Request) -> httpx.Response:
        self.logins += 1
        if self.login_status:
            status, code, message = self.login_status
            return self.error(status, code, message)
        body = json.loads(request.content)
        if (body.get("CompanyDB"), body.get("UserName"), body.get("Password")) != (
            self.company, self.user, self.password,
        ):
            return self.error(401, 100000027, "Login failed")
        session = str(uuid.uuid4())
        self.sessions.add(session)
        headers = [
            ("Set-Cookie", f"B1SESSION={session};HttpOnly;"),
            ("Set-Cookie", "ROUTEID=.node1; path=/b1s"),
        ]
        return httpx.Response(
            200, headers=headers, json={"SessionId": session, "Version": "1000310", "SessionTimeout": 30}
        )
