"""`ml-connector check` names each problem of a connection and what to do, over real sockets against both
simulators: each misconfiguration gives its own diagnosis (a finding code), and a good project none."""

from __future__ import annotations

import asyncio
import json
import socket
from dataclasses import replace

import httpx
import pytest

from engine.checks import ConnectionCheck, check_connections
from engine.cli import main
from engine.project import TOKEN_PATH, load_project
from engine.sapb1 import SapB1Client, ensure_user_field
from simulators.sapb1 import start_simulator as start_sapb1
from tests.e2e.project_fixture import start_stack

TABLES = {"OCRD", "OPOR", "OPCH"}  # where the repo's pipelines keep U_JaggaerRef


@pytest.fixture
def stack(tmp_path, monkeypatch):
    monkeypatch.setenv("ML_CONNECTOR_LOCK_DIR", str(tmp_path / "locks"))
    with start_stack(tmp_path, seed=4) as s:
        # the profile values a test changes come from the environment, as a customer's may
        s.edit("ml-connector.yaml", "verify_tls: true", "verify_tls: {env: SAPB1_VERIFY_TLS, default: true}")
        s.edit("ml-connector.yaml", "token_url: null", "token_url: {env: JAGGAER_TOKEN_URL, default: null}")
        for name, value in s.environ.items():  # the CLI reads os.environ
            monkeypatch.setenv(name, value)
        yield s


def check(stack, *names: str, **environ: str) -> dict[str, ConnectionCheck]:
    project = replace(load_project(stack.root, with_pipelines=False), environ={**stack.environ, **environ})
    return {r.name: r for r in asyncio.run(check_connections(project, list(names) or None))}


def codes(result: ConnectionCheck, severity: str = "error") -> list[str]:
    return [f.code for f in result.findings if f.severity == severity]


def only_error(result: ConnectionCheck):
    assert not result.ok and len(result.errors) == 1, result.findings
    return result.errors[0]


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- all good ---------------------------------------------------------------------------------------------


