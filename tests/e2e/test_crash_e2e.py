"""Kill the loading process at random points; the next run must leave every record in B1 exactly
once and the ledger in agreement with B1 (intent before write, lookup before any re-send)."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.e2e.conftest import assert_exactly_once
from tests.e2e.driver import purchase_order, sync

ROOT = Path(__file__).resolve().parents[2]


def po_writes(sim) -> int:
    return sim.counters["writes_by_entity"].get("PurchaseOrders", {}).get("POST", 0)


def killed_run(sim, state: Path, n: int, after_writes: int, extra_delay: float) -> None:
    """Start a run and SIGKILL it once B1 has taken `after_writes` more writes (plus a random delay)."""
    start = po_writes(sim)
    proc = subprocess.Popen([sys.executable, "-m", "tests.e2e.driver", sim.service_root("v2"), str(state), str(n)],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while proc.poll() is None and po_writes(sim) - start < after_writes and time.monotonic() < deadline:
        time.sleep(0.005)
    time.sleep(extra_delay)
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


def crash_trials(sim, tmp_path: Path, trials: int, seed: int) -> None:
    rng = random.Random(seed)
    n = 90
    partial = 0
    records = {p["U_JaggaerRef"]: p for p in (purchase_order(i) for i in range(n))}
    for trial in range(trials):
        sim.reset()
        sim.set_knobs(latency_ms=8, workers=8, drop_after_rate=0.03, random_seed=trial)
        state = tmp_path / f"state-{trial}.duckdb"
        for _ in range(rng.randint(1, 3)):  # one to three crashes, at random points
            killed_run(sim, state, n, rng.randint(1, n // 3), rng.uniform(0, 0.05))
        landed = len([d for d in sim.entities("PurchaseOrders") if d.get("U_JaggaerRef")])
        partial += 0 < landed < n
        sim.set_knobs(drop_after_rate=0.0)
        stats = asyncio.run(sync(sim.service_root("v2"), state, records, run_id=f"final-{trial}"))
        assert stats.failed == 0, trial
        assert_exactly_once(sim, state, records)
    assert partial, "no kill interrupted a run half-way: the trial proves nothing"


def test_killed_at_random_points_every_record_lands_exactly_once(sapb1, tmp_path):
    crash_trials(sapb1, tmp_path, trials=3, seed=1)


@pytest.mark.slow
def test_killed_at_random_points_many_trials(sapb1, tmp_path):
    crash_trials(sapb1, tmp_path, trials=25, seed=2)
