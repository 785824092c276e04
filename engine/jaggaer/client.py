"""J1P over HTTP: OAuth2 client-credentials tokens, retries, and `returnCode` outcomes (J1P §3, §4.6, §9).

One `J1PClient` per connection and run; it is async (httpx.AsyncClient) so detail reads run with
bounded concurrency. Secrets never appear in logs or exceptions: messages name the URL path and the
connection, never the token, the client secret or a request body.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Self

import httpx
import orjson
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt
from tenacity.wait import wait_base

from engine import secrets
from engine.errors import ConfigError, ConnectorError
from engine.jaggaer.net import fast_transport
from engine.retry import Backoff, parse_retry_after, retry_after_of

log = logging.getLogger("engine.jaggaer")

ACCEPTED_WARNINGS = {"1", "-996"}
TRANSIENT_CODE = "-998"
REFRESH_MARGIN_S = 30.0
UNREACHABLE_AFTER_S = 20.0  # connections failing this long (from the first failed attempt's start): give up
CONNECT_TIMEOUT_S = 10.0
J1P_JITTER = 0.5  # each retry waits in the upper half of its back-off ceiling


@dataclass(frozen=True)
class JaggaerSettings:
    """A resolved `kind: jaggaer` connection profile."""

    name: str
    base_url: str
    token_url: str
    client_id: str
    client_secret: str = field(repr=False)
    max_concurrency: int = 8
    timeout: float = 30.0
    retry_attempts: int = 6
    backoff_initial: float = 1.0
    backoff_max: float = 60.0

    @classmethod
    def from_profile(cls, name: str, profile: Mapping[str, Any]) -> JaggaerSettings:
        retry = profile.get("retry") or {}
        return cls(
            name=name,
            base_url=str(profile["base_url"]).rstrip("/"),
            token_url=str(profile["token_url"]),
            client_id=str(profile["client_id"]),
            client_secret=str(profile["client_secret"]),
            max_concurrency=int(profile.get("max_concurrency") or 8),
            timeout=float(profile.get("timeout") or 30.0),
            retry_attempts=int(retry.get("attempts", 6)),
            backoff_initial=float(retry.get("backoff_initial", 1.0)),
            backoff_max=float(retry.get("backoff_max", 60.0)),
        )

    @property
    def backoff(self) -> Backoff:
        """The one back-off policy (`engine.retry`) with this connection's knobs."""
        return Backoff(attempts=max(1, self.retry_attempts), base=self.backoff_initial, cap=self.backoff_max,
                       jitter=J1P_JITTER)


