"""Loader benchmark against the SAP B1 simulator in a subprocess (latency 20 ms, 8 workers).

Prints: engine push throughput vs a bare httpx client POSTing the same kind of payloads at the same
concurrency in the same run (target >= 0.90); writes per changed record in steady state (<= 1.05);
a no-op run over N synced records: zero writes, and its cost vs the initial sync (< 5%).

    .venv/bin/python benchmarks/bench_load.py [--records N] [--push 800]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

import httpx

from engine import db
from engine.load import Action, Loader, Operation, Target, store
from engine.load.bridge import LedgerJournal, fingerprint
from engine.load.slport import SlPort
from engine.sapb1 import SapB1Client, ensure_user_field
from simulators.sapb1 import start_simulator

TARGET = Target("BusinessPartners", "CardCode", "U_JaggaerRef")
PIPELINE = "suppliers"


def supplier(prefix: str, i: int, name: str = "") -> dict:
    return {"CardCode": f"{prefix}{i:07d}", "CardName": name or f"Supplier {i}", "CardType": "cSupplier",
            "U_JaggaerRef": f"{prefix}-{i}"}


async def bare(sim, payloads: list[dict], concurrency: int) -> float:
    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=concurrency)) as http:
        login = await http.post(f"{sim.service_root('v2')}/Login", json=sim.login_body())
        cookie = "; ".join(f"{k}={v}" for k, v in login.cookies.items())
        queue = list(payloads)
        started = time.monotonic()

        async def worker() -> None:
            while queue:
                r = await http.post(f"{sim.service_root('v2')}/BusinessPartners", json=queue.pop(),
                                    headers={"Cookie": cookie})
                r.raise_for_status()

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return time.monotonic() - started


def plan(conn, payloads: list[dict]) -> list[Operation]:
    rows = store.ledger_rows(conn, PIPELINE)
    ops = []
    for p in payloads:
        ref, fp = p["U_JaggaerRef"], fingerprint(p)
        row = rows.get(ref)
        if row is None or row["target_key"] is None:
            ops.append(Operation(PIPELINE, ref, Action.CREATE, p, fp, "b", full_payload=p))
        elif row["fingerprint"] != fp:
            changes = {k: v for k, v in p.items() if (row["payload"] or {}).get(k) != v}
            ops.append(Operation(PIPELINE, ref, Action.UPDATE, changes, fp, "b", key=row["target_key"], full_payload=p))
    return ops


async def engine_run(sim, state: Path, payloads: list[dict], concurrency: int, run_id: str) -> tuple[float, object]:
    started = time.monotonic()
    with db.connect(state) as conn:
        store.ensure_tables(conn)
        ops = plan(conn, payloads)
        async with SapB1Client(sim.service_root("v2"), sim.company, sim.user, sim.password,
                               max_concurrency=concurrency) as client:
            await ensure_user_field(client, "OCRD", "JaggaerRef", "JAGGAER reference")
            loader = Loader(SlPort(client), LedgerJournal(conn, run_id, TARGET, PIPELINE, {}), concurrency=concurrency)
            await loader.load(TARGET, ops)
    return time.monotonic() - started, loader.stats


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=100_000, help="records for the no-op run (default 100000)")
    parser.add_argument("--push", type=int, default=800, help="records for the throughput comparison")
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-load-"))
    with start_simulator(seed="demo", subprocess=True) as sim:
        sim.set_knobs(latency_ms=20, workers=8)
        asyncio.run(engine_run(sim, tmp / "warm.duckdb", [supplier("W", i) for i in range(20)], args.concurrency, "warm"))
        base_s = asyncio.run(bare(sim, [supplier("B", i) for i in range(args.push)], args.concurrency))
        push = [supplier("E", i) for i in range(args.push)]
        eng_s, stats = asyncio.run(engine_run(sim, tmp / "push.duckdb", push, args.concurrency, "push"))
        ratio = (args.push / eng_s) / (args.push / base_s)
        print(f"push: bare httpx {args.push / base_s:7.1f} rec/s, engine {args.push / eng_s:7.1f} rec/s "
              f"-> ratio {ratio:.3f} (target >= 0.90); engine writes {stats.writes}, lookups {stats.lookups}")
        changed = [supplier("E", i, name=f"Renamed {i}") if i % 10 == 0 else p for i, p in enumerate(push)]
        n_changed = sum(1 for i in range(args.push) if i % 10 == 0)
        _, stats = asyncio.run(engine_run(sim, tmp / "push.duckdb", changed, args.concurrency, "change"))
        print(f"steady state: {n_changed} changed records -> {stats.writes} writes "
              f"= {stats.writes / n_changed:.3f} writes per changed record (target <= 1.05)")
        n = args.records
        print(f"no-op: syncing {n} records first (latency 0 for this phase, to keep the benchmark short) ...",
              flush=True)
        sim.set_knobs(latency_ms=0, workers=8)
        records = [supplier("N", i) for i in range(n)]
        init_s, init = asyncio.run(engine_run(sim, tmp / "noop.duckdb", records, args.concurrency, "init"))
        before = sim.counters["writes"]
        noop_s, noop = asyncio.run(engine_run(sim, tmp / "noop.duckdb", records, args.concurrency, "noop"))
        writes = sim.counters["writes"] - before
        print(f"no-op over {n} synced records: {writes} writes (engine counted {noop.writes}); "
              f"{noop_s:.2f}s vs initial sync {init_s:.2f}s ({init.created} created) "
              f"= {100 * noop_s / init_s:.2f}% (target < 5%)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
