"""Redaction blanks what is a secret (registered values, credential keys, credentials in transit) and
never business text. (No __init__.py here: a `secrets` package would shadow the standard library's.)"""

from __future__ import annotations

import asyncio
import json

import httpx
import orjson
import pytest

from engine import secrets
from engine.jaggaer.client import JaggaerSettings, TokenProvider
from engine.sapb1.client import SapB1Client
from engine.state import db, ledger
from engine.state.ledger import Intent, Result

JWT = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJjb25uZWN0b3IifQ.c2lnbmF0dXJl"


@pytest.fixture(autouse=True)
def registry():
    saved = secrets.registered()
    secrets.reset()
    yield
    secrets.reset(saved)


def stored(value):
    """What `ledger` would store for `value`, parsed back."""
    return json.loads(ledger._json(value))


BUSINESS = {"CardName": "Bearer Logistics", "Notes": "Session Tokens Ltd", "U_SessionNote": "call before 10",
            "U_TokenCount": 3, "Comments": "Password reset kit, cookie jar, authorization form 12",
            "AccessTokenRef": "Bearer Logistics Ltd"}


def test_business_text_and_lookalike_keys_survive():
    secrets.register("s3cret-password-1")
    assert secrets.redact(BUSINESS) == BUSINESS
    assert stored(BUSINESS) == BUSINESS
    assert secrets.redact_text("Bearer Logistics") == "Bearer Logistics"
    assert secrets.redact_text("Authorization: PO approved by Bearer Logistics") == "Authorization: PO approved by Bearer Logistics"


def test_a_supplier_name_equal_to_nothing_registered_is_untouched():
    secrets.register("correct-horse-battery")
    assert secrets.redact({"CardName": "Correct Horse Supplies"}) == {"CardName": "Correct Horse Supplies"}


def test_a_registered_password_in_a_b1_error_message_is_blanked():
    secrets.register("Tr0ub4dor&3x")
    message = "Login failed for user manager with password Tr0ub4dor&3x (-304)"
    assert secrets.redact(message) == "Login failed for user manager with password *** (-304)"
    assert "Tr0ub4dor" not in ledger._json({"error": {"message": {"value": message}}})


def test_short_values_are_not_registered():
    secrets.register("manager", "", None)
    assert secrets.registered() == frozenset()
    assert secrets.redact("Purchasing manager") == "Purchasing manager"


def test_credential_headers_and_exact_token_fields_are_blanked():
    value = {"headers": {"Authorization": f"Bearer {JWT}", "cookie": "B1SESSION=abc; ROUTEID=.node1",
                         "Set-Cookie": "B1SESSION=abc;HttpOnly;", "PROXY-AUTHORIZATION": "Basic dXNlcjpwdw=="},
             "body": {"access_token": "opaque", "refresh_token": "r", "id_token": "i", "client_secret": "c",
                      "Password": "p", "password": "p", "B1SESSION": "abc", "expires_in": 300},
             "session_id": "kept: not an exact credential name", "Tokens": "kept"}
    out = secrets.redact(value)
    assert set(out["headers"].values()) == {"***"}
    assert out["body"] == {**dict.fromkeys(["access_token", "refresh_token", "id_token", "client_secret", "Password",
                                            "password", "B1SESSION"], "***"), "expires_in": 300}
    assert out["session_id"] == value["session_id"] and out["Tokens"] == "kept"
    assert stored(value) == out


def test_credentials_in_transit_in_free_text_are_blanked():
    cases = {
        "Cookie: B1SESSION=5f1c2b7e-aaaa-11ee-8000-0242ac120002; ROUTEID=.node1": "Cookie: B1SESSION=***; ROUTEID=***",
        f"Authorization: Bearer {JWT}": "Authorization: Bearer ***",
        "authorization: bearer 9f8e7d6c5b4a39281706f5e4d3c2b1a0": "authorization: bearer ***",
        f"token refused (Bearer {JWT})": "token refused (Bearer ***)",
        "POST /token access_token=abc123&expires_in=300": "POST /token access_token=***&expires_in=300",
    }
    for text, expected in cases.items():
        assert secrets.redact_text(text) == expected
        assert stored({"b1_message": text}) == {"b1_message": expected}


def test_a_registered_value_is_found_inside_json_text():
    secrets.register('pa"ss\\word-42')
    assert stored({"m": 'echo: pa"ss\\word-42!'}) == {"m": "echo: ***!"}


def test_the_registry_keeps_the_latest_values():
    tokens = [f"token-{i:06d}" for i in range(secrets.MAX_VALUES + 5)]
    secrets.register(*tokens)
    assert tokens[-1] in secrets.registered() and tokens[0] not in secrets.registered()
    assert len(secrets.registered()) == secrets.MAX_VALUES


def test_register_cookie_takes_the_session_values():
    secrets.register_cookie("B1SESSION=5f1c2b7e-aaaa-11ee; ROUTEID=.node1")
    assert secrets.registered() == {"5f1c2b7e-aaaa-11ee"}  # ".node1" is too short to register


def test_may_hold_secret_has_no_false_negatives():
    secrets.register("registered-value-1")
    for value in ({"a": ["x registered-value-1 y"]}, {"Authorization": "x"}, {"k": "B1SESSION=zzz"},
                  {"password": "x"}, {"m": f"Bearer {JWT}"}):
        assert secrets.may_hold_secret(orjson.dumps(value))
    assert not secrets.may_hold_secret(orjson.dumps({"CardName": "Acme Session Tokens", "U_SessionNote": "x"}))


def test_clients_register_the_credentials_they_receive():
    SapB1Client("http://127.0.0.1:50000/b1s/v2", "SBODEMOUS", "manager", "b1-password-9")
    settings = JaggaerSettings("j", "http://j1p", "http://j1p/token", "client", "client-secret-7")

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"access_token": "access-token-123", "token_type": "Bearer", "expires_in": 300})

    async def fetch() -> str:
        async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as http:
            return await TokenProvider(settings, http).get()

    assert asyncio.run(fetch()) == "Bearer access-token-123"
    assert {"b1-password-9", "client-secret-7", "access-token-123"} <= secrets.registered()


def test_business_text_round_trips_through_the_ledger(tmp_path):
    secrets.register("b1-password-9")
    state = tmp_path / "var" / "state.duckdb"
    payload = {"CardCode": "V1", "CardName": "Bearer Logistics", "U_SessionNote": "Session Tokens Ltd"}
    with db.connect(state) as conn:
        ledger.record_intent(conn, "r", [Intent("suppliers", "1", "create", payload, "fp-1", "v1", record_key="k1",
                                                target_entity="BusinessPartners")])
        ledger.record_result(conn, "r", [Result("suppliers", "1", "create", "synced", target_key="V1", fingerprint="fp-1",
                                                payload=payload, sent=payload, mapping_version="v1",
                                                b1_message="Bearer Logistics created")])
        row = ledger.ledger_rows(conn, "suppliers")["1"]
        events = conn.execute("SELECT payload, b1_message FROM events ORDER BY outcome").fetchall()
    assert row.payload == payload
    assert [json.loads(p) for p, _ in events] == [payload, payload]
    assert [m for _, m in events] == [None, "Bearer Logistics created"]
