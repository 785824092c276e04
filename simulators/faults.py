"""Realism knobs shared by both simulators: latency, finite capacity and transport faults.

Each simulator keeps a `Knobs` instance, lets its CLI flags and its admin endpoint change it at
runtime, and wraps its API handler with `FaultInjector.handle`. Faults that only make sense for
one API (SAP's -5002, JAGGAER's returnCode -998, killed sessions) stay in that simulator.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from simulators.http import DropConnection, Request, Response


@dataclass
class Knobs:
    latency_ms: float = 0.0  # added to every API request
    jitter_ms: float = 0.0  # plus a uniform random 0..jitter
    workers: int = 0  # concurrent requests served at once; 0 = unlimited
    error_rate: float = 0.0  # share of requests answered 500/502/503 before anything is applied
    drop_before_rate: float = 0.0  # share dropped without an answer, before anything is applied
    drop_after_rate: float = 0.0  # share whose answer is lost after the request was applied
    slow_rate: float = 0.0  # share answered only after `slow_seconds` (client timeouts)
    slow_seconds: float = 30.0
    random_seed: int | None = None

    def update(self, changes: dict[str, Any]) -> list[str]:
        """Apply `changes` (from a flag set or an admin PATCH); return the names that are unknown."""
        known = {f.name: f for f in dataclasses.fields(self)}
        unknown = [name for name in changes if name not in known]
        for name, value in changes.items():
            if name in known and value is not None:
                setattr(self, name, _convert(getattr(self, name), value))
        return unknown

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _convert(current: Any, value: Any) -> Any:
    """Cast `value` to the type of the knob's current value; "false"/"0"/"no"/"off" are False."""
    if isinstance(current, bool):
        if isinstance(value, str):
            return value.strip().lower() not in ("", "0", "false", "no", "off")
        return bool(value)
    if current is None:
        return value
    return type(current)(value)


ErrorResponder = Callable[[Request, int], Response]
Handler = Callable[[Request], Awaitable[Response]]


class FaultInjector:
    """Applies `Knobs` around an API handler."""

    def __init__(self, knobs: Knobs, error_response: ErrorResponder) -> None:
        self.knobs = knobs
        self.error_response = error_response
        self.random = random.Random(knobs.random_seed)
        self._workers = 0
        self._semaphore: asyncio.Semaphore | None = None
        self.in_flight = 0
        self.counters = {"requests": 0, "errors": 0, "dropped_before": 0, "dropped_after": 0, "slow": 0}

    def _chance(self, rate: float) -> bool:
        return rate > 0 and self.random.random() < rate

    def _semaphore_for_now(self) -> asyncio.Semaphore | None:
        if self.knobs.workers <= 0:
            return None
        if self._semaphore is None or self._workers != self.knobs.workers:
            self._semaphore = asyncio.Semaphore(self.knobs.workers)
            self._workers = self.knobs.workers
        return self._semaphore

    async def handle(self, request: Request, handler: Handler) -> Response:
        semaphore = self._semaphore_for_now()
        if semaphore is None:
            return await self._handle(request, handler)
        async with semaphore:
            return await self._handle(request, handler)

    async def _handle(self, request: Request, handler: Handler) -> Response:
        knobs = self.knobs
        self.counters["requests"] += 1
        self.in_flight += 1
        try:
            delay = knobs.latency_ms + (self.random.uniform(0, knobs.jitter_ms) if knobs.jitter_ms else 0)
            if delay:
                await asyncio.sleep(delay / 1000)
            if self._chance(knobs.slow_rate):
                self.counters["slow"] += 1
                await asyncio.sleep(knobs.slow_seconds)
            if self._chance(knobs.drop_before_rate):
                self.counters["dropped_before"] += 1
                raise DropConnection()
            if self._chance(knobs.error_rate):
                self.counters["errors"] += 1
                return self.error_response(request, self.random.choice((500, 502, 503)))
            response = await handler(request)
            if self._chance(knobs.drop_after_rate):
                self.counters["dropped_after"] += 1
                raise DropConnection()
            return response
        finally:
            self.in_flight -= 1
