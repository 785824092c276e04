"""J1P client over httpx.MockTransport: tokens, 401 replay, retries, returnCode outcomes (§3, §4.6, §9)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import httpx
import pytest

from engine.jaggaer.client import (
    AuthFailed,
    J1PClient,
    J1PError,
    JaggaerSettings,
    _Backoff,
    _Transient,
    parse_retry_after,
)

from .fake_j1p import BASE, LIST, TOKEN, FakeJ1P, stamp


def settings(**kw: Any) -> JaggaerSettings:
    base = dict(name="jaggaer", base_url=BASE, token_url=BASE + TOKEN, client_id="demo", client_secret="secret",
                max_concurrency=4, timeout=5.0, retry_attempts=4, backoff_initial=0.001, backoff_max=0.01)
    base.update(kw)
    return JaggaerSettings(**base)  # type: ignore[arg-type]


def run(coro: Any) -> Any:
    return asyncio.run(coro)


async def get(fake: FakeJ1P, path: str, s: JaggaerSettings | None = None, clock: Any = None) -> tuple[dict[str, Any], J1PClient]:
    kw = {"clock": clock} if clock else {}
    async with J1PClient(s or settings(), transport=fake.transport(), **kw) as client:
        return await client.get(path), client


def test_token_reused_then_renewed_30s_before_expiry() -> None:
    fake = FakeJ1P()
    fake.add(1, stamp(1))
    now = [1000.0]

    async def scenario() -> None:
        async with J1PClient(settings(), transport=fake.transport(), clock=lambda: now[0]) as client:
            await client.get(f"{LIST}/1")
            now[0] += 269
            await client.get(f"{LIST}/1")
            assert fake.token_calls == 1
            now[0] += 2  # 271 s into a 300 s token: inside the 30 s margin
            await client.get(f"{LIST}/1")
            assert fake.token_calls == 2

    run(scenario())


def test_401_drops_token_and_replays_once() -> None:
    fake = FakeJ1P()
    fake.add(1, stamp(1))

    async def scenario() -> None:
        async with J1PClient(settings(), transport=fake.transport()) as client:
            await client.get(f"{LIST}/1")
            fake.tokens.clear()  # the server forgets every token (expiry, restart)
            body = await client.get(f"{LIST}/1")
            assert body["header"]["purchaseOrderId"] == 1
            assert fake.token_calls == 2

    run(scenario())


def test_second_401_on_fresh_token_fails_the_run() -> None:
    fake = FakeJ1P()
    fake.faults.append(lambda r: httpx.Response(401) if r.url.path == f"{LIST}/1" else None)
    with pytest.raises(AuthFailed, match="freshly issued token was refused"):
        run(get(fake, f"{LIST}/1"))
    assert fake.token_calls == 2


def test_bad_credentials_are_a_config_error_without_the_secret() -> None:
    fake = FakeJ1P()
    with pytest.raises(AuthFailed) as exc:
        run(get(fake, f"{LIST}/1", settings(client_secret="wrong-s3cret")))
    assert "invalid_client" in str(exc.value) and "wrong-s3cret" not in str(exc.value)
    assert fake.token_calls == 1  # never retried


def test_429_and_5xx_and_dropped_connections_are_retried() -> None:
    fake = FakeJ1P()
    fake.add(1, stamp(1))
    answers = iter([httpx.Response(429, headers={"Retry-After": "0"}), httpx.Response(503), "drop", None])

    def fault(request: httpx.Request) -> httpx.Response | None:
        if request.url.path != f"{LIST}/1":
            return None
        answer = next(answers)
        if answer == "drop":
            raise httpx.RemoteProtocolError("Server disconnected without sending a response.")
        return answer

    fake.faults.append(fault)
    body, client = run(get(fake, f"{LIST}/1"))
    assert body["header"]["purchaseOrderId"] == 1
    assert client.counters.retries == 3


def test_retry_budget_spent_fails_visibly() -> None:
    fake = FakeJ1P()
    fake.faults.append(lambda r: httpx.Response(200, json={"returnCode": -998, "returnMessage": "Temporary error, please retry"})
                       if r.url.path != TOKEN else None)
    with pytest.raises(J1PError) as exc:
        run(get(fake, f"{LIST}/1"))
    assert exc.value.code == "-998" and "gave up after 4 attempts" in str(exc.value)


def test_returncode_warning_accepted_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    fake = FakeJ1P()
    fake.faults.append(lambda r: httpx.Response(200, json={"returnCode": "1", "returnMessage": "Ignored unknown fields: x"})
                       if r.url.path != TOKEN else None)
    with caplog.at_level(logging.WARNING, logger="engine.jaggaer"):
        body, client = run(get(fake, f"{LIST}/1"))
    assert body["returnCode"] == "1" and client.counters.warnings == 1
    assert "Ignored unknown fields: x" in caplog.text
    assert "secret" not in caplog.text and "tok1" not in caplog.text


@pytest.mark.parametrize("code", [2, "2", 17])
def test_other_returncodes_fail_without_retry(code: Any) -> None:
    fake = FakeJ1P()
    calls = []

    def fault(request: httpx.Request) -> httpx.Response | None:
        if request.url.path == TOKEN:
            return None
        calls.append(1)
        return httpx.Response(200, json={"returnCode": code, "returnMessage": "124(code,TenderCode)"})

    fake.faults.append(fault)
    with pytest.raises(J1PError) as exc:
        run(get(fake, f"{LIST}/999"))
    assert exc.value.code == str(code) and exc.value.return_message == "124(code,TenderCode)"
    assert len(calls) == 1


def test_not_found_on_single_read() -> None:
    with pytest.raises(J1PError) as exc:
        run(get(FakeJ1P(), f"{LIST}/999"))
    assert exc.value.code == "2" and exc.value.return_message == "Record not found: 999"


def test_string_returncode_zero_is_success() -> None:
    fake = FakeJ1P()
    fake.faults.append(lambda r: httpx.Response(200, json={"returnCode": "0", "totRecords": 0}) if r.url.path == LIST else None)
    body, _ = run(get(fake, LIST))
    assert body["totRecords"] == 0


def test_http_404_fails_without_retry() -> None:
    fake = FakeJ1P()
    with pytest.raises(J1PError, match="HTTP 404"):
        run(get(fake, "/j1p/api/public/je/v1/nothing"))


def test_backoff_honours_retry_after_and_caps() -> None:
    class State:
        attempt_number = 3

        class outcome:  # noqa: N801
            @staticmethod
            def exception() -> Exception:
                return _Transient("429", retry_after=7.0)

    assert _Backoff(1.0, 60.0)(State()) == 7.0
    assert _Backoff(1.0, 5.0)(State()) == 5.0
    State.outcome.exception = staticmethod(lambda: _Transient("503"))  # type: ignore[method-assign]
    for _ in range(20):
        assert 2.0 <= _Backoff(1.0, 60.0)(State()) <= 4.0  # the upper half of the 4 s ceiling
    assert parse_retry_after("3") == 3.0 and parse_retry_after(None) is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0
