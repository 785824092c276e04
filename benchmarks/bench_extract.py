"""Extraction benchmark: purchase orders (with lines, from per-record detail reads) from the JAGGAER
simulator into DuckDB staging, as a RATIO against a bare concurrent httpx client in the same run.

    .venv/bin/python benchmarks/bench_extract.py [--records 100000] [--concurrency 8]

Prints: records/s and requests of the engine and of the baseline (same list pages and detail records,
same concurrency) and their ratio (target >= 0.70); the staging write path alone (validate + Arrow +
dlt merge into DuckDB of records already in memory; target >= 5,000 records/s); a second run with no
changes as a share of the first (target < 5 %; the simulator's seed is back-dated over 30 days, §4.5
way 1, so the overlap window re-reads only the newest records); RSS samples during the pull (flat =
streamed) and the peak.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import orjson

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import engine.spec  # noqa: E402
from engine.extract import Stager, extract_pipelines  # noqa: E402
from engine.project import load_project  # noqa: E402

TOKEN_PATH = "/auth/realms/J1p-integrations/protocol/openid-connect/token"
LIST = "/j1p/api/public/je/v1/purchaseorders"
FILTER = "workflowStatus==Completed"


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_simulator(records: int, port: int) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-c", "import sys; from engine.cli import main; sys.exit(main())", "sim", "jaggaer",
           "--seed", str(records), "--random-seed", "7", "--history-days", "30", "--port", str(port)]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit("simulator exited during start-up")
        try:
            httpx.get(f"http://127.0.0.1:{port}/_sim/knobs", timeout=1)
            return proc
        except httpx.HTTPError:
            time.sleep(0.5)
    proc.kill()
    raise SystemExit("simulator did not start within 600 s")


def make_project(root: Path, concurrency: int) -> None:
    (root / "pipelines").mkdir(parents=True)
    (root / "mappings").mkdir()
    (root / "schemas" / "jaggaer").mkdir(parents=True)
    for name, mapping, schema in (("purchase_orders", "purchase_order", "purchase-order"),
                                  ("suppliers", "supplier", "company-profile")):
        shutil.copy(REPO / "pipelines" / f"{name}.yaml", root / "pipelines")
        (root / "mappings" / f"{mapping}.yaml").write_text("fields: {}\n")  # not measured here
        source = REPO / "schemas" / "jaggaer" / f"{schema}.schema.json"
        target = root / "schemas" / "jaggaer" / f"{schema}.schema.json"
        if source.is_file():
            shutil.copy(source, target)
        else:  # stand-in until the simulator's record schemas land
            from tests.engine.extract.conftest import PO_SCHEMA

            target.write_text(json.dumps(PO_SCHEMA if name == "purchase_orders" else {"type": "object"}))
    text = (REPO / "ml-connector.yaml").read_text().replace("max_concurrency: 8", f"max_concurrency: {concurrency}")
    (root / "ml-connector.yaml").write_text(text)


async def baseline(base_url: str, client_id: str, secret: str, concurrency: int, keep: int) -> tuple[int, int, float, list]:
    """Bare httpx (default transport): walk the same list (offset paging, same pages) and GET every record,
    `concurrency` at a time. It parses the list pages (it needs them to page), not the detail bodies."""
    kept: list[dict] = []
    requests = 0
    started = time.perf_counter()
    limits = httpx.Limits(max_connections=concurrency + 2, max_keepalive_connections=concurrency + 2)
    async with httpx.AsyncClient(timeout=60, limits=limits) as http:
        token = (await http.post(base_url + TOKEN_PATH, data={"grant_type": "client_credentials", "client_id": client_id,
                                                             "client_secret": secret})).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        sem = asyncio.Semaphore(concurrency)
        count = 0

        async def detail(po_id: int) -> None:
            nonlocal requests, count
            async with sem:
                response = await http.get(f"{base_url}{LIST}/{po_id}", headers=headers)
                requests += 1
                count += 1
                # a bare client parses only what it needs to page: detail bodies stay bytes
                if len(kept) < keep and response.status_code == 200:
                    kept.append(response.content)  # raw bytes: the write test parses them later

        tasks: list[asyncio.Task] = []
        start = 1
        while True:
            page = (await http.get(base_url + LIST, params={"flt": f"{FILTER};lastUpdate=ge=1970-01-01T00:00:00.000Z",
                                                            "start": str(start)}, headers=headers)).json()
            requests += 1
            items = page["jepurchaseorderList"]["jepurchaseorder"]
            if not items:
                break
            tasks += [asyncio.ensure_future(detail(i["header"]["purchaseOrderId"])) for i in items]
            tasks = [t for t in tasks if not t.done()]
            while len(tasks) > 3 * 100:  # keep the walk a few pages ahead, like the engine
                await asyncio.sleep(0.005)
                tasks = [t for t in tasks if not t.done()]
            start += len(items)
            if start > page["totRecords"]:
                break
        await asyncio.gather(*tasks)
    return count, requests, time.perf_counter() - started, kept


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000, help="purchase orders seeded (default 100000)")
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    engine.spec._mapping_problems = lambda path, target_entity: []  # stand-in mapping: not measured here

    port = free_port()
    t0 = time.perf_counter()
    sim = start_simulator(args.records, port)
    print(f"simulator: {args.records} purchase orders seeded in {time.perf_counter() - t0:.1f}s (subprocess, port {port})")
    from simulators.jaggaer.app import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET

    base_url = f"http://127.0.0.1:{port}"
    os.environ.update(JAGGAER_BASE_URL=base_url, JAGGAER_CLIENT_ID=DEFAULT_CLIENT_ID,
                      JAGGAER_CLIENT_SECRET=DEFAULT_CLIENT_SECRET)
    work = Path(tempfile.mkdtemp(prefix="bench-extract-"))
    try:
        make_project(work / "project", args.concurrency)
        project = load_project(work / "project")

        # the baseline runs before and after the engine; their mean evens out load from other processes
        n_base, req_base, t_base, sample = asyncio.run(
            baseline(base_url, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, args.concurrency, keep=10_000))

        samples: list[tuple[int, float]] = []
        marks = iter([0.1, 0.25, 0.5, 0.75, 0.95, 2.0])
        next_mark = [next(marks)]

        def progress(pipeline: str, done: int, total: int | None) -> None:
            if total and done >= next_mark[0] * total:
                samples.append((done, rss_mb()))
                next_mark[0] = next(marks)

        [first] = extract_pipelines(project, ["purchase_orders"], progress=progress)
        peak_pull = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        if not first.ok:
            raise SystemExit(f"extraction failed: {first.summary()}")
        staged = first.new + first.changed
        rate = staged / first.duration_s
        [second] = extract_pipelines(project, ["purchase_orders"])
        n_base2, _, t_base2, _ = asyncio.run(
            baseline(base_url, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, args.concurrency, keep=0))
        base_rates = (n_base / t_base, n_base2 / t_base2)
        base_rate = sum(base_rates) / 2

        # the staging write path alone: records already in memory -> validate -> Arrow -> dlt -> DuckDB
        spec = project.pipeline("purchase_orders")
        records = [orjson.loads(raw) for raw in sample]
        rows = [(str(r["header"]["purchaseOrderId"]), r["header"]["lastUpdate"], r, raw)
                for r, raw in zip(records, sample, strict=True)]
        write_rates = []
        for attempt in range(3):  # median of three fresh state files: the cores are shared and noisy
            alone = load_project(work / "project")
            object.__setattr__(alone, "state_path", work / f"alone{attempt}" / "state.duckdb")
            stager = Stager(alone, spec)
            t = time.perf_counter()
            for i in range(0, len(rows), project.commit_every):
                stager.stage(rows[i:i + project.commit_every])
            write_rates.append(len(rows) / (time.perf_counter() - t))
        write_rate = sorted(write_rates)[1]
    finally:
        sim.terminate()
        sim.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)

    ratio = rate / base_rate
    cost = second.duration_s / first.duration_s
    req_share = second.requests / max(1, first.requests)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"baseline (bare httpx, concurrency {args.concurrency}): {n_base} records, {req_base} requests; "
          f"{base_rates[0]:,.0f} records/s before the engine, {base_rates[1]:,.0f} after, mean {base_rate:,.0f}")
    print(f"engine extract: {staged} records in {first.duration_s:.1f}s = {rate:,.0f} records/s, "
          f"{first.requests} requests, {first.pages} pages, {first.commits} commits, {first.quarantined} quarantined")
    print(f"ratio engine/baseline: {ratio:.2f} (target >= 0.70) {'OK' if ratio >= 0.70 else 'BELOW TARGET'}")
    print(f"staging write path alone (validate + Arrow + dlt merge, {project.commit_every} per commit): {len(rows)} "
          f"records, median of 3 = {write_rate:,.0f} records/s "
          f"({', '.join(f'{r:,.0f}' for r in write_rates)}; target >= 5,000) "
          f"{'OK' if write_rate >= 5000 else 'BELOW TARGET'}")
    print(f"no-change run: {second.duration_s:.2f}s, {second.requests} requests = {cost:.1%} of the first's time, "
          f"{req_share:.2%} of its requests (target < 5%) {'OK' if cost < 0.05 else 'BELOW TARGET'}")
    print("RSS during the pull (records read: MB): " + ", ".join(f"{d}: {m:.0f}" for d, m in samples))
    print(f"peak RSS: {peak_pull:.0f} MB up to the end of the pull (baseline + engine; the baseline keeps "
          f"{len(sample)} raw records for the write test), {peak:.0f} MB overall (the write test parses them all)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
