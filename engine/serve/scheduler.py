"""When pipelines run under `ml-connector serve`: cadences, what is due, back-off after a failure.

    schedule = parse_schedule({"every": "5m"})                 # or {"cron": "*/15 6-20 * * mon-fri", "timezone": ...}
    trigger = make_trigger(schedule)                           # an APScheduler trigger: the library keeps time
    batch = pick_batch(states, now)                            # the pipelines of one customer to run now
    apply_outcome(states, batch, "error", now, policy)         # failed: due again after a back-off

Everything here is pure (no threads, no printing): `engine.serve.service` wires it to APScheduler and
to the run processes. A tick only marks a pipeline due; a customer's due pipelines then go together in
one run (`run_pipelines` orders them by dependency), so a cadence faster than a run coalesces instead
of piling up. A pipeline whose run failed is retried alone after an exponential back-off, so a
broken pipeline does not hold back the customer's others.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from engine.retry import Backoff

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
MIN_EVERY = 0.5  # seconds: a faster cadence is a mistake, not a schedule

# Run outcomes (`engine.serve.child.RunResult.outcome`) and what the scheduler does with each.
COMPLETED = ("ok", "failed_records", "quarantined", "waiting")  # the run finished: its records are reported
RETRIED = ("error", "crashed", "aborted")  # the run did not finish: due again after a back-off
SKIPPED = ("busy",)  # another run held the project or company: this tick is skipped, not a failure


class ScheduleError(ValueError):
    """A `schedule:` block that cannot be used; the message names the field."""


@dataclass(frozen=True)
class Schedule:
    """A pipeline's cadence: every `every` seconds, or on a five-field crontab in `timezone`."""

    every: float | None = None
    cron: str | None = None
    timezone: str = "UTC"

    def describe(self) -> str:
        if self.cron:
            return f"cron '{self.cron}' ({self.timezone})"
        return f"every {format_duration(self.every or 0)}"


