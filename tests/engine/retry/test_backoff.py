"""The one back-off policy (`engine.retry.Backoff`): exponential, capped, jittered, a server's hint honoured."""

from __future__ import annotations

import asyncio
import random

import pytest

from engine.load import RetryPolicy as LoaderRetry
from engine.retry import Backoff, parse_retry_after, retry_after_of
from engine.serve.scheduler import RetryPolicy as ServeRetry


class Transient(Exception):
    def __init__(self, retry_after: float | None = None) -> None:
        super().__init__("try again")
        self.retry_after = retry_after


def test_the_ceiling_doubles_from_base_up_to_the_cap():
    policy = Backoff(base=0.5, cap=3.0, jitter=0)
    assert [policy.delay(n) for n in range(0, 6)] == [0.0, 0.5, 1.0, 2.0, 3.0, 3.0]
    assert policy.delay(100_000) == 3.0  # any number of failures: no overflow, still the cap


@pytest.mark.parametrize("jitter", [1.0, 0.5, 0.1])
def test_jitter_draws_within_its_share_below_the_ceiling(jitter):
    policy = Backoff(base=1.0, cap=60.0, jitter=jitter, rng=random.Random(7))
    for retry in range(1, 10):
        ceiling = min(60.0, 2.0 ** (retry - 1))
        waits = [policy.delay(retry) for _ in range(50)]
        assert all(ceiling * (1 - jitter) <= w <= ceiling for w in waits)
        assert len(set(waits)) > 1  # drawn, not fixed


def test_a_server_hint_is_waited_at_least_and_never_past_the_cap():
    policy = Backoff(base=0.5, cap=8.0)
    assert policy.delay(1, retry_after=3.0) == 3.0
    assert policy.delay(1, retry_after=120.0) == 8.0
    assert Backoff(base=4.0, cap=8.0, jitter=0).delay(2, retry_after=1.0) == 8.0  # a shorter hint: our own wait
    assert retry_after_of(Transient(2.5)) == 2.5 and retry_after_of(Transient()) is None
    assert retry_after_of(ValueError()) is None


def test_run_tries_attempts_times_and_honours_the_hint(monkeypatch):
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    monkeypatch.setattr(asyncio, "sleep", sleep)
    calls = 0

    async def always_failing() -> None:
        nonlocal calls
        calls += 1
        raise Transient(retry_after=5.0)

    policy = Backoff(attempts=3, base=0.1, cap=6.0)
    with pytest.raises(Transient):
        asyncio.run(policy.run(always_failing, retry_if=lambda exc: isinstance(exc, Transient)))
    assert calls == 3 and slept == [5.0, 5.0]

    calls = 0
    with pytest.raises(Transient):
        asyncio.run(policy.run(always_failing, retry_if=lambda exc: False))
    assert calls == 1


def test_parse_retry_after_reads_seconds_and_http_dates():
    assert parse_retry_after("3") == 3.0 and parse_retry_after(" 1.5 ") == 1.5
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
    assert parse_retry_after("-4") == 0.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past


def test_jitter_is_a_share():
    with pytest.raises(ValueError):
        Backoff(jitter=1.5)


def test_the_loader_and_serve_take_their_delays_from_the_policy():
    loader = LoaderRetry(base_delay=0.1, max_delay=3.0)
    assert loader.backoff == Backoff(attempts=loader.attempts, base=0.1, cap=3.0, jitter=0.5)
    assert all(0.05 <= loader.delay(1) <= 0.1 for _ in range(20))
    assert loader.delay(9) <= 3.0
    assert loader.delay(1, Transient(retry_after=2.0)) == 2.0
    serve = ServeRetry(base=2.0, cap=300.0, jitter=0)
    assert [serve.delay(n) for n in (0, 1, 2, 9, 10_000)] == [0.0, 2.0, 4.0, 300.0, 300.0]
