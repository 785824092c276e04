"""The company-profile UPDATE under the J1P contract's returnCode rules (§4.6, §9), and its loader's journal
(intent before write, one event per attempt), against an in-process J1P answering from a script."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from engine.jaggaer.client import AuthFailed, JaggaerSettings
from engine.jaggaer.writer import COMPANY_PROFILES, CompanyProfileLoader, CompanyProfileWriter, WriteItem
from engine.state import db, ledger

BASE = "http://j1p.test"
TOKEN = "http://j1p.test/token"
BODY = {"company": {"operationCode": "UPDATE", "sendEMail": "0", "companyInfo": {"bravoId": "20002",
                                                                                  "fiscalCode": "98-7654321"}}}


class ScriptedJ1P:
    """Token endpoint plus `POST companyprofiles` answering the scripted (status, body or None=drop, headers)."""

    def __init__(self, *answers: tuple[int, Any] | tuple[int, Any, dict[str, str]]) -> None:
        self.answers = list(answers)
        self.posts: list[dict[str, Any]] = []
        self.tokens = 0

    def handler(self, request: httpx.Request) -> httpx.Response:
        if str(request.url) == TOKEN:
            self.tokens += 1
            return httpx.Response(200, json={"access_token": f"t{self.tokens}", "expires_in": 300})
        assert request.url.path == COMPANY_PROFILES and request.method == "POST"
        assert request.headers["content-type"] == "application/json"
        self.posts.append(json.loads(request.content))
        status, body, *headers = self.answers.pop(0) if self.answers else (200, {"returnCode": 0})
        if body is None:
            raise httpx.ReadError("connection dropped", request=request)
        return httpx.Response(status, json=body, headers=headers[0] if headers else None)

    def writer(self, attempts: int = 4) -> CompanyProfileWriter:
        settings = JaggaerSettings("jaggaer", BASE, TOKEN, "id", "secret", retry_attempts=attempts,
                                   backoff_initial=0.001, backoff_max=0.01)
        return CompanyProfileWriter(settings, transport=httpx.MockTransport(self.handler))


def update(j1p: ScriptedJ1P, attempts: int = 4) -> Any:
    async def go() -> Any:
        async with j1p.writer(attempts) as writer:
            return await writer.update(BODY)

    return asyncio.run(go())


def test_return_code_0_is_synced() -> None:
    j1p = ScriptedJ1P((200, {"returnCode": 0, "returnMessage": "OK", "bravoId": 20002}))
    answer = update(j1p)
    assert (answer.status, answer.code, answer.writes, answer.bravo_id, answer.tries) == ("synced", None, 1, 20002, [])
    assert j1p.posts == [BODY]


@pytest.mark.parametrize("code", [1, "1", -996])
def test_warnings_are_success_and_kept(code) -> None:
    answer = update(ScriptedJ1P((200, {"returnCode": code, "returnMessage": "Ignored unknown fields: x"})))
    assert (answer.status, answer.code, answer.message) == ("synced", str(code), "Ignored unknown fields: x")


def test_transient_answers_are_retried_and_an_update_is_simply_re_sent() -> None:
    j1p = ScriptedJ1P((200, {"returnCode": -998, "returnMessage": "Temporary error, please retry"}),
                      (503, {"x": 1}), (429, {}, {"Retry-After": "0"}), (200, None),  # a lost answer
                      (200, {"returnCode": 0}))
    answer = update(j1p, attempts=6)
    assert (answer.status, answer.writes) == ("synced", 5)
    assert [(t.http_status, t.b1_code) for t in answer.tries] == [(200, "-998"), (503, "503"), (429, "429"),
                                                                   (None, None)]
    assert j1p.posts == [BODY] * 5, "the same UPDATE each time (idempotent)"


def test_a_failure_code_fails_only_that_record_never_retried() -> None:
    j1p = ScriptedJ1P((200, {"returnCode": 2, "returnMessage": "Invalid value for field fiscalCode"}))
    answer = update(j1p)
    assert (answer.status, answer.code, answer.message, answer.writes) == (
        "failed", "2", "Invalid value for field fiscalCode", 1)
    answer = update(ScriptedJ1P((400, {"returnCode": 2, "returnMessage": "Malformed JSON request body"})))
    assert (answer.status, answer.code, answer.http_status) == ("failed", "2", 400)


def test_transient_faults_outlasting_the_budget_leave_the_record_in_flight() -> None:
    answer = update(ScriptedJ1P(*[(502, {})] * 3), attempts=3)
    assert (answer.status, answer.code, answer.writes, len(answer.tries)) == ("in_flight", "unresolved", 3, 2)
    assert "next run" in answer.message


def test_a_401_gets_one_fresh_token_then_stops_the_write_back() -> None:
    j1p = ScriptedJ1P((401, {}), (200, {"returnCode": 0}))
    assert update(j1p).status == "synced" and j1p.tokens == 2
    with pytest.raises(AuthFailed):
        update(ScriptedJ1P((401, {}), (401, {})))


def test_the_loader_journals_intents_before_writes_and_every_attempt(tmp_path: Path) -> None:
    state = tmp_path / "state.duckdb"
    j1p = ScriptedJ1P((200, {"returnCode": -998, "returnMessage": "Temporary error"}), (200, {"returnCode": 0}),
                      (200, {"returnCode": 2, "returnMessage": "Company not found: 20099"}))
    seen_in_flight: list[str] = []
    real = j1p.handler

    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":  # the intent is durable before the UPDATE leaves
            with db.connect(state, read_only=True) as conn:
                rows = ledger.ledger_rows(conn, "suppliers_to_jaggaer")
            seen_in_flight.extend(r for r, row in rows.items() if row.status == "in_flight")
        return real(request)

    j1p.handler = handler  # type: ignore[method-assign]
    items = [WriteItem("suppliers_to_jaggaer", code, {"company": {"companyInfo": {"bravoId": bravo}}},
                       {"company": {"companyInfo": {"bravoId": bravo, "companyName": code}}}, f"fp-{code}", "v1",
                       target_key=bravo, record_key=code, plan_hash=f"h-{code}")
             for code, bravo in (("V10000", "20002"), ("V10099", "20099"))]

    async def go() -> Any:
        async with j1p.writer() as writer:
            loader = CompanyProfileLoader(writer, state, "run-1", concurrency=1)
            await loader.load(items)
            return loader.stats

    stats = asyncio.run(go())
    assert (stats.updated, stats.failed, stats.writes, stats.retries) == (1, 1, 3, 1)
    assert set(seen_in_flight) >= {"V10000", "V10099"}
    with db.connect(state, read_only=True) as conn:
        rows = ledger.ledger_rows(conn, "suppliers_to_jaggaer")
        events = conn.execute("SELECT external_ref, action, outcome, b1_code, b1_message FROM events "
                              "ORDER BY happened_at, external_ref, outcome").fetchall()
    ok, bad = rows["V10000"], rows["V10099"]
    assert (ok.status, ok.target_key, ok.fingerprint, ok.plan_hash, ok.target_entity) == (
        "synced", "20002", "fp-V10000", "h-V10000", "companyprofiles")
    assert ok.payload == items[0].payload, "the whole rendering is the base of the next diff"
    assert (bad.status, bad.last_error_code, bad.last_error, bad.payload) == (
        "failed", "2", "Company not found: 20099", None)
    assert ("V10000", "update", "retry", "-998", "returnCode -998: Temporary error") in events
    assert [e[2] for e in events if e[0] == "V10000"] == ["intent", "retry", "synced"]
