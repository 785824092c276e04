"""Simulator settings: the fixed configuration and the runtime knobs (contract §12)."""

from __future__ import annotations

from dataclasses import dataclass

from simulators.faults import Knobs


@dataclass
class SapKnobs(Knobs):
    """Generic knobs plus the Service Layer's own. All default to off."""

    login_latency_ms: float = 0.0  # realistic profile: 3000
    write_latency_ms: float = 0.0  # per document write; realistic: 1000
    write_latency_per_line_ms: float = 0.0  # realistic: 50
    internal_error_rate: float = 0.0  # share of writes answered 400/-5002 before anything is applied
    session_kill_rate: float = 0.0  # share of requests whose session dies just before (401/301)
    user_locked: bool = False  # Login answers 401/100000055 `User is locked`
    duplicate_numatcard: bool = False  # company setting: refuse a repeated NumAtCard per supplier
    approval_procedures: bool = False  # purchasing POSTs become pending Drafts (answer -2028, or 204)
    expect_continue_500: bool = False  # answer `Expect: 100-continue` with an empty 500, like Apache
    webhooks_enabled: bool = False  # same as CompanyService_UpdateAdminInfo EnableWebhook tYES
    webhook_retry_times: int = 3
    webhook_retry_interval_s: float = 2.0
    webhook_timeout_s: float = 10.0
    webhook_batch_limit: int = 1024
    webhook_batch_window_ms: float = 20.0  # events committed within the window go in one POST


KNOB_HELP = {
    "latency_ms": "added to every API request", "jitter_ms": "plus a uniform random 0..N ms",
    "workers": "requests served at once (0 = unlimited)", "error_rate": "share answered 500/502/503",
    "drop_before_rate": "share dropped before anything is applied",
    "drop_after_rate": "share whose answer is lost after the write committed",
    "slow_rate": "share answered only after --slow-seconds", "slow_seconds": "delay of a slow answer",
    "random_seed": "seed of the fault dice", "login_latency_ms": "added to Login (realistic: 3000)",
    "write_latency_ms": "added to each write (realistic: 1000)",
    "write_latency_per_line_ms": "plus this per document line (realistic: 50)",
    "internal_error_rate": "share of writes answered 400/-5002", "session_kill_rate": "share of requests whose "
    "session dies first (401/301)", "user_locked": "Login answers 401/100000055",
    "duplicate_numatcard": "refuse a repeated NumAtCard per supplier (-5002/10001467)",
    "approval_procedures": "purchasing POSTs become pending Drafts", "expect_continue_500": "answer "
    "`Expect: 100-continue` with an empty 500", "webhooks_enabled": "deliver webhook notifications",
}

# Contract §12: what a real installation under load feels like (`--realistic`).
REALISTIC_PROFILE = {"login_latency_ms": 3000.0, "write_latency_ms": 1000.0, "write_latency_per_line_ms": 50.0,
                     "workers": 40}


@dataclass
class SimConfig:
    host: str = "127.0.0.1"
    port: int = 50000
    company: str = "SBODEMOUS"
    user: str = "manager"
    password: str = "manager"
    session_timeout: float = 1800.0
    seed: str = "demo"  # demo | empty
    state: str | None = None
    tls: bool = False
    max_body_bytes: int = 52_428_800
    version: str = "1000310"  # what Login reports (10.0 FP 2511-ish)
    page_size: int = 20
