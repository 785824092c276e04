"""What is wrong with a project's connections, one diagnosis per problem: `ml-connector check`'s core.

    results = asyncio.run(check_connections(project))            # every connection, concurrently
    results = asyncio.run(check_connections(project, ["sapb1"]))  # or those named
    for result in results:
        result.ok, result.detail, [(f.code, f.message, f.hint) for f in result.findings]

Returns results, prints nothing, never raises for one failing system. Each `ConnectionCheck` carries
`findings`: a code (`FINDING_CODES`), a severity (`error` makes the connection fail; `warning` is
something a run deals with itself, e.g. a user field it creates), a message naming the URL, table or
row, a hint saying what to do, and the facts as fields (`url`, `table`, `row`, `value`, ...).

SAP B1 (contract: docs/apis/sapb1-service-layer.md): one Login with the engine's own client, as a run
logs in. A refused Login is told apart by HTTP status and B1 code (§2.5), never by message text: -304
the company database, 100000027 user or password, 100000055 a locked user; an answer without a Service
Layer envelope means the URL is not a Service Layer. A failure without an answer is diagnosed from the
exception under the client's (socket, DNS, TLS: `ssl.SSLError`), with one extra probe when the cause
could be the scheme (https to a plain-HTTP port, or http to a TLS port). After Login, read only:
`UserFieldsMD` for the `U_` reference fields the pipelines write (never created here: `run` does that,
§5.11), and B1's codes against every code the pipelines' rule tables can produce (the mapping's
`check_codes` over `fetch_reference_codes`, exactly as a run checks them).

JAGGAER (docs/apis/jaggaer-j1p.md): two requests of its own rather than `J1PClient`, so that each answer
is judged by its status and OAuth `error` field (§3.3) rather than by an exception's text: the token
request, then ONE authenticated GET (a company-profile list filtered to nothing). A 401 on that fresh
token means the token endpoint belongs to another tenant than `base_url` (§2.2, §3.4).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from engine import secrets
from engine.errors import ConfigError, ConnectorError
from engine.kinds import CONNECTION_KINDS, SapB1Target
from engine.project import TOKEN_PATH, Project
from engine.retry import Backoff

# -- results ---------------------------------------------------------------------------------------------

ERROR = "error"
WARNING = "warning"

FINDING_CODES = {
    "config": "the connection profile cannot be used as it is (missing value, invalid URL, unknown kind)",
    "unreachable": "no connection, or no answer: connection refused, host name unknown, timeout",
    "tls": "the TLS handshake failed: certificate not trusted, or https and http mixed up",
    "unavailable": "the server answered, but with a fault (5xx, 429) that says nothing about the settings",
    "not_service_layer": "the service root answers, but not as an SAP B1 Service Layer",
    "company_db": "SAP B1 does not know the company database",
    "credentials": "user and password (SAP B1) or client id and secret (JAGGAER) refused, or the user locked",
    "login_refused": "SAP B1 refused the Login for another reason (its code is given)",
    "tenant": "the token endpoint is not the tenant's, or the tenant's API refuses its token",
    "token_refused": "the token endpoint refused the request for a reason other than the credentials",
    "not_j1p_api": "base_url answers, but not as the J1P API",
    "api_refused": "the J1P API refused the check's request (authorisation, or another 4xx)",
    "user_field_missing": "a U_ field the pipelines write is missing (a run creates it)",
    "user_fields_unreadable": "the user-defined fields could not be read (authorisation)",
    "reference_codes_unreadable": "B1's accounts, distribution rules or projects could not be read",
    "rule_code_missing": "a rule table can produce a code SAP B1 lacks",
    "pipelines_unchecked": "the pipelines or their mappings could not be loaded, so their needs were not checked",
    "service_root": "the service root works but is unusual (plain http to another host, no port)",
    "unexpected": "the check itself failed in a way it does not diagnose (the message keeps the error's type)",
}


@dataclass(frozen=True)
class Finding:
    """One diagnosis: what is wrong (`message`), what to do (`hint`), and the facts as fields."""

    code: str
    message: str
    hint: str
    severity: str = ERROR
    url: str | None = None
    facts: Mapping[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"code": self.code, "severity": self.severity, "message": self.message,
                               "hint": self.hint}
        if self.url:
            out["url"] = self.url
        out.update(self.facts)
        return out


@dataclass(frozen=True)
class ConnectionCheck:
    """The check of one connection: ok when no finding is an error. `detail` is one line: what worked,
    or the errors' messages."""

    name: str
    kind: str
    ok: bool
    detail: str
    findings: tuple[Finding, ...] = ()

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == ERROR]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity != ERROR]

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "ok": self.ok, "detail": self.detail,
                "findings": [f.as_dict() for f in self.findings]}


