"""`SapB1Client`: the engine's async Service Layer client.

    async with SapB1Client("https://erp:50000/b1s/v2", "SBODEMOUS", "manager", password) as b1:
        async for po in b1.query("PurchaseOrders", filter="DocumentStatus eq 'bost_Open'", select="DocEntry"):
            ...
        created = await b1.create("BusinessPartners", {"CardCode": "V1", "CardType": "cSupplier"})

One session per client (Login on first use, Logout at close), a bounded number of requests in
flight, re-login once on 401/301 (SL §2.4). Reads are retried on transient faults with backoff;
writes never are: a write's failure is raised (`ServiceLayerError`, or `TransportError` with
`maybe_committed`) so the loader can look the external reference up before deciding (§4.4).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from http.cookiejar import CookieJar, DefaultCookiePolicy
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

import httpx

from engine import secrets
from engine.errors import ConfigError
from engine.retry import Backoff, parse_retry_after
from engine.sapb1.batch import (
    BatchItem,
    BatchResult,
    assign_content_ids,
    encode_batch,
    match_results,
    parse_batch,
)
from engine.sapb1.errors import ServiceLayerError, transport_error
from engine.sapb1.session import Secret, Session, SessionInfo
from engine.sapb1.url import ServiceRoot, odata_literal

log = logging.getLogger("engine.sapb1")

MAX_CONCURRENCY = 40  # beyond this a Service Layer gains nothing (§12)
KEEPALIVE_EXPIRY = 4.0  # seconds; Apache closes idle connections after 5 (§11.3)
DEFAULT_READ_RETRY = Backoff(attempts=4, base=0.5, cap=8.0)
_QUERY_SAFE = "$'(),:/*@!;"  # left readable in query values; everything else percent-encoded
_REAPPLIED = ("$filter", "$select", "$orderby")


def _option_text(value: str | Iterable[str]) -> str:
    return value if isinstance(value, str) else ",".join(value)


def build_query(options: Mapping[str, str | int | None]) -> str:
    """`$filter=CardName%20eq%20'A%26B'&$top=5`: names kept, values percent-encoded (space as %20)."""
    return "&".join(
        f"{name}={quote(str(value), safe=_QUERY_SAFE)}" for name, value in options.items() if value is not None
    )


def _verify_option(value: Any) -> bool | str:
    """`verify_tls` from YAML or the environment: a boolean, or the path of a CA bundle."""
    if isinstance(value, bool):
        return value
    text = str(value).strip()
    if text.lower() in ("true", "yes", "1", "on"):
        return True
    if text.lower() in ("false", "no", "0", "off"):
        return False
    return text


def _tls_context(verify_tls: bool | str) -> bool | ssl.SSLContext:
    """httpx's `verify`: on or off, or a context trusting the CA bundle (a PEM file, or a directory of them)
    the path names. Raises OSError / ssl.SSLError when the path cannot be loaded."""
    if isinstance(verify_tls, bool):
        return verify_tls
    if Path(verify_tls).is_dir():
        return ssl.create_default_context(capath=verify_tls)
    return ssl.create_default_context(cafile=verify_tls)


class SapB1Client:
    """An async client for one company on one Service Layer."""

    def __init__(
        self,
        service_root: str | ServiceRoot,
        company_db: str,
        username: str,
        password: str | Secret,
        *,
        verify_tls: bool | str = True,
        max_concurrency: int = 8,
        timeout: float = 120.0,
        batch_timeout: float = 300.0,
        read_retry: Backoff = DEFAULT_READ_RETRY,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.root = service_root if isinstance(service_root, ServiceRoot) else ServiceRoot.parse(service_root)
        if not company_db or not username:
            raise ConfigError("SAP B1 connection needs company_db and username")
        if max_concurrency < 1:
            raise ConfigError(f"SAP B1 max_concurrency must be at least 1, not {max_concurrency}")
        if max_concurrency > MAX_CONCURRENCY:
            log.warning("SAP B1 max_concurrency %s capped at %s", max_concurrency, MAX_CONCURRENCY)
        self.max_concurrency = min(max_concurrency, MAX_CONCURRENCY)
        self.timeout = timeout
        self.batch_timeout = batch_timeout
        self.read_retry = read_retry
        self._http = httpx.AsyncClient(
            verify=_tls_context(verify_tls),
            timeout=httpx.Timeout(timeout, connect=min(timeout, 30.0)),
            limits=httpx.Limits(
                max_connections=self.max_concurrency,
                max_keepalive_connections=self.max_concurrency,
                keepalive_expiry=KEEPALIVE_EXPIRY,
            ),
            transport=transport,
            cookies=CookieJar(policy=DefaultCookiePolicy(allowed_domains=[])),  # keep none (§2.3)
            follow_redirects=False,
        )
        self.session = Session(self._http, self.root, company_db, username, password, login_retry=read_retry)
        secrets.register(password.reveal() if isinstance(password, Secret) else password)
        self._slots = asyncio.Semaphore(self.max_concurrency)
        self.requests_sent = 0

    @classmethod
    def from_profile(cls, profile: Mapping[str, Any], **overrides: Any) -> SapB1Client:
        """A client from a resolved `kind: sapb1` connection profile (`Project.connection(name)`)."""
        missing = [key for key in ("service_root", "company_db", "username", "password") if not profile.get(key)]
        if missing:
            raise ConfigError(f"SAP B1 connection profile lacks {', '.join(missing)}")
        options: dict[str, Any] = {}
        try:
            if profile.get("max_concurrency") is not None:
                options["max_concurrency"] = int(profile["max_concurrency"])
            if profile.get("timeout") is not None:
                options["timeout"] = float(profile["timeout"])
        except (TypeError, ValueError):
            raise ConfigError("SAP B1 connection profile: max_concurrency and timeout must be numbers") from None
        if profile.get("verify_tls") is not None:
            options["verify_tls"] = _verify_option(profile["verify_tls"])
        options.update(overrides)
        return cls(profile["service_root"], profile["company_db"], profile["username"], profile["password"], **options)

    def __repr__(self) -> str:
        return f"<SapB1Client {self.session.username}@{self.session.company_db} {self.root}>"

    @property
    def version(self) -> str:
        """The OData root in use: "v1" or "v2"."""
        return self.root.version

    # -- lifecycle ---------------------------------------------------------------------------------

    async def __aenter__(self) -> SapB1Client:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Log out (failures logged) and close the connections."""
        try:
            await self.session.logout()
        finally:
            await self._http.aclose()

    async def login(self) -> SessionInfo:
        """Log in now (otherwise the first request does) and return what Login reported."""
        await self.session.cookie()
        assert self.session.info is not None
        return self.session.info

    # -- the request core --------------------------------------------------------------------------

    def _absolute(self, path: str) -> str:
        if path.startswith(("http://", "https://")):
            return path
        if path.startswith("/"):
            return self.root.origin + path
        return self.root.url(path)

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> httpx.Response:
        """Send one request on the session; return the 2xx response or raise.

        A 401/301 answer triggers one (single-flight) re-login and one replay. Not retried otherwise.
        """
        method = method.upper()
        async with self._slots:
            generation, cookie = await self.session.cookie()
            response = await self._send_once(method, path, cookie, json, content, headers, timeout)
            if response.status_code == 401:
                error = self._error(response, method, path)
                if not error.is_session_timeout:
                    raise error
                await self.session.renew(generation)
                _, cookie = await self.session.cookie()
                response = await self._send_once(method, path, cookie, json, content, headers, timeout)
            if not response.is_success:
                raise self._error(response, method, path)
            return response

    async def _send_once(
        self,
        method: str,
        path: str,
        cookie: str,
        json: Any,
        content: bytes | None,
        headers: Mapping[str, str] | None,
        timeout: float | None,
    ) -> httpx.Response:
        sent_headers = {"Accept": "application/json", **(headers or {}), "Cookie": cookie}
        extra: dict[str, Any] = {}
        if timeout is not None:
            extra["timeout"] = httpx.Timeout(timeout, connect=min(timeout, 30.0))
        started = time.monotonic()
        self.requests_sent += 1
        try:
            response = await self._http.request(
                method, self._absolute(path), json=json, content=content, headers=sent_headers, **extra
            )
        except httpx.HTTPError as exc:
            raise transport_error(method, path, exc) from None
        log.debug("%s %s -> %s in %.0f ms", method, path, response.status_code, (time.monotonic() - started) * 1000)
        return response

    @staticmethod
    def _error(response: httpx.Response, method: str, path: str) -> ServiceLayerError:
        error = ServiceLayerError.from_body(response.status_code, response.text, method=method, path=path)
        error.retry_after = parse_retry_after(response.headers.get("retry-after"))
        return error

    async def _read(self, path: str, headers: Mapping[str, str] | None = None) -> httpx.Response:
        """A GET, retried on transient faults (5xx, 408, 429, dropped connections, timeouts)."""
        return await self.read_retry.run(
            lambda: self.request("GET", path, headers=headers),
            retry_if=lambda exc: bool(getattr(exc, "is_transient", False)),
            describe=f"GET {path}",
        )

    # -- reads -------------------------------------------------------------------------------------

    async def get(self, path: str, **options: str | int | Iterable[str] | None) -> dict[str, Any]:
        """GET one resource (e.g. `entity_path("PurchaseOrders", 12)`) as JSON; query options by name,
        e.g. `get(path, select=["DocEntry", "DocNum"])` sends `$select=DocEntry,DocNum`."""
        query = build_query({
            f"${name}": value if value is None or isinstance(value, str | int) else _option_text(value)
            for name, value in options.items()
        })
        response = await self._read(f"{path}?{query}" if query else path)
        return response.json()

    async def query(
        self,
        entity: str,
        *,
        filter: str | None = None,
        select: str | Iterable[str] | None = None,
        orderby: str | None = None,
        top: int | None = None,
        page_size: int | None = 100,
        headers: Mapping[str, str] | None = None,
    ) -> AsyncIterator[dict[str, Any]]:
        """Every entity matching the options, following next links to the end (§7.2)."""
        options: dict[str, str | int | None] = {
            "$filter": filter,
            "$select": _option_text(select) if select is not None else None,
            "$orderby": orderby,
            "$top": top,
        }
        sent = dict(headers or {})
        if page_size is not None:
            sent["Prefer"] = f"odata.maxpagesize={page_size}"
        query = build_query(options)
        url: str | None = f"{entity}?{query}" if query else entity
        seen: set[str] = set()
        yielded = 0
        while url is not None:
            page = (await self._read(url, sent)).json()
            for row in page.get("value", []):
                if top is not None and yielded >= top:
                    return
                yielded += 1
                yield row
            link = page.get("@odata.nextLink") or page.get("odata.nextLink")
            if not link:
                return
            url = self._next_url(link, options)
            if url in seen:
                raise ServiceLayerError(200, None, f"paging loops on next link {link!r}", method="GET", path=entity)
            seen.add(url)

    def _next_url(self, link: str, options: Mapping[str, str | int | None]) -> str:
        """Resolve a next link (absolute, absolute path, or relative to the root) and re-apply any
        `$filter`/`$select`/`$orderby` it dropped."""
        if link.startswith(("http://", "https://")):
            parts = urlsplit(link)
            link = parts.path + (f"?{parts.query}" if parts.query else "")  # keep our origin
        url = link if link.startswith("/") else self.root.url(link)
        present = {name for name, _ in parse_qsl(urlsplit(url).query, keep_blank_values=True)}
        missing = {name: options[name] for name in _REAPPLIED if options.get(name) and name not in present}
        if missing:
            url += ("&" if "?" in url else "?") + build_query(missing)
        return url

    async def find_by(
        self,
        entity: str,
        field: str,
        value: object,
        *,
        select: str | Iterable[str] | None = None,
        extra_filter: str | None = None,
    ) -> list[dict[str, Any]]:
        """Entities whose `field` equals `value` (e.g. an external reference in a `U_` field)."""
        condition = f"{field} eq {odata_literal(value)}"
        if extra_filter:
            condition = f"{condition} and ({extra_filter})"
        return [row async for row in self.query(entity, filter=condition, select=select)]

    async def count(self, entity: str, filter: str | None = None) -> int:
        """`GET <entity>/$count` (§7.3)."""
        query = build_query({"$filter": filter})
        response = await self._read(f"{entity}/$count" + (f"?{query}" if query else ""))
        text = response.text.strip()
        try:
            return int(float(text))
        except ValueError:
            value = response.json()
            return int(value["value"] if isinstance(value, dict) else value)

    # -- writes (never retried here) ---------------------------------------------------------------

    async def create(self, entity: str, payload: Mapping[str, Any]) -> dict[str, Any]:
        """POST a new entity; the 201 body (the created entity with B1's defaults and keys)."""
        response = await self.request("POST", entity, json=dict(payload))
        if response.status_code == 204 or not response.content:
            return {}
        return response.json()

    async def patch(
        self,
        path: str,
        changes: Mapping[str, Any],
        *,
        replace_collections: bool = False,
        if_match: str | None = None,
    ) -> str | None:
        """PATCH only `changes` (never PUT); returns the new ETag when B1 sends one.

        With `replace_collections` the collections in `changes` replace B1's (members not sent are
        deleted, §8.2); otherwise collection members are merged by identity or appended.
        """
        headers: dict[str, str] = {}
        if replace_collections:
            headers["B1S-ReplaceCollectionsOnPatch"] = "true"
        if if_match:
            headers["If-Match"] = if_match
        response = await self.request("PATCH", path, json=dict(changes), headers=headers)
        return response.headers.get("etag")

    async def action(self, path: str, name: str, *, if_match: str | None = None) -> dict[str, Any] | None:
        """A bound action such as `Close` or `Cancel` on `path` (e.g. `PurchaseOrders(415)`)."""
        headers = {"If-Match": if_match} if if_match else {}
        response = await self.request("POST", f"{path}/{name}", headers=headers)
        return response.json() if response.content else None

    async def batch(self, items: Sequence[BatchItem]) -> list[BatchResult]:
        """Send one `$batch` (§9). Results in request order; fewer than the requests when B1 stopped
        at a failure. A failed change set yields one result carrying its error."""
        prepared = assign_content_ids(items)
        content_type, body = encode_batch(self.root, prepared)
        response = await self.request(
            "POST", "$batch", content=body, headers={"Content-Type": content_type}, timeout=self.batch_timeout
        )
        try:
            parsed = parse_batch(response.headers.get("content-type", ""), response.text)
        except ValueError as exc:
            raise ServiceLayerError(response.status_code, None, str(exc), response.text[:2000],
                                    method="POST", path="$batch") from None
        return match_results(prepared, parsed)

