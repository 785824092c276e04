"""Reconcile benchmark: `reconcile purchase_orders` over N synced orders (default 10,000) against the SAP B1
simulator in a subprocess, as a RATIO against what a run that does nothing costs plus one bare read.

    .venv/bin/python benchmarks/bench_reconcile.py [--records 10000] [--rounds 3]

Set-up (not timed): the JAGGAER simulator (a subprocess) seeded with N purchase orders; one real run of
`suppliers` and `purchase_orders` (extract -> plan -> load) into the SAP B1 simulator (latency 0).

Timed, alternating, median of `--rounds`:
- reconcile: `engine.reconcile.reconcile(load_project(root), ["purchase_orders"])` — lock, ledger and staging read, one
  paged B1 query, comparison of every order, the drift table written;
- baseline: a no-op `run purchase_orders --no-extract` (login, user-field and code checks, plan: nothing to
  send) plus one bare httpx paged read of the same query (same `$filter`, `$select`, page size), bodies
  parsed as JSON (a reader must parse them to compare anything).
Prints both, their ratio (target < 2x), and a no-op run WITH extraction (the JAGGAER overlap re-read)
for reference. Nothing is asserted about timing; the drift found must be none (a clean sync).
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from engine.project import load_project  # noqa: E402
from engine.reconcile import PAGE_SIZE, reconcile  # noqa: E402
from engine.runner import run_pipelines  # noqa: E402
from engine.state import db  # noqa: E402
from simulators.jaggaer import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET  # noqa: E402
from simulators.sapb1 import start_simulator  # noqa: E402
from tests.e2e.project_fixture import copy_project  # noqa: E402

sys.path.insert(0, str(REPO / "benchmarks"))
from bench_extract import free_port  # noqa: E402  (the JAGGAER simulator in a subprocess, as there)
from bench_extract import start_simulator as start_jaggaer  # noqa: E402

PIPELINE = "purchase_orders"


def select_of(state: Path) -> list[str]:
    """The `$select` reconcile sends: key, reference, document state, lines and every field our payloads set."""
    with db.connect(state, read_only=True) as conn:
        keys = [k for (k,) in conn.execute(
            "SELECT DISTINCT unnest(json_keys(payload)) FROM ledger WHERE pipeline = ? AND payload IS NOT NULL",
            [PIPELINE]).fetchall()]
    fields = sorted(k for k in keys if not k.startswith("_"))
    return list(dict.fromkeys(["DocEntry", "U_JaggaerRef", "DocumentStatus", "Cancelled", "DocumentLines", *fields]))


async def bare_read(sim, select: list[str]) -> tuple[int, int, float]:
    """(records, requests, seconds): log in, one paged query followed to its end, every page parsed."""
    started = time.perf_counter()
    async with httpx.AsyncClient(timeout=120) as http:
        root = sim.service_root("v2")
        login = await http.post(f"{root}/Login", json=sim.login_body())
        login.raise_for_status()
        headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in login.cookies.items()),
                   "Prefer": f"odata.maxpagesize={PAGE_SIZE}", "Accept": "application/json"}
        url: str | None = f"{root}/PurchaseOrders"
        params: dict[str, str] | None = {"$filter": "U_JaggaerRef ne null", "$select": ",".join(select)}
        records = requests = 0
        while url:
            response = await http.get(url, params=params, headers=headers)
            response.raise_for_status()
            requests += 1
            page = response.json()
            records += len(page["value"])
            link = page.get("@odata.nextLink")
            url, params = (link if link.startswith("http") else f"{root}/{link}", None) if link else (None, None)
        await http.post(f"{root}/Logout", headers=headers)
    return records, requests, time.perf_counter() - started


def measure(n: int, rounds: int, concurrency: int) -> dict[str, float]:
    tmp = Path(tempfile.mkdtemp(prefix="bench-reconcile-"))
    port = free_port()
    jaggaer = start_jaggaer(n, port)
    try:
        with start_simulator(seed="demo", subprocess=True) as sim:
            env = {"JAGGAER_BASE_URL": f"http://127.0.0.1:{port}", "JAGGAER_CLIENT_ID": DEFAULT_CLIENT_ID,
                   "JAGGAER_CLIENT_SECRET": DEFAULT_CLIENT_SECRET, "SAPB1_SERVICE_ROOT": sim.service_root("v2"),
                   "SAPB1_COMPANY_DB": sim.company, "SAPB1_USERNAME": sim.user, "SAPB1_PASSWORD": sim.password}
            root = copy_project(tmp / "project")
            print(f"[{n}] set-up: syncing suppliers and {n} purchase orders (not timed) ...", flush=True)
            started = time.monotonic()
            sync = run_pipelines(load_project(root, environ=env), ["suppliers", PIPELINE], concurrency=concurrency)
            orders = next(p for p in sync.pipelines if p.name == PIPELINE)
            if sync.aborted or orders.stats.failed:
                raise SystemExit(f"set-up sync failed: {sync.aborted or orders.problems[:3]}")
            print(f"[{n}] set-up done in {time.monotonic() - started:.1f}s: {orders.stats.created} orders created, "
                  f"{orders.planned.get('ignore', 0)} left out by the mapping (cancelled in JAGGAER)", flush=True)
            select = select_of(root / "var" / "state.duckdb")
            writes_before = sim.counters["writes"]

            rec, noop, bare, full = [], [], [], []
            drift = requests = records = bare_requests = 0
            for r in range(rounds):
                t = time.perf_counter()
                result = reconcile(load_project(root, environ=env), [PIPELINE])
                rec.append(time.perf_counter() - t)
                drift, requests = len(result.findings), result.requests
                records = result.pipelines[0].b1_records
                t = time.perf_counter()
                again = run_pipelines(load_project(root, environ=env), [PIPELINE], extract=False, concurrency=concurrency)
                noop.append(time.perf_counter() - t)
                count, bare_requests, seconds = asyncio.run(bare_read(sim, select))
                bare.append(seconds)
                if again.writes or count != records:
                    raise SystemExit(f"not a no-op: {again.writes} writes; bare read {count} vs reconcile {records}")
                print(f"  round {r + 1}: reconcile {rec[-1]:.2f}s; no-op run {noop[-1]:.2f}s + bare read {bare[-1]:.2f}s "
                      f"= {noop[-1] + bare[-1]:.2f}s; ratio {rec[-1] / (noop[-1] + bare[-1]):.2f}", flush=True)
            t = time.perf_counter()
            with_extract = run_pipelines(load_project(root, environ=env), [PIPELINE], concurrency=concurrency)
            full.append(time.perf_counter() - t)
            if sim.counters["writes"] != writes_before:
                raise SystemExit("SAP B1 was written to during the measurement")
    finally:
        jaggaer.terminate()
        jaggaer.wait(30)
        shutil.rmtree(tmp, ignore_errors=True)
    figures = {"records": records, "reconcile": statistics.median(rec), "noop": statistics.median(noop),
               "bare": statistics.median(bare), "drift": drift, "requests": requests, "bare_requests": bare_requests,
               "noop_extract": full[0], "extracted": sum(with_extract.extracted.values())}
    base = figures["noop"] + figures["bare"]
    print(f"[{n}] {records} orders in SAP B1: reconcile {figures['reconcile']:.2f}s ({requests} B1 requests, "
          f"{drift} findings) vs no-op run (--no-extract) {figures['noop']:.2f}s + bare paged read {figures['bare']:.2f}s "
          f"({bare_requests} requests) = {base:.2f}s -> ratio {figures['reconcile'] / base:.2f}x (target < 2x; "
          f"median of {rounds})")
    full_base = figures["noop_extract"] + figures["bare"]
    print(f"[{n}] for reference: a no-op run WITH extraction took {figures['noop_extract']:.2f}s "
          f"({figures['extracted']} list rows re-read); reconcile / (that + bare read) = "
          f"{figures['reconcile'] / full_base:.2f}x", flush=True)
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, nargs="+", default=[10_000],
                        help="purchase orders seeded, one measurement each (default 10000)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating reconcile/baseline rounds (median)")
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    results = [measure(n, args.rounds, args.concurrency) for n in args.records]
    print("summary:")
    for f in results:
        base = f["noop"] + f["bare"]
        print(f"  {f['records']:>6} orders: reconcile {f['reconcile']:.2f}s, no-op run + bare read {base:.2f}s, "
              f"ratio {f['reconcile'] / base:.2f}x, findings {f['drift']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