def _result(name: str, kind: str, findings: Iterable[Finding], success: str = "") -> ConnectionCheck:
    found = tuple(sorted(findings, key=lambda f: f.severity != ERROR))  # errors first, each group in order
    errors = [f.message for f in found if f.severity == ERROR]
    return ConnectionCheck(name, kind, not errors, "; ".join(errors) if errors else success, found)


# -- the checks ------------------------------------------------------------------------------------------

CHECK_DEADLINE_S = 150.0  # one connection's whole check; every request has its own, shorter timeout
REQUEST_TIMEOUT_S = 60.0  # a check waits no longer for one answer (a real Login takes 3-8 s, §12)
CONNECT_TIMEOUT_S = 10.0
# a check makes one more attempt after a fault that says nothing about the settings (5xx, dropped answer)
CHECK_RETRY = Backoff(attempts=2, base=0.5, cap=1.0)


async def check_connections(project: Project, names: Sequence[str] | None = None, *,
                            transports: Mapping[str, httpx.AsyncBaseTransport] | None = None) -> list[ConnectionCheck]:
    """Check the named connections (default: all) concurrently, in the order named. Never raises for one
    failing system: every failure is a finding. `transports` (tests) replaces the HTTP transport per name."""
    names = list(names or project.connections)
    kinds = {name: str((project.connections.get(name) or {}).get("kind", "?")) for name in names}
    pipelines: list[Any] | Exception = []
    if "sapb1" in kinds.values():
        pipelines = _load_pipelines(project)

    async def one(name: str) -> ConnectionCheck:
        kind = kinds[name]
        transport = (transports or {}).get(name)
        try:
            profile = project.connection(name)
            if kind not in CONNECTION_KINDS:
                return _result(name, kind, [Finding("config", f"connection '{name}' has the unknown kind {kind!r}",
                                                    f"kind is one of {', '.join(CONNECTION_KINDS)}")])
            check = CONNECTION_KINDS[kind].checker()  # check_sapb1, check_jaggaer
            work = check(name, profile, pipelines=pipelines, root=Path(project.root), transport=transport)
            return await asyncio.wait_for(work, CHECK_DEADLINE_S)
        except ConfigError as exc:
            return _result(name, kind, [Finding("config", str(exc), "fix the connection in ml-connector.yaml "
                                                "(or the environment variable or stored credential it names)")])
        except TimeoutError:
            return _result(name, kind, [Finding("unreachable", f"connection '{name}': no result within "
                                                f"{CHECK_DEADLINE_S:.0f} s", "check the network path to the system")])
        except Exception as exc:  # a check reports, never crashes: keep the type, never a traceback
            text = secrets.redact_text(str(exc))
            return _result(name, kind, [Finding("unreachable" if isinstance(exc, OSError) else "unexpected",
                                                f"connection '{name}': {type(exc).__name__}: {text}",
                                                "see the message; if it does not say what to change, report it")])

    return list(await asyncio.gather(*(one(name) for name in names)))


def _load_pipelines(project: Project) -> list[Any] | Exception:
    """The project's pipelines (loaded with it, else now), or the error that kept them from loading (reported,
    not raised: `check` works on a project whose pipelines are invalid)."""
    from engine.project import add_pipelines

    if project.pipelines:
        return list(project.pipelines)
    try:
        return list(add_pipelines(project, check_mappings=False).pipelines)
    except Exception as exc:
        return exc


# -- transport failures ----------------------------------------------------------------------------------


