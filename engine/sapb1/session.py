"""One Service Layer session: Login, the B1SESSION/ROUTEID cookies, single-flight re-login, Logout.

SL §2. The cookies are taken from the Login answer's `Set-Cookie` headers and sent back as an
explicit `Cookie` header (the `B1SESSION=…;HttpOnly;` shape defeats some cookie jars). Requests carry
the session *generation* they used: when one comes back 401/301, `renew(generation)` logs in again
only if nobody has done so since, so concurrent failures cause one Login. A Login refused by the
server (401, 400, …) is never retried: it is remembered and re-raised to every later caller. Only a
Login that got no answer or a 5xx from the balancer — which says nothing about the credentials — is
retried, within the client's read backoff.

A session idle for most of its `SessionTimeout` is renewed before the next request rather than
waiting for the 401/301 (which stays the rule that always works: the timeout in the Login answer is
rounded to whole minutes, so it is used only to save a refused request, never to decide validity).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from engine import secrets
from engine.errors import ConnectorError
from engine.retry import Backoff
from engine.sapb1.errors import LoginError, ServiceLayerError, TransportError, transport_error
from engine.sapb1.url import ServiceRoot

log = logging.getLogger("engine.sapb1")


class Secret:
    """A value that never shows in a repr, str or log line."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__


@dataclass(frozen=True)
class SessionInfo:
    """What a successful Login told us."""

    b1_version: str  # e.g. "1000310"
    session_timeout_minutes: int
    generation: int  # 1 for the first Login, +1 per re-login
    node: str | None = None  # the ROUTEID value, when the balancer set one


def parse_set_cookies(values: list[str]) -> dict[str, str]:
    """`name -> value` from raw `Set-Cookie` header values, tolerant of `B1SESSION=x;HttpOnly;`."""
    cookies: dict[str, str] = {}
    for raw in values:
        first = raw.split(";", 1)[0].strip()
        name, sep, value = first.partition("=")
        if sep and name.strip():
            cookies[name.strip()] = value.strip()
    return cookies


class Session:
    """Login state for one company and user, shared by every request of a client."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        root: ServiceRoot,
        company_db: str,
        username: str,
        password: str | Secret,
        *,
        login_retry: Backoff | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._http = http
        self._clock = clock
        self._last_used = 0.0
        self._login_retry = login_retry or Backoff(attempts=1)
        self._root = root
        self.company_db = company_db
        self.username = username
        self._password = password if isinstance(password, Secret) else Secret(password)
        self._lock = asyncio.Lock()
        self._cookie: str | None = None
        self._failure: ConnectorError | None = None
        self.info: SessionInfo | None = None
        self.logins = 0  # Login requests sent

    def __repr__(self) -> str:
        state = f"generation {self.info.generation}" if self.info and self._cookie else "not logged in"
        return f"<Session {self.username}@{self.company_db} {self._root} ({state})>"

    @property
    def generation(self) -> int:
        return self.info.generation if self.info else 0

    # Renew a session idle for this share of its SessionTimeout before using it again.
    IDLE_REFRESH_SHARE = 0.9

    def _idle_too_long(self) -> bool:
        minutes = self.info.session_timeout_minutes if self.info else 0
        return minutes > 0 and self._clock() - self._last_used > minutes * 60 * self.IDLE_REFRESH_SHARE

    async def cookie(self) -> tuple[int, str]:
        """`(generation, Cookie header value)`, logging in first when there is no session yet, and
        again when the session has been idle for most of its SessionTimeout."""
        if self._cookie is not None and self._failure is None:
            if not self._idle_too_long():
                self._last_used = self._clock()
                return self.generation, self._cookie
            await self.renew(self.generation, reason="idle for most of its SessionTimeout")
        async with self._lock:
            if self._failure is not None:
                raise self._failure
            if self._cookie is None:
                await self._login()
            assert self._cookie is not None
            self._last_used = self._clock()
            return self.generation, self._cookie

    async def renew(self, failed_generation: int, *, reason: str = "timed out") -> None:
        """The session of `failed_generation` was refused (401/301) or is about to expire: log in
        again, once for everyone."""
        async with self._lock:
            if self._failure is not None:
                raise self._failure
            if self._cookie is not None and self.generation != failed_generation:
                return  # another request already logged in again
            log.info("SAP B1 session of %s@%s %s; logging in again", self.username, self.company_db, reason)
            self._cookie = None
            await self._login()

    async def _login(self) -> None:
        """Log in. Only a Login that got no answer or a 5xx (nothing said about the credentials) is
        retried, within `login_retry`; any other refusal is final and remembered (§2.5)."""
        try:
            await self._login_retry.run(
                self._login_once,
                retry_if=lambda exc: bool(getattr(exc, "is_transient", False)),
                describe="SAP B1 Login",
            )
        except TransportError as exc:
            # the Login could not reach the Service Layer: say where, so an unreachable host is plain
            self._failure = TransportError("POST", self._root.url("Login"), exc.cause, request_sent=exc.request_sent,
                                           transient=False)
            raise self._failure from None
        except ConnectorError as exc:
            self._failure = exc
            raise

    async def _login_once(self) -> None:
        body = {"CompanyDB": self.company_db, "UserName": self.username, "Password": self._password.reveal()}
        self.logins += 1
        try:
            response = await self._http.post(self._root.url("Login"), json=body, headers={"Accept": "application/json"})
        except httpx.HTTPError as exc:
            raise transport_error("POST", "Login", exc) from None
        if not response.is_success:
            raise LoginError.from_body(response.status_code, response.text, method="POST", path="Login")
        try:
            data = response.json()
            version = str(data.get("Version", ""))
            timeout = int(data.get("SessionTimeout") or 0)
        except (ValueError, TypeError, AttributeError):
            raise LoginError(response.status_code, None, "the Login answer has no JSON body") from None
        cookies = parse_set_cookies(response.headers.get_list("set-cookie"))
        session_id = cookies.get("B1SESSION") or str(data.get("SessionId") or "")
        if not session_id:
            raise LoginError(response.status_code, None, "the Login answer set no B1SESSION cookie")
        route = cookies.get("ROUTEID")
        self._cookie = f"B1SESSION={session_id}" + (f"; ROUTEID={route}" if route else "")
        secrets.register_cookie(self._cookie)  # never stored, logged or shown
        self.info = SessionInfo(version, timeout, self.generation + 1, route)
        self._last_used = self._clock()
        log.info(
            "logged in to SAP B1 %s as %s@%s (version %s, session timeout %s min)",
            self._root, self.username, self.company_db, version, timeout,
        )

    async def logout(self) -> None:
        """End the session. A failure is logged, never raised (§2.6)."""
        async with self._lock:
            cookie, self._cookie = self._cookie, None
        if cookie is None:
            return
        try:
            response = await self._http.post(self._root.url("Logout"), headers={"Cookie": cookie})
        except httpx.HTTPError as exc:
            log.warning("SAP B1 logout failed: %s", transport_error("POST", "Logout", exc))
            return
        if not response.is_success:
            error = ServiceLayerError.from_body(response.status_code, response.text, method="POST", path="Logout")
            log.warning("SAP B1 logout failed: %s", error)


__all__ = ["Secret", "Session", "SessionInfo", "parse_set_cookies"]
