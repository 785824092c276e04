"""JAGGAER-specific knobs (reference §10) on top of the shared `Knobs` (latency, 5xx, drops, slow)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from simulators.faults import Knobs

CHOICES = {
    "returncode_type": ("number", "string", "mixed"),
    "not_found_mode": ("envelope", "http404"),
    "unauthorized_body": ("empty", "json"),
}


@dataclass
class JaggaerKnobs(Knobs):
    page_size: int = 100  # records per list page (server-fixed)
    token_lifetime: int = 300  # seconds; `expires_in`
    returncode_type: str = "number"  # number | string | mixed (alternating per response)
    not_found_mode: str = "envelope"  # envelope (200 + returnCode 2) | http404 (404 + envelope)
    unauthorized_body: str = "empty"  # empty | json (never a WWW-Authenticate header)
    rate_limit: float = 0.0  # requests per second per token; 0 = off
    retry_after: int = 2  # seconds in `Retry-After` on 429; 0 = no header
    token_latency_ms: float = 0.0  # extra latency of the token endpoint
    retryable_rate: float = 0.0  # share of API requests answered returnCode -998
    dirty_data_rate: float = 0.0  # share of generated lines/suppliers with a data-quality wart

    def update(self, changes: dict[str, Any]) -> list[str]:
        """Validate, then apply; raises ValueError on a bad value (nothing is applied then)."""
        for name, allowed in CHOICES.items():
            if changes.get(name) is not None and changes[name] not in allowed:
                raise ValueError(f"{name} must be one of {', '.join(allowed)}, not {changes[name]!r}")
        for name, value in changes.items():
            if name.endswith("_rate") and value is not None and not 0 <= float(value) <= 1:
                raise ValueError(f"{name} must be between 0 and 1, not {value!r}")
        if changes.get("page_size") is not None and int(changes["page_size"]) < 1:
            raise ValueError("page_size must be at least 1")
        return super().update(changes)
