"""Loader benchmark: `run_pipelines` (the real run: plan from staging with the shipped supplier mapping,
load, ledger) against the SAP B1 simulator in a subprocess (latency 20 ms, 8 workers).

Prints, each as a ratio measured in the same run:
- push: engine records/s vs a bare httpx client POSTing the same payloads at the same concurrency
  (target >= 0.90), for the load step and for plan + load;
- steady state: writes per changed record (target <= 1.05);
- no-op: a run over N synced records (default 100,000): B1 writes (target 0) and its time vs the
  initial sync's (target < 5%). Latency 0 in this phase to keep the benchmark short.

    .venv/bin/python benchmarks/bench_load.py [--records 100000] [--push 800]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import httpx
import orjson
import pyarrow as pa
import yaml

from engine.mapping import load_mapping, strip_reserved
from engine.project import load_project
from engine.runner import RunReport, run_pipelines
from engine.state import db
from simulators.sapb1 import start_simulator

ROOT = Path(__file__).resolve().parents[1]
PIPELINE = "suppliers"
FIXTURE = yaml.safe_load((ROOT / "mappings" / "fixtures" / "supplier" / "basic.yaml").read_text())["record"]


def supplier(prefix: str, i: int, name: str = "") -> dict:
    """A J1P company profile as staged (the shipped fixture, with its own ids)."""
    info = dict(FIXTURE["returnCompanyInfo"], bravoId=f"{prefix}{i}", extCode=f"{prefix}{i:07d}",
                companyName=name or f"Supplier {prefix}{i}")
    return {"returnCompanyInfo": info}


def project(tmp: Path, name: str) -> Path:
    """A project beside the repository's: its pipelines, mappings and schemas, its own state file."""
    root = tmp / name
    root.mkdir()
    config = (ROOT / "ml-connector.yaml").read_text().replace("state: var/state.duckdb", "state: state.duckdb")
    (root / "ml-connector.yaml").write_text(config)
    for folder in ("pipelines", "mappings", "schemas"):
        (root / folder).symlink_to(ROOT / folder)
    return root


def stage(root: Path, records: list[dict]) -> None:
    """Put records in `staging.suppliers` as extraction would (merged by id)."""
    table = pa.table({"id": [r["returnCompanyInfo"]["bravoId"] for r in records],
                      "last_modified": [r["returnCompanyInfo"]["lastModTime"] for r in records],
                      "record": [orjson.dumps(r).decode() for r in records]})
    with db.connect(root / "state.duckdb") as conn:
        conn.execute("CREATE SCHEMA IF NOT EXISTS staging")
        conn.execute(f'CREATE TABLE IF NOT EXISTS staging."{PIPELINE}" '
                     "(id VARCHAR PRIMARY KEY, last_modified VARCHAR, record JSON)")
        conn.register("incoming", table)
        conn.execute(f'INSERT OR REPLACE INTO staging."{PIPELINE}" SELECT id, last_modified, record FROM incoming')


def run(root: Path, env: dict[str, str], concurrency: int) -> RunReport:
    report = run_pipelines(load_project(root, environ=env), [PIPELINE], extract=False, concurrency=concurrency)
    if report.aborted or not report.pipelines:
        raise SystemExit(f"run failed: {report.aborted}")
    return report


