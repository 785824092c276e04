"""The one back-off policy: exponential, capped, jittered, honouring a server's `Retry-After`.

    policy = Backoff(attempts=4, base=0.5, cap=8.0)
    result = await policy.run(fetch, retry_if=lambda exc: getattr(exc, "is_transient", False))
    await asyncio.sleep(policy.delay(retry, retry_after=exc.retry_after))   # a loop of its own

The wait before retry n (n = 1 before the second try) has the ceiling `base·2^(n-1)`, at most `cap`;
`jitter` is the share of it drawn at random (1: anywhere up to the ceiling, "full jitter"; 0.5: the upper
half; 0: exactly the ceiling), so clients failing together do not retry in step. A server's hint
(`Retry-After`, in seconds) is waited at least, within `cap`. `attempts` counts every try, the first
included. Every retry loop of the engine takes its delays from here: the SAP B1 client and session, the
loader (`engine.load.executor.RetryPolicy`), the JAGGAER client and writer, the run's setup steps and
the scheduler's retries of failed runs (`engine.serve.scheduler.RetryPolicy`).
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import random
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import TypeVar

T = TypeVar("T")
log = logging.getLogger("engine.retry")

MAX_DOUBLINGS = 64  # beyond this the ceiling is `cap` anyway; keeps 2**n a float for any failure count


@dataclass(frozen=True)
class Backoff:
    attempts: int = 4
    base: float = 0.5  # seconds: the ceiling of the first wait
    cap: float = 8.0  # no single wait is longer (a server's hint included)
    jitter: float = 1.0  # the share of each wait drawn at random below its ceiling (0 to 1)
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not 0.0 <= self.jitter <= 1.0:
            raise ValueError(f"jitter is a share of the wait, between 0 and 1, not {self.jitter}")
        if self.base < 0 or self.cap < 0:
            raise ValueError(f"base and cap are seconds, not negative ({self.base}, {self.cap})")

    def ceiling(self, retry: int) -> float:
        """The longest wait before retry `retry` (1 = the first): `base·2^(retry-1)`, at most `cap`."""
        if retry <= 0:
            return 0.0
        return min(self.cap, self.base * 2.0 ** min(retry - 1, MAX_DOUBLINGS))

    def delay(self, retry: int, retry_after: float | None = None, *, rng: random.Random | None = None) -> float:
        """The wait before retry `retry` (1 = the first): jittered below its ceiling, and at least the
        server's `retry_after` hint (seconds), within `cap`. 0 for `retry` <= 0 without a hint."""
        ceiling = self.ceiling(retry)
        wait = ceiling * (1.0 - self.jitter * (rng or self.rng).random()) if self.jitter else ceiling
        if retry_after is not None and retry_after > 0:
            wait = max(wait, min(self.cap, retry_after))
        return wait

    def delays(self) -> Iterator[float]:
        """The waits between tries, without hints: attempts - 1 of them."""
        for retry in range(1, max(self.attempts, 1)):
            yield self.delay(retry)

    async def run(
        self,
        fn: Callable[[], Awaitable[T]],
        *,
        retry_if: Callable[[BaseException], bool],
        describe: str = "request",
    ) -> T:
        """Call `fn` until it succeeds, raises something `retry_if` rejects, or attempts run out. A
        `retry_after` attribute on the exception (seconds, e.g. from a 429's header) is honoured."""
        retry = 0
        while True:
            try:
                return await fn()
            except Exception as exc:
                if not retry_if(exc):
                    raise
                retry += 1
                if retry >= self.attempts:
                    raise
                delay = self.delay(retry, retry_after_of(exc))
                log.info("retrying %s in %.2fs after: %s", describe, delay, exc)
                await asyncio.sleep(delay)


def retry_after_of(exc: BaseException | None) -> float | None:
    """The server's hint an exception carries (`exc.retry_after`, seconds), if any."""
    hint = getattr(exc, "retry_after", None)
    return float(hint) if isinstance(hint, int | float) and not isinstance(hint, bool) and hint > 0 else None


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a `Retry-After` header: delta-seconds or an HTTP date (RFC 9110 §10.2.3)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


NO_RETRY = Backoff(attempts=1)