def parse_duration(value: Any) -> float:
    """Seconds from a number (seconds) or a text such as `30s`, `5m`, `1.5h`, `1d` (a bare number is seconds)."""
    if isinstance(value, bool):
        raise ScheduleError(f"expected a duration such as 30s, 5m, 1h, got {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and (match := _DURATION.match(value)):
        seconds = float(match.group(1)) * _UNITS[match.group(2) or "s"]
    else:
        raise ScheduleError(f"expected a duration such as 30s, 5m, 1h, got {value!r}")
    if seconds < MIN_EVERY:
        raise ScheduleError(f"a cadence of {value!r} is too short (at least {MIN_EVERY}s)")
    return seconds


def format_duration(seconds: float) -> str:
    for unit in ("d", "h", "m"):
        if seconds >= _UNITS[unit] and seconds % _UNITS[unit] == 0:
            return f"{int(seconds // _UNITS[unit])}{unit}"
    return f"{seconds:g}s"


def parse_schedule(raw: Mapping[str, Any] | None, *, default_every: float | None = None) -> Schedule:
    """A pipeline's `schedule:` block (validated loosely by the pipeline schema) as a `Schedule`, every
    value checked: a duration, or a crontab APScheduler accepts and a known time zone. Without a block,
    `default_every` seconds (`serve --every`); raises ScheduleError naming the field."""
    if raw is None:
        if default_every is None:
            raise ScheduleError("schedule: missing (give `every` or `cron`)")
        return Schedule(every=parse_duration(default_every))
    if not isinstance(raw, Mapping):
        raise ScheduleError("schedule: expected a mapping with `every` or `cron`")
    unknown = sorted(set(raw) - {"every", "cron", "timezone"})
    if unknown:
        raise ScheduleError(f"schedule.{unknown[0]}: unknown field")
    has_every, has_cron = raw.get("every") is not None, raw.get("cron") is not None
    if has_every == has_cron:
        raise ScheduleError("schedule: give exactly one of `every` or `cron`")
    timezone = raw.get("timezone") or "UTC"
    try:
        ZoneInfo(str(timezone))
    except (ZoneInfoNotFoundError, ValueError):
        raise ScheduleError(f"schedule.timezone: unknown time zone {timezone!r}") from None
    if has_every:
        try:
            return Schedule(every=parse_duration(raw["every"]), timezone=str(timezone))
        except ScheduleError as exc:
            raise ScheduleError(f"schedule.every: {exc}") from None
    cron = " ".join(str(raw["cron"]).split())
    schedule = Schedule(cron=cron, timezone=str(timezone))
    try:
        make_trigger(schedule)
    except ValueError as exc:
        raise ScheduleError(f"schedule.cron: {cron!r}: {exc}") from None
    return schedule


def make_trigger(schedule: Schedule, *, start: datetime | None = None) -> Any:
    """The APScheduler trigger of a schedule (an interval anchored at `start`, or a crontab)."""
    from apscheduler.triggers.cron import CronTrigger
    from apscheduler.triggers.interval import IntervalTrigger

    zone = ZoneInfo(schedule.timezone)
    if schedule.cron:
        return CronTrigger.from_crontab(schedule.cron, timezone=zone)
    return IntervalTrigger(seconds=float(schedule.every or 0), start_date=start or datetime.now(UTC), timezone=zone)


def next_fire_times(schedule: Schedule, after: datetime, count: int = 3) -> list[datetime]:
    """The next `count` times the schedule fires after `after` (for display and tests)."""
    trigger = make_trigger(schedule, start=after)
    out: list[datetime] = []
    previous: datetime | None = None
    now = after
    while len(out) < count:
        fire = trigger.get_next_fire_time(previous, now)
        if fire is None:
            break
        if fire > after:
            out.append(fire)
        previous, now = fire, fire
    return out


# --------------------------------------------------------------------------- due pipelines and back-off


@dataclass(frozen=True)
class RetryPolicy:
    """Back-off between retries of a failed pipeline, from the one policy (`engine.retry.Backoff`):
    base·2^(n-1), at most `cap`, the last `jitter` of it drawn at random (so customers failing together
    do not retry in step)."""

    base: float = 2.0
    cap: float = 300.0
    jitter: float = 0.1

    @cached_property
    def backoff(self) -> Backoff:
        return Backoff(base=self.base, cap=self.cap, jitter=self.jitter)

    def delay(self, failures: int, rng: random.Random | None = None) -> float:
        """The wait after `failures` consecutive failed runs (0 after none)."""
        return self.backoff.delay(failures, rng=rng)


@dataclass
class PipelineState:
    """One pipeline of one customer, as the scheduler sees it (times are `time.monotonic()`)."""

    name: str
    schedule: Schedule
    due: bool = False
    failures: int = 0  # consecutive runs that did not finish
    not_before: float = 0.0  # a failed pipeline waits for its back-off
    reasons: set[str] = field(default_factory=set)  # why it is due: schedule, retry, webhook


def mark_due(states: Mapping[str, PipelineState], names: Iterable[str], reason: str) -> list[str]:
    """Mark pipelines due (a tick, a webhook); a burst marks them once. The names marked."""
    marked = []
    for name in names:
        state = states.get(name)
        if state is not None:
            state.due = True
            state.reasons.add(reason)
            marked.append(name)
    return marked


def pick_batch(states: Mapping[str, PipelineState], now: float) -> list[str]:
    """The pipelines to run now, in one run: a failing pipeline whose back-off is over goes first and
    alone (it cannot hold back the others, and a busy cadence of the others cannot starve it: it waited
    its back-off); otherwise every due pipeline in good standing, together. [] if none."""
    ready = [s for s in states.values() if s.due and s.not_before <= now]
    failing = sorted((s for s in ready if s.failures), key=lambda s: s.not_before)
    if failing:
        return [failing[0].name]
    return [s.name for s in ready]


def next_wakeup(states: Mapping[str, PipelineState], now: float) -> float | None:
    """Seconds until a due pipeline's back-off ends (None: nothing due waits for one)."""
    waits = [s.not_before - now for s in states.values() if s.due and s.not_before > now]
    return max(0.0, min(waits)) if waits else None


def take(states: Mapping[str, PipelineState], batch: Iterable[str]) -> dict[str, set[str]]:
    """A run starts: its pipelines are no longer due (a tick during the run makes them due again). The
    reasons each was due."""
    reasons = {}
    for name in batch:
        state = states[name]
        reasons[name] = set(state.reasons)
        state.due, state.reasons = False, set()
    return reasons


def apply_outcome(states: Mapping[str, PipelineState], batch: Iterable[str], outcome: str, now: float,
                  policy: RetryPolicy, rng: random.Random | None = None) -> float | None:
    """After a run of `batch` ended with `outcome`: a finished run clears the failures; a skipped one
    (another run held the lock) is just skipped; a failed one makes its pipelines due again after the
    back-off. The back-off delay in seconds when there is one."""
    delay = None
    for name in batch:
        state = states[name]
        if outcome in COMPLETED:
            state.failures, state.not_before = 0, 0.0
        elif outcome in RETRIED:
            state.failures += 1
            delay = policy.delay(state.failures, rng)
            state.not_before = now + delay
            state.due = True
            state.reasons.add("retry")
    return delay
