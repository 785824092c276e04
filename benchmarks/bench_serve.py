"""`ml-connector serve` benchmark: 10 customers in one serve against one customer alone.

Each customer is a copy of the repository's project with its own JAGGAER tenant (one JAGGAER simulator,
tenants at /tenants/<t>) and its own SAP B1 company (a simulator process each: projects sharing a
company are serialized by the company lock, by design). The JAGGAER -> SAP B1 pipelines poll every second. Measured
from serve's own JSON log lines:

- first cycle: from serve's start until every customer's first run (the initial sync) has ended;
- change cycles (`--rounds`): new purchase orders in every tenant, until each one's run has created them.

Printed per scenario: wall time of the cycle for all customers, and that time per customer (wall /
customers), the mean duration of one run, and the ratios 10 / 1 (target for the time per customer cycle:
<= 1.5x). Figures are printed, not asserted.

    .venv/bin/python benchmarks/bench_serve.py [--customers 10] [--orders 40] [--rounds 3] [--max-parallel 4]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
SECRET = "bench-secret-change-me"
CLI = [sys.executable, "-c", "import sys; from engine.cli import main; sys.exit(main())"]  # ml-connector
FAST = ("suppliers", "purchase_orders", "invoices")  # every 1 s; the others keep the project's schedule


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def jaggaer(tenants: list[str], orders: int) -> Iterator[str]:
    """One JAGGAER simulator process with a tenant per customer (`orders` purchase orders each); its URL."""
    port = free_port()
    proc = subprocess.Popen([*CLI, "sim", "jaggaer", "--port", str(port), "--seed", "0"],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{url}/_sim/tenants", timeout=2).raise_for_status()
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, "the JAGGAER simulator did not start"
                time.sleep(0.1)
        for n, name in enumerate(tenants):
            httpx.post(f"{url}/_sim/tenants", timeout=60, json={
                "name": name, "client_id": f"erp-{name}", "client_secret": SECRET, "seed": orders,
                "random_seed": 7 + n, "history_days": 30}).raise_for_status()
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


def new_orders(url: str, tenant: str, count: int) -> None:
    for _ in range(count):
        httpx.post(f"{url}/_sim/tenants/{tenant}/purchaseorders", json={"n_lines": 2}, timeout=30).raise_for_status()


def customer_project(dest: Path, jaggaer_url: str, tenant: str, service_root: str, company: str) -> Path:
    """A copy of the repository's project pointing at its own tenant and company; JAGGAER -> SAP B1 every 1 s."""
    dest.mkdir(parents=True)
    for folder in ("pipelines", "mappings", "schemas"):
        shutil.copytree(ROOT / folder, dest / folder)
    text = (ROOT / "ml-connector.yaml").read_text()
    text = re.sub(r"base_url: \{env: JAGGAER_BASE_URL.*\}", f'base_url: "{jaggaer_url}/tenants/{tenant}"', text)
    text = re.sub(r"client_id: \{env: JAGGAER_CLIENT_ID\}", f'client_id: "erp-{tenant}"', text)
    text = re.sub(r"service_root: \{env: SAPB1_SERVICE_ROOT.*\}", f'service_root: "{service_root}"', text)
    text = re.sub(r"company_db: \{env: SAPB1_COMPANY_DB.*\}", f'company_db: "{company}"', text)
    (dest / "ml-connector.yaml").write_text(text)
    for name in FAST:
        path = dest / "pipelines" / f"{name}.yaml"
        body = re.sub(r"^schedule:.*\n(?:[ \t]+.*\n?)*", "", path.read_text(), flags=re.M)
        path.write_text(body.rstrip("\n") + "\nschedule:\n  every: 1s\n")
    return dest


