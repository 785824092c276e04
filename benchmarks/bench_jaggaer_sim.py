"""JAGGAER simulator benchmark: generating 100,000 purchase orders, then paging and detail reads.

1. Generation, in this process: time and resident memory for N orders with their lines, invoices
   and suppliers (target: under 60 s, well under 2 GB).
2. Serving, with the simulator in a SUBPROCESS (`ml-connector sim jaggaer`, no latency): page through
   every order with a plain httpx client (target: >= 2,000 records/s), then single-order reads.

Figures are printed as ratios against a baseline measured in the same run on the same server and
client: the rate of bare authenticated-rejected requests (401, no data work), so machine noise shows
in both. Usage: `python benchmarks/bench_jaggaer_sim.py [--orders 100000] [--details 2000]`.
"""

from __future__ import annotations

import argparse
import os
import resource
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from simulators.jaggaer.app import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET  # noqa: E402
from simulators.jaggaer.auth import TOKEN_PATH  # noqa: E402
from simulators.jaggaer.generator import seed_tenant  # noqa: E402
from simulators.jaggaer.store import SimClock, TenantStore  # noqa: E402

PO_PATH = "/j1p/api/public/je/v1/purchaseorders"


def rss_mb(pid: int | None = None) -> float:
    """Current resident set size (MB) of `pid` (default: this process)."""
    status = Path(f"/proc/{pid or os.getpid()}/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bench_generation(n_orders: int) -> None:
    before = rss_mb()
    started = time.perf_counter()
    store = TenantStore(SimClock())
    seed_tenant(store, n_orders, random_seed=7, history_days=30)
    seconds = time.perf_counter() - started
    lines = sum(len(po.lines) for po in store.orders.ordered)
    inv_lines = sum(len(inv.lines) for inv in store.invoices.ordered)
    grown = rss_mb() - before
    print(f"generation: {n_orders:,} orders ({lines:,} lines), {len(store.invoices):,} invoices ({inv_lines:,} lines), "
          f"{len(store.suppliers):,} suppliers")
    print(f"  time {seconds:.1f} s  (target 60 s: {seconds / 60:.2f}x of budget)")
    print(f"  resident memory +{grown:.0f} MB  (budget 2048 MB: {grown / 2048:.2f}x)")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(n_orders: int, port: int) -> subprocess.Popen:
    command = [sys.executable, "-c", "import sys; from engine.cli import main; sys.exit(main(sys.argv[1:]))", "sim", "jaggaer", "--port", str(port), "--seed", str(n_orders),
               "--random-seed", "7", "--history-days", "30"]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"simulator exited: {process.stderr.read().decode() if process.stderr else ''}")
        try:
            httpx.get(f"http://127.0.0.1:{port}/_sim/knobs", timeout=1)
            return process
        except httpx.TransportError:
            time.sleep(0.2)
    process.kill()
    raise SystemExit("simulator did not start within 180 s")


def bench_serving(n_orders: int, details: int) -> None:
    port = free_port()
    started = time.perf_counter()
    process = start_server(n_orders, port)
    print(f"subprocess simulator with {n_orders:,} orders ready in {time.perf_counter() - started:.1f} s, "
          f"resident memory {rss_mb(process.pid):.0f} MB")
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=base, timeout=30) as client:
            token = client.post(TOKEN_PATH, data={"grant_type": "client_credentials", "client_id": DEFAULT_CLIENT_ID,
                                                  "client_secret": DEFAULT_CLIENT_SECRET}).json()["access_token"]
            # Baseline: requests that pass the whole HTTP stack but do no data work.
            n_base = 500
            t0 = time.perf_counter()
            for _ in range(n_base):
                assert client.get(PO_PATH).status_code == 401
            baseline_rps = n_base / (time.perf_counter() - t0)

            headers = {"Authorization": f"Bearer {token}"}
            t0 = time.perf_counter()
            start, records, pages, ids = 1, 0, 0, []
            while True:
                body = client.get(PO_PATH, params={"start": start}, headers=headers).json()
                page = body["jepurchaseorderList"]["jepurchaseorder"]
                pages += 1
                records += len(page)
                ids.extend(item["header"]["purchaseOrderId"] for item in page[:1])
                if not page or start + len(page) > body["totRecords"]:
                    break
                start += len(page)
            list_seconds = time.perf_counter() - t0
            assert records == n_orders, (records, n_orders)
            records_per_s = records / list_seconds
            pages_per_s = pages / list_seconds

            sample = [ids[i % len(ids)] + (i * 7) % 100 for i in range(details)]
            t0 = time.perf_counter()
            for po_id in sample:
                response = client.get(f"{PO_PATH}/{po_id}", headers=headers)
                assert "header" in response.json()
            detail_per_s = details / (time.perf_counter() - t0)
    finally:
        process.terminate()
        process.wait(30)
    print(f"baseline (401 round trips, same server and client): {baseline_rps:,.0f} requests/s")
    print(f"list paging: {records:,} orders in {pages:,} pages, {list_seconds:.1f} s -> {records_per_s:,.0f} records/s "
          f"(target 2,000: {records_per_s / 2000:.1f}x), {pages_per_s:,.0f} pages/s = {pages_per_s / baseline_rps:.2f}x baseline")
    print(f"detail reads: {details:,} orders -> {detail_per_s:,.0f} records/s = {detail_per_s / baseline_rps:.2f}x baseline")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=100_000)
    parser.add_argument("--details", type=int, default=2_000)
    args = parser.parse_args()
    bench_generation(args.orders)
    bench_serving(args.orders, args.details)
    return 0


if __name__ == "__main__":
    sys.exit(main())