class J1PError(ConnectorError):
    """A J1P request failed for good: an application `returnCode`, a 4xx, or the retry budget spent."""

    def __init__(self, message: str, *, code: str | None = None, return_message: str = "", path: str = "",
                 transient: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.return_message = return_message
        self.path = path
        # True when the retries ran out on faults that say nothing about the record (5xx, 429, -998, no
        # answer): the record is not bad, the read must be tried again — never quarantined, never skipped
        self.transient = transient


class AuthFailed(ConfigError):
    """The token endpoint refused the client credentials, or a fresh token was refused."""


class HostUnreachable(J1PError):
    """Every connection to the tenant failed for the whole reachability budget: stop, naming the URL."""


class Reachability:
    """One retry budget per host: connection failures (no HTTP answer at all) may go on for
    `budget` seconds, counted from the start of the first failed attempt; then every call of the
    client — retries and concurrent reads included — fails at once with `HostUnreachable`.
    Any HTTP answer (even a 5xx) resets it: the host is there."""

    def __init__(self, url: str, budget: float = UNREACHABLE_AFTER_S, clock: Callable[[], float] = time.monotonic) -> None:
        self.url, self.budget, self.clock = url, budget, clock
        self._first_failure: float | None = None
        self.dead: str | None = None

    def check(self) -> None:
        if self.dead:
            raise HostUnreachable(self.dead, path=self.url, transient=True)

    def answered(self) -> None:
        self._first_failure = None

    def failed(self, started: float, cause: str) -> None:
        """A connection attempt begun at `started` failed; raise `HostUnreachable` once the budget is spent."""
        if self._first_failure is None:
            self._first_failure = started
        waited = self.clock() - self._first_failure
        if waited >= self.budget:
            self.dead = f"JAGGAER at {self.url} is unreachable: {cause}; no answer for {waited:.0f} s"
            raise HostUnreachable(self.dead, path=self.url, transient=True)


class _Transient(Exception):
    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


class _Backoff(wait_base):
    """tenacity's wait for J1P retries, its delay the one policy's (`engine.retry.Backoff`): exponential from
    `initial`, jittered, capped, and at least the server's `Retry-After`."""

    def __init__(self, initial: float, cap: float, offset: int = 0) -> None:
        self.policy = Backoff(base=initial, cap=cap, jitter=J1P_JITTER)
        self.offset = offset

    def __call__(self, retry_state: Any) -> float:
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        return self.policy.delay(retry_state.attempt_number + self.offset, retry_after_of(exc))


class TokenProvider:
    """One cached bearer token per connection, renewed 30 s before expiry and on demand after a 401."""

    def __init__(self, settings: JaggaerSettings, http: httpx.AsyncClient, *, clock: Callable[[], float] = time.monotonic,
                 retrying: Callable[[], AsyncRetrying] | None = None, reach: Reachability | None = None) -> None:
        self._settings = settings
        self._http = http
        self._reach = reach or Reachability(settings.token_url, clock=clock)
        secrets.register(settings.client_secret)
        self._clock = clock
        self._retrying = retrying
        self._lock = asyncio.Lock()
        self._token: str | None = None
        self._renew_at = 0.0
        self.fetches = 0

    async def get(self) -> str:
        if self._token and self._clock() < self._renew_at:
            return self._token
        async with self._lock:
            if self._token and self._clock() < self._renew_at:
                return self._token
            if self._retrying is None:
                await self._fetch()
            else:
                async for attempt in self._retrying():
                    with attempt:
                        await self._fetch()
            assert self._token is not None
            return self._token

    def invalidate(self, token: str) -> None:
        """Drop the cached token if it is still the one the server refused."""
        if self._token == token:
            self._token = None

    async def _fetch(self) -> None:
        s = self._settings
        data = {"grant_type": "client_credentials", "client_id": s.client_id, "client_secret": s.client_secret}
        self._reach.check()
        started = self._reach.clock()
        try:
            response = await self._http.post(s.token_url, data=data, headers={"Accept": "application/json"})
        except httpx.TransportError as exc:
            cause = _cause(exc)
            self._reach.failed(started, f"token endpoint {s.token_url}: {cause}")
            raise _Transient(f"token endpoint {s.token_url} unreachable ({cause})") from None
        self._reach.answered()
        self.fetches += 1
        status = response.status_code
        if status == 429 or status >= 500:
            raise _Transient(f"token endpoint answered {status}", parse_retry_after(response.headers.get("Retry-After")))
        if status in (400, 401):
            raise AuthFailed(
                f"connection '{s.name}': the token endpoint {s.token_url} refused the client credentials "
                f"(HTTP {status} {_oauth_error(response)}); check client_id and client_secret"
            )
        if status != 200:
            raise AuthFailed(f"connection '{s.name}': the token endpoint {s.token_url} answered HTTP {status}")
        try:
            body = response.json()
            token = f"{body.get('token_type') or 'Bearer'} {body['access_token']}"
            secrets.register(str(body["access_token"]))
            lifetime = float(body.get("expires_in") or 300)
        except (ValueError, KeyError, TypeError):
            raise AuthFailed(f"connection '{s.name}': the token endpoint {s.token_url} sent no usable token") from None
        margin = min(REFRESH_MARGIN_S, lifetime / 2)
        self._token = token
        self._renew_at = self._clock() + lifetime - margin


def _cause(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


async def fetch_token(settings: JaggaerSettings) -> None:
    """Get one token with the client's retry budget (`ml-connector check`); raises a `ConnectorError`
    naming the token URL and the cause."""
    async with J1PClient(settings) as client:
        await client.token()


def _oauth_error(response: httpx.Response) -> str:
    try:
        body = response.json()
        return f"{body.get('error', '')}: {body.get('error_description', '')}".strip(": ")
    except ValueError:
        return ""


@dataclass
class Counters:
    requests: int = 0
    retries: int = 0
    warnings: int = 0


class J1PClient:
    """Authenticated GETs against one J1P tenant with retries and `returnCode` handling."""

    def __init__(self, settings: JaggaerSettings, *, transport: httpx.AsyncBaseTransport | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        limits = httpx.Limits(max_connections=settings.max_concurrency + 2,
                              max_keepalive_connections=settings.max_concurrency + 2)
        timeout = httpx.Timeout(settings.timeout, connect=min(settings.timeout, CONNECT_TIMEOUT_S))
        self._http = httpx.AsyncClient(timeout=timeout, limits=limits,
                                       transport=transport if transport is not None else fast_transport(limits),
                                       headers={"Accept": "application/json"})
        self.reach = Reachability(settings.base_url, clock=clock)
        # No retry loop of its own: a token fetch happens inside a request, whose retries cover it
        # (retries nested in retries made an unreachable tenant take ten minutes to report).
        self.tokens = TokenProvider(settings, self._http, clock=clock, reach=self.reach)
        self.counters = Counters()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    def _retrying(self, attempts: int | None = None, offset: int = 0) -> AsyncRetrying:
        s = self.settings

        def count(_: Any) -> None:
            self.counters.retries += 1

        return AsyncRetrying(
            stop=stop_after_attempt(max(1, attempts if attempts is not None else s.retry_attempts)),
            wait=_Backoff(s.backoff_initial, s.backoff_max, offset),
            retry=retry_if_exception_type(_Transient),
            before_sleep=count,
            reraise=True,
        )

    async def get(self, path: str, params: Mapping[str, str] | None = None) -> dict[str, Any]:
        """GET `<base_url><path>`: retried while transient; raises J1PError on a definitive failure."""
        return (await self.get_raw(path, params))[0]

    async def token(self) -> str:
        """A bearer token, fetched with the same retries and budget as a request."""
        return await self._with_retries(self.tokens.get, self.settings.token_url)

    async def get_raw(self, path: str, params: Mapping[str, str] | None = None) -> tuple[dict[str, Any], bytes]:
        """Like `get`, plus the body exactly as the server sent it (staged as the raw record)."""
        return await self._with_retries(lambda: self._get_once(path, params), path)

    async def _with_retries(self, call: Callable[[], Any], path: str) -> Any:
        s = self.settings
        try:
            return await call()  # the common case, without the retry machinery
        except _Transient as exc:
            failure = exc
        try:
            if s.retry_attempts <= 1:
                raise failure
            self.counters.retries += 1
            await asyncio.sleep(s.backoff.delay(1, failure.retry_after))
            async for attempt in self._retrying(attempts=s.retry_attempts - 1, offset=1):
                with attempt:
                    return await call()
        except _Transient as exc:
            raise J1PError(f"{s.base_url}{path if path.startswith('/') else ''}: gave up after {s.retry_attempts} "
                           f"attempts: {exc.reason}", code=TRANSIENT_CODE if "returnCode -998" in exc.reason else None,
                           return_message=exc.reason, path=path, transient=True) from None
        raise AssertionError("unreachable")  # pragma: no cover

    async def _get_once(self, path: str, params: Mapping[str, str] | None) -> tuple[dict[str, Any], bytes]:
        response = await self._send_once("GET", path, params=params)
        return self._outcome(response, path), response.content

    async def _send_once(self, method: str, path: str, *, headers: Mapping[str, str] | None = None,
                         **request: Any) -> httpx.Response:
        """One request with the connection's token: a refused token is renewed and the request sent once more
        (a second 401 is `AuthFailed`); no answer at all is `_Transient` and counts against the reachability
        budget. The response as it came (`_outcome` reads it)."""
        url = self.settings.base_url + path
        for fresh in (False, True):
            token = await self.tokens.get()
            self.counters.requests += 1
            self.reach.check()
            started = self.reach.clock()
            try:
                response = await self._http.request(method, url, headers={**(headers or {}), "Authorization": token},
                                                    **request)
            except (httpx.TransportError, httpx.TimeoutException) as exc:
                self.reach.failed(started, f"{url}: {_cause(exc)}")
                raise _Transient(f"{url}: connection failed ({_cause(exc)})") from None
            self.reach.answered()
            if response.status_code == 401:
                # Decide on the status alone: no WWW-Authenticate, a bare '; charset' content type (§3.4).
                self.tokens.invalidate(token)
                if fresh:
                    raise AuthFailed(f"connection '{self.settings.name}': a freshly issued token was refused (401) "
                                     f"on {path}")
                continue
            return response
        raise AssertionError("unreachable")  # pragma: no cover

    def _outcome(self, response: httpx.Response, path: str) -> dict[str, Any]:
        status = response.status_code
        if status == 429:
            raise _Transient("rate limited (429)", parse_retry_after(response.headers.get("Retry-After")))
        if status >= 500:
            raise _Transient(f"HTTP {status}")
        body: Any = None
        try:
            body = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            if status == 200:
                raise _Transient("HTTP 200 with a body that is not JSON") from None
        code = str(body.get("returnCode")) if isinstance(body, dict) and "returnCode" in body else None
        message = str(body.get("returnMessage", "")) if isinstance(body, dict) else ""
        if status != 200:
            raise J1PError(f"{path}: HTTP {status}" + (f", returnCode {code}: {message}" if code else ""),
                           code=code or str(status), return_message=message, path=path)
        if not isinstance(body, dict):
            raise J1PError(f"{path}: expected a JSON object, got {type(body).__name__}", path=path)
        if code is None or code == "0":
            return body
        if code in ACCEPTED_WARNINGS:
            self.counters.warnings += 1
            log.warning("J1P %s answered returnCode %s (accepted): %s", path, code, message)
            return body
        if code == TRANSIENT_CODE:
            raise _Transient(f"returnCode -998: {message}")
        raise J1PError(f"{path}: returnCode {code}: {message}", code=code, return_message=message, path=path)