class Serve:
    """`ml-connector serve --workspace` in its own process; its JSON log lines as they come."""

    def __init__(self, workspace: Path, env: dict[str, str], max_parallel: int) -> None:
        command = [*CLI, "serve", "--workspace", str(workspace), "--port", "0", "--log-format", "json",
                   "--max-parallel", str(max_parallel)]
        self.started = time.monotonic()
        self.proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     text=True)
        self.events: list[tuple[float, dict[str, Any]]] = []
        self.cond = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            with contextlib.suppress(ValueError), self.cond:
                self.events.append((time.monotonic(), json.loads(line)))
                self.cond.notify_all()

    def wait_runs(self, customers: list[str], since: float, *, created: int, timeout: float = 600) -> dict[str, float]:
        """When each customer's first ok run ending after `since` that created at least `created` records ended."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                done: dict[str, float] = {}
                for at, e in self.events:
                    if at >= since and e.get("event") == "run" and e.get("outcome") == "ok" \
                            and e.get("records", {}).get("created", 0) >= created and e["customer"] not in done:
                        done[e["customer"]] = at
                if set(customers) <= set(done):
                    return done
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError(f"runs did not end: {sorted(set(customers) - set(done))}")
                self.cond.wait(0.5)

    def run_seconds(self, since: float, until: float) -> list[float]:
        with self.cond:
            return [e["seconds"] for at, e in self.events
                    if since <= at <= until and e.get("event") == "run" and e.get("outcome") == "ok"]

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(60)


def scenario(count: int, args: argparse.Namespace, tmp: Path) -> dict[str, float]:
    from simulators.sapb1 import start_simulator as start_sapb1

    names = [f"c{n:02d}" for n in range(count)]
    workspace = tmp / f"ws{count}"
    with contextlib.ExitStack() as stack:
        jag_url = stack.enter_context(jaggaer(names, args.orders))
        sims = [stack.enter_context(start_sapb1(seed="demo", session_timeout=1800, company=f"SBO{n.upper()}",
                                                subprocess=True)) for n in names]
        for name, sim in zip(names, sims, strict=True):
            customer_project(workspace / name, jag_url, name, sim.service_root("v2"), sim.company)
        env = {**os.environ, "JAGGAER_CLIENT_SECRET": SECRET, "SAPB1_USERNAME": "manager",
               "SAPB1_PASSWORD": "manager", "ML_CONNECTOR_LOCK_DIR": str(tmp / f"locks{count}")}
        serve = Serve(workspace, env, args.max_parallel)
        try:
            started = serve.started
            first = serve.wait_runs(names, started, created=1)
            first_wall = max(first.values()) - started
            first_runs = serve.run_seconds(started, max(first.values()))
            rounds = []
            steady_runs: list[float] = []
            for _ in range(args.rounds):
                time.sleep(1.5)  # let the initial cycle's follow-up runs pass
                mark = time.monotonic()
                for name in names:
                    new_orders(jag_url, name, args.changes)
                landed = serve.wait_runs(names, mark, created=args.changes)
                rounds.append(max(landed.values()) - mark)
                steady_runs += serve.run_seconds(mark, max(landed.values()))
        finally:
            serve.stop()
    return {"customers": count, "first_wall": first_wall, "first_per_customer": first_wall / count,
            "first_run_mean": statistics.mean(first_runs), "change_wall": statistics.mean(rounds),
            "change_per_customer": statistics.mean(rounds) / count,
            "run_mean": statistics.mean(steady_runs) if steady_runs else float("nan")}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=10)
    parser.add_argument("--orders", type=int, default=40, help="purchase orders per tenant at the start (40)")
    parser.add_argument("--changes", type=int, default=2, help="new purchase orders per tenant per change cycle (2)")
    parser.add_argument("--rounds", type=int, default=3, help="change cycles measured (3)")
    parser.add_argument("--max-parallel", type=int, default=4, help="serve --max-parallel (4)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-serve-") as tmp:
        alone = scenario(1, args, Path(tmp))
        many = scenario(args.customers, args, Path(tmp))
    print(f"serve: {args.orders} POs per tenant, {args.changes} new per change cycle, JAGGAER -> SAP B1 pipelines every 1 s, "
          f"--max-parallel {args.max_parallel}, {os.cpu_count()} cores")
    print(f"{'':14}{'first cycle':>13}{'per customer':>14}{'run (mean)':>12}   {'change cycle':>13}{'per customer':>14}"
          f"{'run (mean)':>12}")
    for label, r in (("1 customer", alone), (f"{args.customers} customers", many)):
        print(f"{label:<14}{r['first_wall']:>12.2f}s{r['first_per_customer']:>13.2f}s{r['first_run_mean']:>11.2f}s   "
              f"{r['change_wall']:>12.2f}s{r['change_per_customer']:>13.2f}s{r['run_mean']:>11.2f}s")
    first = many["first_per_customer"] / alone["first_per_customer"]
    change = many["change_per_customer"] / alone["change_per_customer"]
    print(f"time per customer cycle, {args.customers} customers / 1 alone: first cycle {first:.2f}x, "
          f"change cycle {change:.2f}x (target <= 1.5x)")
    print(f"one run's duration, {args.customers} customers / 1 alone: first cycle "
          f"{many['first_run_mean'] / alone['first_run_mean']:.2f}x, change cycle {many['run_mean'] / alone['run_mean']:.2f}x "
          f"(runs of different customers share {os.cpu_count()} cores)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
