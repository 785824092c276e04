"""A token bucket per access token: `rate` requests per second, bursts up to `rate`."""

from __future__ import annotations

import time


class RateLimiter:
    def __init__(self) -> None:
        self._buckets: dict[str, tuple[float, float]] = {}

    def allow(self, key: str, rate: float, now: float | None = None) -> bool:
        """Take one request from `key`'s bucket; False when it is empty. `rate` <= 0 means no limit."""
        if rate <= 0:
            return True
        now = time.monotonic() if now is None else now
        capacity = max(1.0, rate)
        tokens, last = self._buckets.get(key, (capacity, now))
        tokens = min(capacity, tokens + (now - last) * rate)
        if tokens < 1.0:
            self._buckets[key] = (tokens, now)
            return False
        self._buckets[key] = (tokens - 1.0, now)
        if len(self._buckets) > 10_000:  # forget idle tokens
            self._buckets = {k: v for k, v in self._buckets.items() if now - v[1] < 60}
        return True
