"""Schedules (`schedule:` blocks), what is due, and back-off: the pure part of `serve`'s scheduler."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest

from engine.serve.scheduler import (
    PipelineState,
    RetryPolicy,
    Schedule,
    ScheduleError,
    apply_outcome,
    mark_due,
    next_fire_times,
    next_wakeup,
    parse_duration,
    parse_schedule,
    pick_batch,
    take,
)


@pytest.mark.parametrize(("value", "seconds"), [
    (30, 30.0), (1.5, 1.5), ("45", 45.0), ("30s", 30.0), ("5m", 300.0), ("1.5h", 5400.0), ("1d", 86400.0),
    (" 2 m ", 120.0),
])
def test_durations(value, seconds):
    assert parse_duration(value) == seconds


@pytest.mark.parametrize("value", ["5x", "m", "", "-3s", True, None, [5], "0.1s", 0])
def test_bad_durations_are_refused(value):
    with pytest.raises(ScheduleError):
        parse_duration(value)


def test_every_and_cron_blocks():
    assert parse_schedule({"every": "5m"}) == Schedule(every=300.0)
    assert parse_schedule({"cron": "*/15  6-20 * * mon-fri", "timezone": "Europe/Berlin"}) == Schedule(
        cron="*/15 6-20 * * mon-fri", timezone="Europe/Berlin")
    assert parse_schedule(None, default_every=900) == Schedule(every=900.0)
    assert parse_schedule({"every": 2}).describe() == "every 2s"
    assert parse_schedule({"every": "2h"}).describe() == "every 2h"


@pytest.mark.parametrize(("raw", "message"), [
    ({"every": "5m", "cron": "* * * * *"}, "exactly one of"),
    ({}, "exactly one of"),
    ({"every": "fast"}, "schedule.every"),
    ({"cron": "61 * * * *"}, "schedule.cron"),
    ({"cron": "* * * *"}, "schedule.cron"),
    ({"cron": "* * * * *", "timezone": "Mars/Olympus"}, "schedule.timezone"),
    ({"every": "5m", "jitter": 3}, "schedule.jitter"),
    ("5m", "mapping"),
])
def test_bad_blocks_name_the_field(raw, message):
    with pytest.raises(ScheduleError, match=message):
        parse_schedule(raw)


def test_no_block_and_no_default_is_an_error():
    with pytest.raises(ScheduleError, match="missing"):
        parse_schedule(None)


def test_interval_fire_times():
    start = datetime(2024, 5, 2, 12, 0, 0, tzinfo=UTC)
    times = next_fire_times(Schedule(every=90.0), start, 3)
    assert [(t - start).total_seconds() for t in times] == [90.0, 180.0, 270.0]


def test_cron_fire_times_follow_the_time_zone():
    friday_evening = datetime(2024, 5, 3, 18, 50, tzinfo=UTC)  # 20:50 in Berlin (CEST)
    times = next_fire_times(Schedule(cron="*/15 6-20 * * mon-fri", timezone="Europe/Berlin"), friday_evening, 3)
    assert [t.astimezone(UTC).isoformat() for t in times] == [
        "2024-05-06T04:00:00+00:00",  # Monday 06:00 in Berlin: nothing after 20:45 on a Friday
        "2024-05-06T04:15:00+00:00", "2024-05-06T04:30:00+00:00"]


def states(*names: str) -> dict[str, PipelineState]:
    return {n: PipelineState(n, Schedule(every=60.0)) for n in names}


def test_due_pipelines_of_one_customer_go_in_one_run_and_bursts_coalesce():
    s = states("suppliers", "purchase_orders", "invoices")
    assert pick_batch(s, now=0) == []
    mark_due(s, ["suppliers", "purchase_orders"], "schedule")
    mark_due(s, ["suppliers"], "webhook")  # a burst: still one run
    assert mark_due(s, ["nope"], "webhook") == []
    assert pick_batch(s, now=0) == ["suppliers", "purchase_orders"]
    assert take(s, ["suppliers", "purchase_orders"]) == {"suppliers": {"schedule", "webhook"},
                                                         "purchase_orders": {"schedule"}}
    assert pick_batch(s, now=0) == []
    mark_due(s, ["suppliers"], "schedule")  # a tick during the run: one more run after it
    assert apply_outcome(s, ["suppliers", "purchase_orders"], "ok", 1, RetryPolicy()) is None
    assert pick_batch(s, now=1) == ["suppliers"]


def test_a_failed_run_is_retried_alone_after_an_exponential_back_off():
    policy = RetryPolicy(base=2, cap=10, jitter=0)
    s = states("suppliers", "purchase_orders")
    mark_due(s, ["suppliers", "purchase_orders"], "schedule")
    take(s, ["suppliers", "purchase_orders"])
    assert apply_outcome(s, ["suppliers", "purchase_orders"], "error", 100, policy) == 2
    assert pick_batch(s, now=101) == [] and next_wakeup(s, now=101) == 1
    assert pick_batch(s, now=102) == ["suppliers"]  # failing pipelines go one at a time
    take(s, ["suppliers"])
    apply_outcome(s, ["suppliers"], "ok", 102, policy)
    assert pick_batch(s, now=102) == ["purchase_orders"]
    take(s, ["purchase_orders"])
    delays = [apply_outcome(s, ["purchase_orders"], "crashed", 200, policy) for _ in range(5)]
    assert delays == [4, 8, 10, 10, 10]  # the failures go on counting; the delay stops at the cap
    mark_due(s, ["suppliers"], "schedule")  # a healthy pipeline is not held back by the failing one
    assert pick_batch(s, now=201) == ["suppliers"]
    assert s["purchase_orders"].reasons == {"retry"}
    assert pick_batch(s, now=211) == ["purchase_orders"]  # nor starves it once its back-off is over


def test_failing_pipelines_take_turns_by_the_end_of_their_back_off():
    s = states("a", "b", "c")
    mark_due(s, ["a", "b", "c"], "schedule")
    s["a"].failures, s["a"].not_before = 1, 50
    s["b"].failures, s["b"].not_before = 3, 40
    assert pick_batch(s, now=45) == ["b"]
    assert pick_batch(s, now=55) == ["b"]
    take(s, ["b"])
    assert pick_batch(s, now=55) == ["a"]
    take(s, ["a"])
    assert pick_batch(s, now=55) == ["c"]


def test_a_busy_project_skips_the_tick_without_counting_a_failure():
    s = states("suppliers")
    mark_due(s, ["suppliers"], "schedule")
    take(s, ["suppliers"])
    assert apply_outcome(s, ["suppliers"], "busy", 5, RetryPolicy()) is None
    assert (s["suppliers"].due, s["suppliers"].failures) == (False, 0)


def test_finished_runs_with_record_problems_are_not_retried():
    s = states("invoices")
    s["invoices"].failures = 3
    for outcome in ("failed_records", "quarantined", "waiting", "ok"):
        mark_due(s, ["invoices"], "schedule")
        take(s, ["invoices"])
        apply_outcome(s, ["invoices"], outcome, 5, RetryPolicy())
        assert (s["invoices"].due, s["invoices"].failures) == (False, 0)


def test_back_off_jitter_stays_within_its_share():
    policy = RetryPolicy(base=1, cap=60, jitter=0.1)
    rng = random.Random(3)
    for failures in range(1, 10):
        ceiling = min(60, 2 ** (failures - 1))
        assert ceiling * 0.9 <= policy.delay(failures, rng) <= ceiling  # the last 10 % drawn; never over the cap
    assert policy.delay(0) == 0