def _chain(exc: BaseException) -> list[BaseException]:
    """`exc` and what it was raised from or while handling (the clients raise `from None` inside an
    `except`: the context is still there), outermost first."""
    out: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and all(current is not seen for seen in out):
        out.append(current)
        current = current.__cause__ or current.__context__
    return out


def _host_port(url: str) -> tuple[str, int, str]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    return parts.hostname or "", parts.port or (443 if scheme == "https" else 80), scheme


async def _speaks_tls(host: str, port: int, timeout: float = 3.0) -> bool:
    """Does the port complete a TLS handshake (certificate not checked)? A diagnostic probe only."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port, ssl=context), timeout)
    except (OSError, ssl.SSLError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(Exception):
        await asyncio.wait_for(writer.wait_closed(), 1.0)
    return True


async def _speaks_http(host: str, port: int, timeout: float = 3.0) -> bool:
    """Does the port answer a plain-HTTP request? A diagnostic probe only."""
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    except (OSError, TimeoutError):
        return False
    try:
        writer.write(f"GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        await asyncio.wait_for(writer.drain(), timeout)
        return (await asyncio.wait_for(reader.readexactly(5), timeout)) == b"HTTP/"
    except (OSError, TimeoutError, asyncio.IncompleteReadError):
        return False
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(writer.wait_closed(), 1.0)


async def _transport_finding(exc: BaseException, url: str, *, system: str, trust_hint: str) -> Finding:
    """Diagnose a request that got no HTTP answer, from the exceptions under `exc`."""
    chain = _chain(exc)
    http_error = next((e for e in chain if isinstance(e, httpx.HTTPError)), None)
    shown = http_error if http_error is not None else chain[-1]
    cause = f"{type(shown).__name__}: {shown}" if str(shown) else type(shown).__name__
    host, port, scheme = _host_port(url)
    where = f"{host}:{port}"
    https_url = url.replace("http://", "https://", 1)
    http_url = url.replace("https://", "http://", 1)

    verify = next((e for e in chain if isinstance(e, ssl.SSLCertVerificationError)), None)
    if verify is not None:
        reason = verify.verify_message or verify.reason or "certificate verify failed"
        return Finding("tls", f"{system} at {url}: the server's certificate is not trusted: {reason} ({cause})",
                       trust_hint, url=url)
    tls_error = next((e for e in chain if isinstance(e, ssl.SSLError)), None)
    if tls_error is not None:
        reason = tls_error.reason or type(tls_error).__name__
        if scheme == "https" and await _speaks_http(host, port):
            return Finding("tls", f"{system} at {url}: the TLS handshake failed ({reason}; {cause}): "
                           f"{where} speaks plain HTTP, not https",
                           f"use the port that serves https, or {http_url} if this port is meant to be used "
                           "(plain http is allowed only to a loopback host)", url=url)
        return Finding("tls", f"{system} at {url}: the TLS handshake failed ({reason}; {cause})",
                       "check that the port serves https and that its TLS version and ciphers are current", url=url)
    if any(isinstance(e, socket.gaierror) for e in chain):
        return Finding("unreachable", f"{system} at {url} is unreachable: the host name {host!r} does not resolve "
                       f"({cause})", "check the host name in the URL and this machine's DNS", url=url)
    if any(isinstance(e, ConnectionRefusedError) for e in chain):
        return Finding("unreachable", f"{system} at {url} is unreachable: connection refused at {where}, nothing "
                       f"listens there ({cause})", "check the port in the URL and that the service is running "
                       "(and that no firewall rejects the connection)", url=url)
    if any(isinstance(e, httpx.ConnectTimeout) for e in chain):
        return Finding("unreachable", f"{system} at {url} is unreachable: no connection to {where} within the "
                       f"timeout ({cause})", "check the host and port, and that a firewall lets this machine "
                       "through", url=url)
    if any(isinstance(e, httpx.TimeoutException) for e in chain):
        return Finding("unreachable", f"{system} at {url}: connected, but no answer within the timeout ({cause})",
                       "the service is hanging or overloaded: check it, then try again", url=url)
    if any(isinstance(e, httpx.RemoteProtocolError | httpx.ReadError) for e in chain):
        if scheme == "http" and await _speaks_tls(host, port):
            return Finding("tls", f"{system} at {url}: the server closed the connection without an answer: "
                           f"{where} speaks TLS ({cause})", f"use https: {https_url}", url=url)
        return Finding("unreachable", f"{system} at {url}: the connection was closed without an answer ({cause})",
                       "check that the URL's port is the service's (a proxy or another service may sit there)",
                       url=url)
    return Finding("unreachable", f"{system} at {url} is unreachable ({cause})",
                   "check the URL and the network path to the service", url=url)


# -- SAP B1 ---------------------------------------------------------------------------------------------

SL_TRUST_HINT = ("SAP B1's certificate is self-signed out of the box: set verify_tls to the path of the CA bundle "
                 "(PEM) that signed it; verify_tls: false turns verification off (a trusted network only)")


async def check_sapb1(name: str, profile: Mapping[str, Any], *, pipelines: Sequence[Any] | Exception = (),
                      root: Path = Path("."), transport: httpx.AsyncBaseTransport | None = None) -> ConnectionCheck:
    """Log in (nothing else if that fails), then check the user fields and rule-table codes of the
    pipelines that write to this connection; log out."""
    from engine.sapb1 import LoginError, SapB1Client, TransportError

    url = str(profile.get("service_root") or "")
    try:
        timeout = min(float(profile.get("timeout") or REQUEST_TIMEOUT_S), REQUEST_TIMEOUT_S)
    except (TypeError, ValueError):
        raise ConfigError(f"connection '{name}': timeout must be a number of seconds") from None
    overrides: dict[str, Any] = {"read_retry": CHECK_RETRY, "max_concurrency": 4, "timeout": timeout}
    if transport is not None:
        overrides["transport"] = transport
    try:
        client = SapB1Client.from_profile(profile, **overrides)
    except (OSError, ssl.SSLError) as exc:  # verify_tls names a CA bundle that cannot be loaded
        return _result(name, "sapb1", [Finding(
            "tls", f"SAP B1 at {url}: the CA bundle verify_tls names cannot be used ({type(exc).__name__}: {exc})",
            "verify_tls is true, false, or the path of a readable PEM file of CA certificates", url=url)])
    login_url = client.root.url("Login")
    findings: list[Finding] = [Finding("service_root", warning, "fix service_root if this is not intended",
                                       WARNING, url=str(client.root)) for warning in client.root.warnings]
    async with client:
        try:
            info = await client.login()
        except LoginError as exc:
            return _result(name, "sapb1", [*findings, _login_finding(exc, login_url, profile)])
        except TransportError as exc:
            return _result(name, "sapb1", [*findings, await _transport_finding(
                exc, login_url, system="SAP B1 Service Layer", trust_hint=SL_TRUST_HINT)])
        success = (f"logged in to {client.root} as {profile['username']}@{profile['company_db']}: "
                   f"B1 version {info.b1_version}, session timeout {info.session_timeout_minutes} min")
        if isinstance(pipelines, Exception):
            findings.append(Finding(
                "pipelines_unchecked", f"the pipelines were not checked against SAP B1: {pipelines}",
                "run `ml-connector validate` and fix what it reports", WARNING))
            return _result(name, "sapb1", findings, success)
        specs = [s for s in pipelines if s.target.connection == name and isinstance(s.target, SapB1Target)]
        fields, codes = await asyncio.gather(_user_field_findings(client, specs, profile),
                                             _rule_code_findings(client, specs, root, profile))
        findings += fields + codes
        done = []
        if specs:
            done.append(f"{len(specs)} pipeline(s) writing here checked: user fields and rule-table codes")
        return _result(name, "sapb1", findings, "; ".join([success, *done]))


def _login_finding(exc: Any, url: str, profile: Mapping[str, Any]) -> Finding:
    """A refused Login, by HTTP status and B1 code (§2.5), never by message text."""
    status, code = exc.status, exc.code
    user, company = profile.get("username"), profile.get("company_db")
    answered = f"HTTP {status}" + (f", code {code}" if code is not None else "")
    facts = {"http_status": status, "b1_code": code}
    if exc.is_transient:
        return Finding("unavailable", f"SAP B1 at {url} answered the Login with {answered}: the Service Layer "
                       "or its balancer is down or overloaded", "try again later; GET /ping/load-balancer on the "
                       "server tells the balancer from the nodes (§11.1)", url=url, facts=facts)
    if code is None or status == 404 or status < 400:
        what = "no Service Layer session" if status < 300 else "no Service Layer error envelope"
        return Finding("not_service_layer", f"{url} answered the Login with {answered} and {what}: this is not "
                       "an SAP B1 Service Layer", "service_root is the Service Layer's root, e.g. "
                       "https://<host>:50000/b1s/v2 (the balancer) or a node's port; check host, port and path",
                       url=url, facts=facts)
    if code == -304:
        return Finding("company_db", f"SAP B1 at {url} does not know the company database {company!r} "
                       f"({answered}: {exc.message})", f"company_db is the company's database name as SAP B1 lists "
                       f"it (e.g. SBODEMOUS; case matters). If {company!r} is right, the server's SLD binding is "
                       "broken (some installations answer -304 for a wrong password too)", url=url, facts=facts)
    if code == 100000027:
        return Finding("credentials", f"SAP B1 at {url} refused user {user!r} on {company!r}: wrong user name or "
                       f"password ({answered})", "check username and password (the password comes from the "
                       "environment or the credential store); repeated refused Logins may lock the user",
                       url=url, facts=facts)
    if code == 100000055:
        return Finding("credentials", f"SAP B1 at {url}: user {user!r} is locked ({answered})",
                       "unlock the user in SAP B1 (Administration > Setup > General > Users) or wait for the "
                       "lock to expire", url=url, facts=facts)
    return Finding("login_refused", f"SAP B1 at {url} refused the Login of {user!r} on {company!r} "
                   f"({answered}: {exc.message})", "check the company database, user name and password; the code "
                   "is SAP B1's", url=url, facts=facts)


async def _user_field_findings(client: Any, specs: Sequence[Any], profile: Mapping[str, Any]) -> list[Finding]:
    """The `U_` reference fields the pipelines write: present in `UserFieldsMD`? Read, never created."""
    from engine.sapb1 import ServiceLayerError, TransportError, odata_literal
    from engine.sapb1.entities import ENTITIES

    needed: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for spec in specs:
        ref, entity = spec.target.external_ref, spec.target.entity
        if ref.startswith("U_") and entity in ENTITIES:
            needed.setdefault((ENTITIES[entity].user_field_table, ref[2:]), []).append((spec.name, entity))
    if not needed:
        return []

    async def present(table: str, field_name: str) -> bool:
        rows = await client.find_by("UserFieldsMD", "TableName", table,
                                    extra_filter=f"Name eq {odata_literal(field_name)}", select="TableName,Name")
        return bool(rows)

    keys = sorted(needed)
    answers = await asyncio.gather(*(present(table, field_name) for table, field_name in keys), return_exceptions=True)
    try:
        for answer in answers:
            if isinstance(answer, BaseException):
                raise answer
    except ServiceLayerError as exc:
        user = profile.get("username")
        refused = exc.status in (401, 403) or exc.code == 804
        return [Finding(
            "user_fields_unreadable",
            f"SAP B1 refused to read the user-defined fields (UserFieldsMD) to user {user!r} (HTTP {exc.status}"
            + (f", code {exc.code}" if exc.code is not None else "") + f": {exc.message})",
            (f"user {user!r} lacks the authorisation to read user-defined fields; a run needs it to read and create "
             f"{', '.join(sorted({'U_' + f for _, f in keys}))}: grant it in SAP B1 (Administration > System "
             "Initialization > Authorizations)") if refused else "see SAP B1's code and message",
            url=client.root.url("UserFieldsMD"), facts={"http_status": exc.status, "b1_code": exc.code})]
    except TransportError as exc:
        return [await _transport_finding(exc, client.root.url("UserFieldsMD"), system="SAP B1 Service Layer",
                                         trust_hint=SL_TRUST_HINT)]
    findings = []
    for (table, field_name), ok in zip(keys, answers, strict=True):
        if ok:
            continue
        users = needed[(table, field_name)]
        entities = ", ".join(sorted({entity for _, entity in users}))
        names = ", ".join(sorted({pipeline for pipeline, _ in users}))
        findings.append(Finding(
            "user_field_missing",
            f"SAP B1 has no user field U_{field_name} on table {table} ({entities}), which pipeline(s) {names} "
            "write their external reference to",
            f"`ml-connector run` creates it before it writes (the user needs the authorisation to add user-defined "
            f"fields); or add it in SAP B1: {table}, name {field_name}, alphanumeric, size 50", WARNING,
            facts={"table": table, "field": f"U_{field_name}", "entities": sorted({e for _, e in users}),
                   "pipelines": sorted({p for p, _ in users})}))
    return findings


async def _rule_code_findings(client: Any, specs: Sequence[Any], root: Path,
                              profile: Mapping[str, Any]) -> list[Finding]:
    """Every code the pipelines' rule tables can produce, against B1's (as a run checks them)."""
    from engine.mapping import load_mapping
    from engine.rules import REFERENCE_KEYS, REFERENCE_LABELS
    from engine.runner import reference_code_sets
    from engine.sapb1 import ServiceLayerError, TransportError, fetch_reference_codes

    findings: list[Finding] = []
    mappings: list[tuple[str, Any]] = []
    for spec in specs:
        try:
            mapping = load_mapping(root / spec.mapping, project_root=root)
        except ConnectorError as exc:
            findings.append(Finding("pipelines_unchecked", f"pipeline {spec.name}: its mapping was not checked "
                                    f"against SAP B1: {exc}", "run `ml-connector validate` and fix what it reports",
                                    WARNING))
            continue
        if mapping.lookups.rule_tables:
            mappings.append((spec.name, mapping))
    if not mappings:
        return findings
    try:
        codes = reference_code_sets(await fetch_reference_codes(client, suppliers=False))
    except ServiceLayerError as exc:
        user = profile.get("username")
        return [*findings, Finding(
            "reference_codes_unreadable",
            f"SAP B1 refused to read its accounts, distribution rules, projects or payment terms to user {user!r} "
            f"({exc})", f"user {user!r} needs read access to the chart of accounts, distribution rules, profit "
            "centres, projects and payment terms: the rule tables are checked against them before every run",
            url=client.root.base, facts={"http_status": exc.status, "b1_code": exc.code})]
    except TransportError as exc:
        return [*findings, await _transport_finding(exc, client.root.base, system="SAP B1 Service Layer",
                                                    trust_hint=SL_TRUST_HINT)]
    found: dict[tuple[str, int, str], tuple[Any, list[str]]] = {}  # (file, row, column) -> (table, pipelines)
    for pipeline, mapping in mappings:
        tables = {str(table.path): table for table in mapping.lookups.rule_tables.values()}
        for problem in mapping.check_codes(codes):
            table = tables.get(problem.file)
            if table is None or problem.line is None or problem.field not in REFERENCE_KEYS:
                continue  # e.g. "no default row": `validate`'s business, not SAP B1's
            found.setdefault((problem.file, problem.line, problem.field), (table, []))[1].append(pipeline)
    for (_, line, column), (table, users) in found.items():
        row = next(r for r in table.rows if r.line == line)
        value = row.outputs[table.outputs.index(column)]
        try:
            shown = str(table.path.resolve().relative_to(root.resolve()))
        except ValueError:
            shown = str(table.path)
        findings.append(Finding(
            "rule_code_missing",
            f"rule table {table.name} ({shown}:{line}) gives {column} '{value}', which is not "
            f"{REFERENCE_LABELS[REFERENCE_KEYS[column]]}",
            f"add '{value}' to SAP B1, or change row {line} of {shown}; until then a record meeting this row is "
            "quarantined naming it",
            facts={"table": table.name, "file": shown, "row": line, "column": column, "value": value,
                   "pipelines": users}))
    return findings


# -- JAGGAER --------------------------------------------------------------------------------------------

J1P_TRUST_HINT = ("the certificate is checked against this machine's CA store; when a proxy or a private CA signs "
                  "it, export SSL_CERT_FILE=/path/to/ca-bundle.pem")
# One authenticated read that costs nothing: the company-profile list filtered to an id no company has.
PROBE_PATH = "/j1p/api/public/ja/v1/companyprofiles"
PROBE_PARAMS = {"flt": "BRAVOID==0"}
ACCEPTED_OAUTH_ERRORS = ("invalid_client", "unauthorized_client")


async def check_jaggaer(name: str, profile: Mapping[str, Any], *, pipelines: Sequence[Any] | Exception = (),
                        root: Path | None = None, transport: httpx.AsyncBaseTransport | None = None) -> ConnectionCheck:
    """Get a token, then make one authenticated GET with it. (A pipeline reading the tenant needs nothing
    more than that: `pipelines` and `root` are the kind-wide signature, `engine.kinds.CONNECTION_KINDS`.)"""
    del pipelines, root
    from engine.jaggaer.client import JaggaerSettings
    from engine.jaggaer.net import fast_transport

    try:
        settings = JaggaerSettings.from_profile(name, profile)
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"connection '{name}': the JAGGAER profile lacks or mistypes {exc}") from None
    if not settings.client_id or not settings.client_secret:
        raise ConfigError(f"connection '{name}': client_id and client_secret are required")
    secrets.register(settings.client_secret)
    timeout = min(settings.timeout, REQUEST_TIMEOUT_S)
    limits = httpx.Limits(max_connections=2)
    async with httpx.AsyncClient(timeout=httpx.Timeout(timeout, connect=min(timeout, CONNECT_TIMEOUT_S)),
                                 transport=transport if transport is not None else fast_transport(limits),
                                 headers={"Accept": "application/json"}, follow_redirects=False) as http:
        token, finding = await _jaggaer_token(http, settings)
        if finding is not None:
            return _result(name, "jaggaer", [finding])
        assert token is not None
        finding = await _jaggaer_probe(http, settings, token)
    if finding is not None:
        return _result(name, "jaggaer", [finding])
    return _result(name, "jaggaer", [], f"token endpoint {settings.token_url} issued a token and the API at "
                   f"{settings.base_url} accepted it")


async def _send(http: httpx.AsyncClient, method: str, url: str, **kwargs: Any) -> httpx.Response:
    """One request, tried once more after a fault that says nothing about the settings (5xx, 429, a lost
    answer, a read timeout); a refused connection, DNS or TLS failure is answer enough for a check."""
    attempts = max(CHECK_RETRY.attempts, 1)
    for attempt in range(1, attempts + 1):
        last = attempt == attempts
        try:
            response = await http.request(method, url, **kwargs)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.UnsupportedProtocol):
            raise
        except httpx.TransportError:
            if last:
                raise
        else:
            if last or not (response.status_code == 429 or response.status_code >= 500):
                return response
        await asyncio.sleep(CHECK_RETRY.base)
    raise AssertionError("unreachable")  # pragma: no cover


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


async def _jaggaer_token(http: httpx.AsyncClient, s: Any) -> tuple[str | None, Finding | None]:
    url = s.token_url
    form = {"grant_type": "client_credentials", "client_id": s.client_id, "client_secret": s.client_secret}
    try:
        response = await _send(http, "POST", url, data=form)
    except httpx.HTTPError as exc:
        return None, await _transport_finding(exc, url, system="JAGGAER token endpoint", trust_hint=J1P_TRUST_HINT)
    status = response.status_code
    body = _json(response)
    oauth = body if isinstance(body, dict) else {}
    error = str(oauth.get("error") or "")
    facts: dict[str, Any] = {"http_status": status}
    if error:
        facts["oauth_error"] = error
    default_url = s.base_url + TOKEN_PATH
    if status == 200:
        token = oauth.get("access_token")
        if isinstance(token, str) and token:
            secrets.register(token)
            return f"{oauth.get('token_type') or 'Bearer'} {token}", None
        return None, Finding("tenant", f"{url} answered 200 without an access token: it is not a token endpoint",
                             f"token_url is the tenant's OAuth token endpoint (default {default_url})",
                             url=url, facts=facts)
    if status == 429 or status >= 500:
        return None, Finding("unavailable", f"the JAGGAER token endpoint {url} answered HTTP {status}",
                             "the identity service is down or rate limited: try again later", url=url, facts=facts)
    if status in (400, 401) and (error in ACCEPTED_OAUTH_ERRORS or (status == 401 and not error)):
        return None, Finding(
            "credentials", f"the JAGGAER token endpoint {url} refused client {s.client_id!r}: wrong client id or "
            f"secret (HTTP {status}" + (f" {error}" if error else "") + ")",
            "check client_id and client_secret, and that token_url is the token endpoint of the tenant these "
            "credentials belong to (another tenant's endpoint refuses them the same way)", url=url, facts=facts)
    if status in (400, 401):
        return None, Finding("token_refused", f"the JAGGAER token endpoint {url} refused the token request (HTTP "
                             f"{status} {error}: {oauth.get('error_description', '')})".rstrip(": )") + ")",
                             "the engine asks for grant_type=client_credentials; the endpoint may not be a "
                             "J1P (Keycloak) token endpoint", url=url, facts=facts)
    if status == 404:
        return None, Finding("tenant", f"the JAGGAER token endpoint {url} does not exist (HTTP 404)",
                             f"token_url must be the token endpoint of the tenant base_url names (default "
                             f"{default_url}); check its host, realm and path", url=url, facts=facts)
    return None, Finding("tenant", f"{url} answered the token request with HTTP {status}: it is not a JAGGAER "
                         "token endpoint", f"token_url is the tenant's OAuth token endpoint (default {default_url})",
                         url=url, facts=facts)


async def _jaggaer_probe(http: httpx.AsyncClient, s: Any, token: str) -> Finding | None:
    url = s.base_url + PROBE_PATH
    try:
        response = await _send(http, "GET", url, params=PROBE_PARAMS, headers={"Authorization": token})
    except httpx.HTTPError as exc:
        return await _transport_finding(exc, url, system="JAGGAER API", trust_hint=J1P_TRUST_HINT)
    status = response.status_code
    facts = {"http_status": status}
    if status == 401:  # decided on the status alone (§3.4); the token is a fresh one
        return Finding("tenant", f"the token is not accepted by this tenant's API: {s.base_url} answered HTTP 401 "
                       f"to GET {PROBE_PATH} with a token just issued by {s.token_url}",
                       "is base_url the tenant the token endpoint belongs to? Set token_url to that tenant's token "
                       f"endpoint (default {s.base_url}{TOKEN_PATH}), or base_url to the tenant of token_url",
                       url=url, facts=facts)
    body = _json(response)
    if status == 200:
        if isinstance(body, dict) and "returnCode" in body:
            return None  # any application outcome proves the token works here
        return Finding("not_j1p_api", f"{url} answered 200 but not with a J1P answer: base_url is not the J1P API",
                       "base_url is the API host with any path prefix before /j1p/api, e.g. "
                       "https://prep-reg01.api.jaggaer.com", url=url, facts=facts)
    if status == 429 or status >= 500:
        return Finding("unavailable", f"the JAGGAER API at {url} answered HTTP {status}",
                       "the tenant is down or rate limited: try again later", url=url, facts=facts)
    if status == 404:
        return Finding("not_j1p_api", f"the JAGGAER API at {s.base_url} has no {PROBE_PATH} (HTTP 404): base_url is "
                       "not the J1P API root", "base_url is the API host with any path prefix before /j1p/api "
                       "(for a tenant under a path: https://host/tenants/<tenant>)", url=url, facts=facts)
    if status == 403:
        return Finding("api_refused", f"the JAGGAER API at {url} refused client {s.client_id!r} (HTTP 403)",
                       "the API client needs read access to company profiles, purchase orders and invoices: ask "
                       "the JAGGAER administrator", url=url, facts=facts)
    code = body.get("returnCode") if isinstance(body, dict) else None
    return Finding("api_refused", f"the JAGGAER API at {url} answered HTTP {status}"
                   + (f", returnCode {code}: {body.get('returnMessage', '')}" if code is not None else ""),
                   "see the status and the returnCode", url=url, facts=facts)