async def bare(sim, payloads: list[dict], concurrency: int, *, ref_field: bool = False) -> float:
    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=concurrency)) as http:
        login = await http.post(f"{sim.service_root('v2')}/Login", json=sim.login_body())
        cookie = "; ".join(f"{k}={v}" for k, v in login.cookies.items())
        if ref_field:  # the user field the payloads fill (the engine's setup step creates it on its side)
            field = {"Name": "JaggaerRef", "TableName": "OCRD", "Description": "JAGGAER reference",
                     "Type": "db_Alpha", "Size": 50}
            (await http.post(f"{sim.service_root('v2')}/UserFieldsMD", json=field, headers={"Cookie": cookie})
             ).raise_for_status()
        queue = list(payloads)
        started = time.monotonic()

        async def worker() -> None:
            while queue:
                r = await http.post(f"{sim.service_root('v2')}/BusinessPartners", json=queue.pop(),
                                    headers={"Cookie": cookie})
                r.raise_for_status()

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return time.monotonic() - started


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=100_000, help="records for the no-op run (default 100000)")
    parser.add_argument("--push", type=int, default=800, help="records for the throughput comparison")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3, help="alternating bare/engine push rounds (median)")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-load-"))
    mapping = load_mapping(ROOT / "mappings" / "supplier.yaml")
    # The bare client gets a simulator of its own (same seed, same knobs): its records carry our reference
    # field, which in the engine's B1 would be references written by someone else (and looked up).
    with start_simulator(seed="demo", subprocess=True) as sim, start_simulator(seed="demo", subprocess=True) as other:
        env = {"SAPB1_SERVICE_ROOT": sim.service_root("v2"), "SAPB1_COMPANY_DB": sim.company,
               "SAPB1_USERNAME": sim.user, "SAPB1_PASSWORD": sim.password,
               "JAGGAER_CLIENT_ID": "bench", "JAGGAER_CLIENT_SECRET": "bench"}
        sim.set_knobs(latency_ms=20, workers=8)
        other.set_knobs(latency_ms=20, workers=8)
        asyncio.run(bare(other, [strip_reserved(mapping.render(supplier("V", i)).payload) for i in range(20)],
                         args.concurrency, ref_field=True))
        # One project (one customer, one state file) through every phase, as in production: the ledger then
        # knows every reference in this B1, and creates of references never sent skip the lookup.
        root = project(tmp, "customer")
        stage(root, [supplier("W", i) for i in range(20)])  # creates the user field, warms both sides
        run(root, env, args.concurrency)

        ratios, plan_ratios = [], []
        for r in range(args.rounds):  # bare and engine alternate; the median round is reported (noisy cores)
            payloads = [strip_reserved(mapping.render(supplier(f"B{r}x", i)).payload) for i in range(args.push)]
            base_rate = args.push / asyncio.run(bare(other, payloads, args.concurrency))
            stage(root, [supplier(f"E{r}x", i) for i in range(args.push)])
            p = run(root, env, args.concurrency).pipelines[0]
            ratios.append(args.push / p.load_seconds / base_rate)
            plan_ratios.append(args.push / p.seconds / base_rate)
            print(f"  round {r + 1}: bare httpx {base_rate:6.1f} rec/s; engine load {args.push / p.load_seconds:6.1f} "
                  f"rec/s ({ratios[-1]:.3f}); plan + load {args.push / p.seconds:6.1f} rec/s ({plan_ratios[-1]:.3f}); "
                  f"created {p.stats.created}, writes {p.stats.writes}, lookups {p.stats.lookups}", flush=True)
        print(f"push: engine load / bare httpx = {statistics.median(ratios):.3f} (median of {args.rounds}; "
              f"target >= 0.90); plan + load / bare = {statistics.median(plan_ratios):.3f}")

        changed = [i for i in range(args.push) if i % 10 == 0]
        stage(root, [supplier(f"E{args.rounds - 1}x", i, name=f"Renamed {i}") for i in changed])
        p = run(root, env, args.concurrency).pipelines[0]
        print(f"steady state: {len(changed)} changed records -> {p.stats.writes} writes "
              f"= {p.stats.writes / len(changed):.3f} writes per changed record (target <= 1.05)")

        n = args.records
        print(f"no-op: syncing {n} records first (latency 0 for this phase) ...", flush=True)
        sim.set_knobs(latency_ms=0, workers=8)
        stage(root, [supplier("N", i) for i in range(n)])
        init = run(root, env, args.concurrency)
        before = sim.counters["writes"]
        again = run(root, env, args.concurrency)
        writes = sim.counters["writes"] - before
        total = n + 20 + args.rounds * args.push
        print(f"no-op over {total} synced records: {writes} writes (engine counted {again.writes}); "
              f"{again.seconds:.2f}s vs initial sync {init.seconds:.2f}s ({init.pipelines[0].stats.created} created) "
              f"= {100 * again.seconds / init.seconds:.2f}% (target < 5%)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