def test_a_good_project_checks_clean_and_a_fresh_company_only_lacks_the_user_fields_run_creates(stack, capsys):
    before = check(stack)
    assert before["jaggaer"].ok and before["jaggaer"].findings == ()
    b1 = before["sapb1"]
    assert b1.ok and codes(b1) == [] and "session timeout 30 min" in b1.detail
    missing = [f for f in b1.findings if f.code == "user_field_missing"]
    assert {f.facts["table"] for f in missing} == TABLES and len(b1.findings) == 3
    assert all(f.severity == "warning" and "ml-connector run" in f.hint for f in missing)
    assert {p for f in missing for p in f.facts["pipelines"]} == {"suppliers", "purchase_orders", "invoices"}
    assert main(["check", "--project", str(stack.root)]) == 0  # warnings do not fail the check
    assert stack.b1.entities("UserFieldsMD") == [] and stack.writes()["writes"] == 0  # a check writes nothing

    create_user_fields(stack)  # what a run's setup does first (a whole run would take seconds longer)
    after = check(stack)
    assert [(r.ok, r.findings) for r in after.values()] == [(True, ()), (True, ())]
    capsys.readouterr()
    assert main(["check", "--project", str(stack.root), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["ok"] is True and [c["findings"] for c in doc["connections"]] == [[], []]


def create_user_fields(stack) -> None:
    async def create() -> None:
        async with SapB1Client(stack.b1.service_root(), stack.b1.company, stack.b1.user, stack.b1.password) as b1:
            for table in sorted(TABLES):
                await ensure_user_field(b1, table, "JaggaerRef", "JAGGAER reference")

    asyncio.run(create())


class Rendezvous(httpx.AsyncBaseTransport):
    """A real transport whose first request waits until the other connection's first request has started:
    checked one after the other, the first check would wait forever (and time out); concurrently, both go."""

    def __init__(self, mine: asyncio.Event, other: asyncio.Event) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.mine, self.other = mine, other

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if not self.mine.is_set():
            self.mine.set()
            await asyncio.wait_for(self.other.wait(), timeout=20)
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


def test_connections_are_checked_concurrently(stack):
    project = replace(load_project(stack.root, with_pipelines=False), environ=stack.environ)

    async def both() -> list[ConnectionCheck]:
        b1, jag = asyncio.Event(), asyncio.Event()
        transports = {"sapb1": Rendezvous(b1, jag), "jaggaer": Rendezvous(jag, b1)}
        return await check_connections(project, transports=transports)

    results = asyncio.run(both())
    assert [r.ok for r in results] == [True, True], [r.findings for r in results]


# -- no connection, TLS ----------------------------------------------------------------------------------


def test_a_closed_port_is_unreachable_naming_the_url(stack):
    url = f"http://127.0.0.1:{closed_port()}"
    results = check(stack, JAGGAER_BASE_URL=url, SAPB1_SERVICE_ROOT=url + "/b1s/v2")
    for result in results.values():
        finding = only_error(result)
        assert finding.code == "unreachable" and finding.url.startswith(url)
        assert url in finding.message and "connection refused" in finding.message and finding.hint


def test_https_to_a_plain_http_port_is_a_tls_problem(stack):
    results = check(stack, JAGGAER_BASE_URL=stack.jag.base_url.replace("http://", "https://"),
                    SAPB1_SERVICE_ROOT=stack.b1.service_root().replace("http://", "https://"))
    for result in results.values():
        finding = only_error(result)
        assert finding.code == "tls" and "speaks plain HTTP" in finding.message
        assert finding.url.startswith("https://127.0.0.1:")


def test_a_self_signed_service_layer_with_verification_on_then_off_then_over_http(stack):
    with start_sapb1(seed="demo", tls=True) as tls:
        root = tls.service_root()
        finding = only_error(check(stack, "sapb1", SAPB1_SERVICE_ROOT=root)["sapb1"])
        assert finding.code == "tls" and "not trusted" in finding.message and root in finding.message
        assert "verify_tls" in finding.hint and "CA bundle" in finding.hint

        unverified = check(stack, "sapb1", SAPB1_SERVICE_ROOT=root, SAPB1_VERIFY_TLS="false")["sapb1"]
        assert unverified.ok and codes(unverified) == []

        finding = only_error(check(stack, "sapb1", SAPB1_SERVICE_ROOT=root.replace("https://", "http://"))["sapb1"])
        assert finding.code == "tls" and "speaks TLS" in finding.message and root in finding.hint

        finding = only_error(check(stack, "sapb1", SAPB1_SERVICE_ROOT=root, SAPB1_VERIFY_TLS="/nonexistent/ca.pem")["sapb1"])
        assert finding.code == "tls" and "CA bundle" in finding.message


# -- SAP B1 Login ----------------------------------------------------------------------------------------


def test_sapb1_login_refusals_are_told_apart_by_b1_code(stack):
    finding = only_error(check(stack, "sapb1", SAPB1_COMPANY_DB="SBOWRONG")["sapb1"])
    assert (finding.code, finding.facts["b1_code"]) == ("company_db", -304) and "'SBOWRONG'" in finding.message

    finding = only_error(check(stack, "sapb1", SAPB1_PASSWORD="wrong-Secret-9")["sapb1"])
    assert (finding.code, finding.facts["b1_code"]) == ("credentials", 100000027)
    assert "password" in finding.message and "wrong-Secret-9" not in finding.message + finding.hint

    stack.b1.set_knobs(user_locked=True)
    finding = only_error(check(stack, "sapb1")["sapb1"])
    assert (finding.code, finding.facts["b1_code"]) == ("credentials", 100000055) and "locked" in finding.message


def test_a_service_root_that_is_not_a_service_layer(stack):
    root = stack.jag.base_url + "/b1s/v2"  # a real server, but JAGGAER's
    finding = only_error(check(stack, "sapb1", SAPB1_SERVICE_ROOT=root)["sapb1"])
    assert finding.code == "not_service_layer" and finding.facts["http_status"] == 404 and root in finding.message


# -- JAGGAER --------------------------------------------------------------------------------------------


def test_a_wrong_client_secret(stack):
    finding = only_error(check(stack, "jaggaer", JAGGAER_CLIENT_SECRET="not-the-secret-1")["jaggaer"])
    assert finding.code == "credentials" and finding.facts["oauth_error"] == "invalid_client"
    assert stack.jag.token_url in finding.message and "not-the-secret-1" not in finding.message


def test_the_token_of_another_tenant_is_refused_by_this_tenants_api(stack):
    acme = stack.jag.add_tenant("acme", "acme-erp-sync", "acme-secret-change-me")
    result = check(stack, "jaggaer", JAGGAER_BASE_URL=stack.jag.base_url, JAGGAER_TOKEN_URL=acme.token_url,
                   JAGGAER_CLIENT_ID=acme.client_id, JAGGAER_CLIENT_SECRET=acme.client_secret)["jaggaer"]
    finding = only_error(result)
    assert finding.code == "tenant" and finding.facts["http_status"] == 401
    assert "the token is not accepted by this tenant's API" in finding.message and acme.token_url in finding.message
    assert "is base_url the tenant the token endpoint belongs to?" in finding.hint

    finding = only_error(check(stack, "jaggaer", JAGGAER_TOKEN_URL=stack.jag.base_url + "/auth/realms/nope/token")["jaggaer"])
    assert finding.code == "tenant" and finding.facts["http_status"] == 404 and TOKEN_PATH in finding.hint


# -- what SAP B1 lacks after Login -------------------------------------------------------------------------


def test_an_empty_company_lacks_the_user_fields_and_every_code(stack):
    with start_sapb1(seed="empty") as empty:
        result = check(stack, "sapb1", SAPB1_SERVICE_ROOT=empty.service_root())["sapb1"]
        assert empty.entities("UserFieldsMD") == [] and empty.counters["writes"] == 0  # read, never created
    assert {f.facts["table"] for f in result.findings if f.code == "user_field_missing"} == TABLES
    assert not result.ok and set(codes(result)) == {"rule_code_missing"}
    values = {(f.facts["table"], f.facts["value"]) for f in result.errors}
    assert {("gl_accounts", "510000"), ("cost_objects", "PLANTS"), ("payment_terms", "2")} <= values


def test_a_rule_table_edited_to_an_account_b1_lacks(stack, capsys):
    stack.edit("mappings/rules/gl_accounts.csv", "3116*,,510000", "3116*,,599999")
    result = check(stack, "sapb1")["sapb1"]
    finding = only_error(result)
    assert finding.code == "rule_code_missing"
    assert {k: finding.facts[k] for k in ("table", "file", "row", "column", "value")} == {
        "table": "gl_accounts", "file": "mappings/rules/gl_accounts.csv", "row": 5, "column": "AccountCode",
        "value": "599999"}
    assert sorted(finding.facts["pipelines"]) == ["invoices", "purchase_orders"]
    assert "gl_accounts.csv:5" in finding.message and "599999" in finding.hint

    capsys.readouterr()
    code = main(["check", "sapb1", "--project", str(stack.root)])
    captured = capsys.readouterr()
    assert code == 1 and captured.out == ""
    assert "FAILED  sapb1 (sapb1)" in captured.err and "- rule_code_missing: rule table gl_accounts" in captured.err
    assert "fix: add '599999' to SAP B1" in captured.err
    assert main(["check", "sapb1", "--project", str(stack.root), "--json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["ok"] is False and [c["name"] for c in doc["connections"]] == ["sapb1"]
    assert [(f["code"], f["severity"], f.get("value")) for f in doc["connections"][0]["findings"]][0] == (
        "rule_code_missing", "error", "599999")


def test_a_user_without_authorisation_to_read_user_fields_or_codes(stack):
    """B1 answers the reads 403/804 (§4.3): a stand-in Service Layer, as the simulator has no authorisations."""

    def service_layer(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/Login"):
            return httpx.Response(200, json={"SessionId": "s-1", "Version": "1000310", "SessionTimeout": 30},
                                  headers={"Set-Cookie": "B1SESSION=s-1;HttpOnly;"})
        if request.url.path.endswith("/Logout"):
            return httpx.Response(204)
        return httpx.Response(403, json={"error": {"code": 804, "message": "No authorization"}})

    project = replace(load_project(stack.root, with_pipelines=False), environ=stack.environ)
    [result] = asyncio.run(check_connections(project, ["sapb1"], transports={"sapb1": httpx.MockTransport(service_layer)}))
    assert sorted(codes(result)) == ["reference_codes_unreadable", "user_fields_unreadable"]
    unreadable = next(f for f in result.errors if f.code == "user_fields_unreadable")
    assert "authorisation" in unreadable.hint and unreadable.facts["b1_code"] == 804


def test_an_unknown_connection_and_one_failing_system_do_not_stop_the_others(stack):
    project = replace(load_project(stack.root, with_pipelines=False), environ={**stack.environ, "SAPB1_PASSWORD": "wrong-Secret-9"})
    results = asyncio.run(check_connections(project, ["nope", "jaggaer", "sapb1"]))
    assert [(r.name, r.ok) for r in results] == [("nope", False), ("jaggaer", True), ("sapb1", False)]
    assert codes(results[0]) == ["config"] and codes(results[2]) == ["credentials"]


def test_pipelines_that_do_not_load_are_a_warning_not_a_failure_of_the_connection(stack):
    (stack.root / "pipelines" / "broken.yaml").write_text("name: broken\nsource: 3\n")
    result = check(stack, "sapb1")["sapb1"]
    assert result.ok and codes(result, "warning") == ["pipelines_unchecked"]
    assert "ml-connector validate" in result.findings[0].hint
