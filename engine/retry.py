"""A shared retry policy: bounded exponential backoff with full jitter.

    policy = Backoff(attempts=4, base=0.5, cap=8.0)
    result = await policy.run(fetch, retry_if=lambda exc: getattr(exc, "is_transient", False))

`attempts` counts every try, the first included. A `retry_after` hint (seconds, e.g. from a 429's
`Retry-After`) on the exception is honoured, within `cap`.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import TypeVar

T = TypeVar("T")
log = logging.getLogger("engine.retry")


@dataclass(frozen=True)
class Backoff:
    attempts: int = 4
    base: float = 0.5  # seconds before the first retry (before jitter)
    cap: float = 8.0  # no single wait is longer
    jitter: bool = True
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    def delays(self) -> Iterator[float]:
        """The waits between tries: attempts - 1 of them."""
        for retry in range(max(self.attempts - 1, 0)):
            ceiling = min(self.cap, self.base * (2**retry))
            yield self.rng.uniform(0, ceiling) if self.jitter else ceiling

    async def run(
        self,
        fn: Callable[[], Awaitable[T]],
        *,
        retry_if: Callable[[BaseException], bool],
        describe: str = "request",
    ) -> T:
        """Call `fn` until it succeeds, raises something `retry_if` rejects, or attempts run out."""
        delays = self.delays()
        while True:
            try:
                return await fn()
            except Exception as exc:
                if not retry_if(exc):
                    raise
                delay = next(delays, None)
                if delay is None:
                    raise
                hint = getattr(exc, "retry_after", None)
                if isinstance(hint, int | float) and hint > 0:
                    delay = min(self.cap, max(delay, float(hint)))
                log.info("retrying %s in %.2fs after: %s", describe, delay, exc)
                await asyncio.sleep(delay)


NO_RETRY = Backoff(attempts=1)
