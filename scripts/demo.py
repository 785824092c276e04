"""`make demo`: ml-connector unattended, end to end on loopback, in about half a minute.

Both simulators start in this process on free ports, with credentials made up for this run. The
credentials go into an encrypted store (typed into `ml-connector credentials set` on stdin, never on a
command line) kept with its key file in the demo's own temporary directory; the demo project names the
stored customer instead of environment secrets. Then `ml-connector check`, and `ml-connector serve` as a
real process with every pipeline scheduled every 2 s: the first cycle syncs everything, the next finds
nothing to do; a purchase-order line changed in JAGGAER (the simulator's admin API) and a supplier's
phone changed in SAP B1 (a PATCH to its Service Layer) each land in the other system a cycle later,
read back from the audit (`ml-connector audit history ... --json`). `/healthz` and `/metrics` are
fetched; a quantity edited by hand in SAP B1 is found by `ml-connector reconcile` and put back by
`reconcile --fix`; serve stops on SIGTERM; the directory is searched for every secret of the run.

Everything started is stopped and the directory removed at the end, on Ctrl-C and on failure too;
`--keep DIR` writes the demo into DIR and keeps it (the printed audit queries then work there).
`--quick` seeds fewer orders and skips the repair (the end-to-end test uses it).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import shutil
import signal
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console

from scripts.demo_support import (
    CUSTOMER,
    Cli,
    DemoDir,
    SecretCapture,
    Served,
    files_holding,
    jaggaer_admin,
    service_layer,
    wait_until,
)

EVERY = "2s"  # the cadence written into the demo project's pipelines
B1_USER = "demo-sync"
JAGGAER_CLIENT_ID = "demo-erp-sync"
TWO_WAY = "suppliers_to_jaggaer"  # the B1 -> JAGGAER supplier pipeline
LEAVE_OUT: tuple[str, ...] = ()  # pipelines left out of the demo project (none)
METRICS_SHOWN = ("ml_connector_runs_total", "ml_connector_records_total", "ml_connector_run_duration_seconds_count",
                 "ml_connector_run_duration_seconds_sum", "ml_connector_customers")


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


class DemoFailed(Exception):
    """A step did not do what the tour says; the message says which."""


class Tour:
    def __init__(self, args: argparse.Namespace, console: Console) -> None:
        self.args, self.console = args, console
        self.quick = args.quick
        self.started = time.monotonic()
        self.capture = SecretCapture()
        # made up for this run: distinctive, so a search for them in what the demo leaves means something
        self.b1_password = "b1-pw-" + secrets.token_urlsafe(12)
        self.client_secret = "jg-cs-" + secrets.token_urlsafe(18)
        self.dir: DemoDir | None = None
        self.served: Served | None = None
        self.b1: Any = None  # the simulators (simulators.sapb1.Simulator, simulators.jaggaer.JaggaerSimulator)
        self.jag: Any = None
        self.pipelines: list[str] = []
        self.changed_po: str | None = None  # the order changed in JAGGAER (section 5)
        self.cycle = 0  # serve's runs seen so far

    # -- output -----------------------------------------------------------------------------------------

    def say(self, text: str = "", style: str | None = None) -> None:
        self.console.print(text, markup=False, highlight=False, style=style, soft_wrap=True)

    def heading(self, title: str) -> None:
        self.console.print()
        self.console.rule(f"[bold]{title}[/bold]  [dim]{time.monotonic() - self.started:5.1f}s[/dim]")

    def command(self, args: list[str], note: str = "") -> None:
        shown = " ".join(a if a and " " not in a else json.dumps(a) for a in args)
        self.say(f"$ ml-connector {shown}{'   ' + note if note else ''}", style="bold cyan")

    def output(self, text: str, indent: str = "  ") -> None:
        for line in text.rstrip("\n").splitlines():
            self.say(indent + line)

    def cli(self, *args: str, stdin: str | None = None, note: str = "", ok: tuple[int, ...] = (0,)) -> Any:
        """Show `ml-connector ARGS`, run it in the project with the demo's environment, show its output."""
        assert self.dir is not None
        self.command(list(args), note)
        done = Cli(self.dir.project, self.dir.environ()).run(*args, stdin=stdin)
        self.output(done.stdout)
        self.output(done.stderr)
        if done.returncode not in ok:
            raise DemoFailed(f"`ml-connector {' '.join(args)}` exited {done.returncode}")
        return done

    # -- the tour ---------------------------------------------------------------------------------------

    def run(self) -> int:
        from simulators.jaggaer import start_simulator as start_jaggaer
        from simulators.sapb1 import start_simulator as start_sapb1

        self.dir = DemoDir.create(self.args.keep)
        with contextlib.ExitStack() as stack:
            stack.callback(self._finish)  # last: after serve and the simulators have stopped
            self.console.rule("[bold]ml-connector demo[/bold]")
            self.say("JAGGAER -> SAP B1 (suppliers, orders, invoices) and SAP B1 -> JAGGAER (suppliers), unattended "
                     "under `ml-connector serve`, on two local simulators. About half a minute; Ctrl-C stops it and "
                     "removes everything it started.")
            self.heading("1. two simulators on loopback")
            orders = 60 if self.quick else 200
            b1 = stack.enter_context(start_sapb1(seed="demo", user=B1_USER, password=self.b1_password, latency_ms=2))
            jag = stack.enter_context(start_jaggaer(seed=orders, random_seed=7, history_days=30,
                                                    client_id=JAGGAER_CLIENT_ID, client_secret=self.client_secret))
            self.capture.attach(b1, jag)
            stack.callback(self._stop_serve)  # first: before the simulators go
            self.b1, self.jag = b1, jag
            self.say(f"SAP B1 Service Layer  {b1.service_root('v2')}  company {b1.company}, user {B1_USER}")
            self.say(f"JAGGAER J1P           {jag.base_url}  {orders} purchase orders, client {JAGGAER_CLIENT_ID}")
            self.say(f"demo directory        {self.dir.root}"
                     f"{'  (kept)' if self.dir.keep else '  (removed at the end; --keep DIR keeps it)'}")
            self.say("the SAP B1 password and the JAGGAER client secret are made up for this run; they go into the "
                     "credential store below, and section 10 looks for them everywhere else", style="dim")

            self.pipelines = self.dir.copy_project(EVERY, LEAVE_OUT)
            self.credentials()
            self.project_and_check()
            self.serve()
            self.jaggaer_change()
            if TWO_WAY not in LEAVE_OUT:
                self.b1_supplier_change()
            self.health_and_metrics()
            self.reconcile()
            self.stop_serve()
            self.secrets_at_rest()
            self.summary()
        return 0

    def credentials(self) -> None:
        assert self.dir is not None
        self.heading("2. credentials, stored encrypted")
        self.say(f"ML_CONNECTOR_CREDENTIALS={self.dir.store}", style="dim")
        self.say(f"ML_CONNECTOR_KEY_FILE={self.dir.key_file}", style="dim")
        self.cli("credentials", "set", CUSTOMER, "sapb1", "--service-root", self.b1.service_root("v2"),
                 "--company-db", self.b1.company, "--username", B1_USER, stdin=self.b1_password + "\n",
                 note="# the password on stdin")
        self.cli("credentials", "set", CUSTOMER, "jaggaer", "--base-url", self.jag.base_url,
                 "--client-id", JAGGAER_CLIENT_ID, stdin=self.client_secret + "\n", note="# the client secret on stdin")
        self.cli("credentials", "show", CUSTOMER)
        store = json.loads(self.dir.store.read_text())
        record = store["customers"][CUSTOMER]["sapb1"]
        self.say(f"in the store file: cipher {store['cipher']}, customer {CUSTOMER!r} with "
                 f"{', '.join(sorted(store['customers'][CUSTOMER]))}; the sapb1 record is "
                 f"{{nonce: {record['nonce'][:8]}…, data: {record['data'][:24]}…}} "
                 f"({len(record['data'])} characters of ciphertext)")

    def project_and_check(self) -> None:
        assert self.dir is not None
        self.heading(f"3. the project: connections by customer name, pipelines every {EVERY}")
        names = self.pipelines
        text = (self.dir.project / "ml-connector.yaml").read_text()
        self.output(text[text.index("connections:"):], indent="  | ")
        self.say(f"pipelines (each `schedule: {{every: {EVERY}}}` in this copy): {', '.join(names)}")
        if LEAVE_OUT:
            self.say(f"left out of the demo: {', '.join(LEAVE_OUT)}", style="yellow")
        self.cli("check")

    def serve(self) -> None:
        assert self.dir is not None
        self.heading("4. ml-connector serve: the first cycles")
        args = ["--project", ".", "--port", "0", "--log-format", "json", "--grace", "20"]
        self.command(["serve", *args], note=f"# in the background; its JSON log: {self.dir.logs / 'serve.jsonl'}")
        self.served = Served.start(Cli(self.dir.project, self.dir.environ()), args, self.dir.logs)
        listening = self.follow(lambda: self._event("listening"), 60, "serve to listen")
        self.served.port = int(listening["port"])
        self.say(f"  serve is listening on {self.served.url('')} (/healthz, /metrics)")
        first = self.follow(lambda: self._run_after(0), 180, "the first cycle")
        if first["outcome"] != "ok":
            raise DemoFailed(f"the first cycle ended {first['outcome']}: {first.get('error')}")
        self.say(f"  the first cycle synced everything: {first['writes']} writes to SAP B1")
        mark = len(self.served.log.events)
        quiet = self.follow(lambda: self._run_after(mark), 60, "a second cycle")
        self.say(f"  the next cycle found nothing new in either system: {plural(quiet['writes'], 'write')}")

    def jaggaer_change(self) -> None:
        assert self.served is not None
        self.heading("5. a change in JAGGAER lands in SAP B1")
        in_b1 = {d["U_JaggaerRef"]: d for d in self.b1.entities("PurchaseOrders") if d.get("U_JaggaerRef")}
        po, index = self._open_order(in_b1, skip=())
        line = po["lineList"]["purchaseOrderLine"][index]
        po_id, number = po["header"]["purchaseOrderId"], po["header"]["poNumber"]
        old = float(line["quantity"])
        new = old + 5
        doc = in_b1[str(po_id)]
        self.say(f"PATCH {self.jag.base_url}/_sim/purchaseorders/{po_id}  "
                 f"{{\"lines\": [{{\"lineNumber\": {line['lineNumber']}, \"quantity\": {new:g}}}]}}", style="bold cyan")
        mark = self.served.log.mark()
        jaggaer_admin(self.jag.base_url, "PATCH", f"purchaseorders/{po_id}",
                      {"lines": [{"lineNumber": line["lineNumber"], "quantity": new}]})
        changed_at = time.monotonic()
        self.say(f"  JAGGAER PO {number} line {line['lineNumber']}: quantity {old:g} -> {new:g}")

        def landed() -> bool:
            doc_now = self._b1_doc("PurchaseOrders", doc["DocEntry"])
            return float(doc_now["DocumentLines"][index]["Quantity"]) == new

        self.follow(landed, 45, "the change to reach SAP B1")
        self.follow(lambda: self._run_after(mark), 30, "the cycle's end")
        self.say(f"  landed: SAP B1 PurchaseOrders({doc['DocEntry']}) line {index} Quantity {old:g} -> {new:g}, "
                 f"{time.monotonic() - changed_at:.1f}s after the change", style="bold green")
        self.history(str(po_id), "purchase_orders")
        self.changed_po = str(po_id)

    def b1_supplier_change(self) -> None:
        assert self.served is not None
        self.heading("6. a change in SAP B1 lands in JAGGAER")
        partners = [p for p in self.b1.entities("BusinessPartners") if p.get("U_JaggaerRef")
                    and p.get("CardType") == "cSupplier"]
        if not partners:
            raise DemoFailed("no supplier from JAGGAER in SAP B1")
        bp = sorted(partners, key=lambda p: p["CardCode"])[0]
        card, bravo = bp["CardCode"], str(bp["U_JaggaerRef"])
        old, new = bp.get("Phone1") or "(none)", "+1 312 555 0" + str(100 + int(time.time()) % 900)
        self.say(f"PATCH {self.b1.service_root('v2')}/BusinessPartners('{card}')  "
                 f"{{\"Phone1\": \"{new}\"}}   # a person's own Service Layer session", style="bold cyan")
        mark = self.served.log.mark()
        updates_before = self.jag.counters.get("companyprofiles.update", 0)
        with service_layer(self.b1.service_root("v2"), self.b1.company, B1_USER, self.b1_password) as sl:
            sl.patch(f"BusinessPartners('{card}')", json={"Phone1": new}).raise_for_status()
        changed_at = time.monotonic()
        self.say(f"  SAP B1 business partner {card} ({bp.get('CardName')}): Phone1 {old} -> {new}")

        def profile() -> dict[str, Any]:
            return next(s["returnCompanyInfo"] for s in self.jag.suppliers()
                        if str(s["returnCompanyInfo"]["bravoId"]) == bravo)

        self.follow(lambda: profile().get("bizPhone") == new, 45, "the change to reach JAGGAER")
        self.follow(lambda: self._run_after(mark), 30, "the cycle's end")
        self.say(f"  landed: JAGGAER company profile {bravo} bizPhone -> {new}, "
                 f"{time.monotonic() - changed_at:.1f}s after the change", style="bold green")
        self.history(card, TWO_WAY)
        # the echo: JAGGAER's profile changed, so the next cycles read it back; nothing may be sent again
        mark = self.served.log.mark()
        self.follow(lambda: self._runs_after(mark, 2), 30, "two more cycles")
        updates = self.jag.counters.get("companyprofiles.update", 0) - updates_before
        writes = sum(e.get("writes", 0) for e in self.served.log.events[mark:] if e.get("event") == "run")
        self.say(f"  the echo came back from JAGGAER and was recognised: {plural(updates, 'UPDATE')} to JAGGAER in all, "
                 f"{plural(writes, 'write')} in the two cycles after it")
        if updates != 1:
            raise DemoFailed(f"{updates} UPDATEs to JAGGAER for one change in SAP B1: the two-way sync is not settling")

    def health_and_metrics(self) -> None:
        assert self.served is not None
        self.heading("7. /healthz and /metrics")
        self.say(f"$ curl -s {self.served.url('/healthz')}", style="bold cyan")
        health = httpx.get(self.served.url("/healthz"), timeout=10)
        doc = health.json()
        self.say(f"  HTTP {health.status_code}  status: {doc['status']}")
        for cid, info in doc["customers"].items():
            last = info.get("last_run") or {}
            self.say(f"  customer {cid}: {info['state']}, {info['runs']} runs, last {last.get('outcome')} "
                     f"{last.get('run_id')} at {last.get('at')}")
            for name, p in info.get("pipelines", {}).items():
                self.say(f"    {name:<22} {p['schedule']}, failures {p['failures']}")
        self.say(f"$ curl -s {self.served.url('/metrics')} | grep -E '^ml_connector_(runs|records|run_duration"
                 f"_seconds_(count|sum)|customers)'", style="bold cyan")
        text = httpx.get(self.served.url("/metrics"), timeout=10).text
        lines = [line for line in text.splitlines() if line.startswith(METRICS_SHOWN) and not line.endswith(" 0.0")]
        shown = [line for line in lines if not line.startswith("ml_connector_records_total")
                 or 'outcome="created"' in line or 'outcome="updated"' in line]
        self.output("\n".join(shown))
        self.say(f"  ({len(text.splitlines())} lines in all; records unchanged, ignored, found and the histograms' "
                 "buckets left out here)", style="dim")

    def reconcile(self) -> None:
        assert self.served is not None
        self.heading("8. an edit by hand in SAP B1, found by reconcile")
        in_b1 = {d["U_JaggaerRef"]: d for d in self.b1.entities("PurchaseOrders") if d.get("U_JaggaerRef")}
        po, index = self._open_order(in_b1, skip=(self.changed_po,))
        doc = in_b1[str(po["header"]["purchaseOrderId"])]
        b1_line = doc["DocumentLines"][index]
        old = float(b1_line["Quantity"])
        new = old + 2
        self.say(f"PATCH {self.b1.service_root('v2')}/PurchaseOrders({doc['DocEntry']})  {{\"DocumentLines\": "
                 f"[{{\"LineNum\": {b1_line['LineNum']}, \"Quantity\": {new:g}}}]}}   # by hand, JAGGAER says {old:g}",
                 style="bold cyan")
        with service_layer(self.b1.service_root("v2"), self.b1.company, B1_USER, self.b1_password) as sl:
            sl.patch(f"PurchaseOrders({doc['DocEntry']})",
                     json={"DocumentLines": [{"LineNum": b1_line["LineNum"], "Quantity": new}]}).raise_for_status()
        mark = self.served.log.mark()
        self.follow(lambda: self._runs_after(mark, 1), 30, "a cycle")
        self.say("  serve's cycles do not see it: nothing changed in JAGGAER. reconcile compares SAP B1 with the ledger:")
        found = self.cli("reconcile", "--wait", "60", ok=(0, 1))
        if "changed_in_b1" not in found.stdout or str(po["header"]["purchaseOrderId"]) not in found.stdout:
            raise DemoFailed("reconcile did not report the edited order")
        if self.quick:
            self.say("  (--quick: no repair; `ml-connector reconcile --fix` would PATCH it back)", style="dim")
            return
        self.cli("reconcile", "--fix", "--wait", "60", ok=(0, 1))
        back = float(self._b1_doc("PurchaseOrders", doc["DocEntry"])["DocumentLines"][index]["Quantity"])
        style = "bold green" if back == old else "bold red"
        self.say(f"  SAP B1 PurchaseOrders({doc['DocEntry']}) line {b1_line['LineNum']} Quantity is {back:g} again "
                 f"(JAGGAER wins on documents)", style=style)

    def stop_serve(self) -> None:
        assert self.served is not None
        self.heading("9. stopping serve")
        self.say(f"$ kill -TERM {self.served.proc.pid}", style="bold cyan")
        code, seconds = self.served.stop()
        self.served.log.poll()
        tail = [e.get("event") for e in self.served.log.events[-3:]]
        self.say(f"  serve exited {code} after {seconds:.1f}s; its last events: {', '.join(map(str, tail))}")
        runs = [e for e in self.served.log.events if e.get("event") == "run"]
        skipped = sum(1 for e in self.served.log.events if e.get("event") == "run_skipped")
        note = f"; {plural(skipped, 'tick')} skipped while reconcile held the project" if skipped else ""
        self.say(f"  {plural(len(runs), 'cycle')} in {time.monotonic() - self.served.started:.0f}s, "
                 f"{plural(sum(e.get('writes', 0) for e in runs), 'write')} in all{note}")
        if code != 0:
            raise DemoFailed(f"serve exited {code} on SIGTERM")

    def secrets_at_rest(self) -> None:
        assert self.dir is not None
        self.heading("10. secrets at rest")
        values = [self.b1_password, self.client_secret, *self.capture.tokens, *self.capture.sessions]
        files = [p for p in self.dir.root.rglob("*") if p.is_file()]
        found = files_holding(self.dir.root, values)
        self.say(f"searched {len(files)} files under {self.dir.root} (logs, the state file's rows, the credential "
                 f"store, dlt's working files) for the SAP B1 password, the JAGGAER client secret, "
                 f"{len(self.capture.tokens)} access tokens and {len(self.capture.sessions)} B1SESSION ids "
                 "the simulators handed out:")
        if found:
            for name, hits in found.items():
                self.say(f"  {name}: {hits}", style="bold red")
            raise DemoFailed("a secret was written down")
        self.say("  0 hits", style="bold green")

    def summary(self) -> None:
        assert self.dir is not None
        self.heading("11. summary")
        for entity in ("BusinessPartners", "PurchaseOrders", "PurchaseInvoices"):
            docs = [d for d in self.b1.entities(entity) if d.get("U_JaggaerRef")]
            self.say(f"  {entity:<18} {len(docs):>4} records from JAGGAER in SAP B1")
        self.cli("audit", "status")
        self.say(f"total {time.monotonic() - self.started:.1f}s")
        if not self.dir.keep:
            self.say(f"removing {self.dir.root} (`python -m scripts.demo --keep DIR` keeps the demo for the audit "
                     "queries)", style="dim")
        else:
            env = f"ML_CONNECTOR_CREDENTIALS={self.dir.store} ML_CONNECTOR_KEY_FILE={self.dir.key_file}"
            self.say(f"\nthe demo is kept in {self.dir.root}; in {self.dir.project}:")
            for query in ("audit runs", "audit failures", f"audit history {self.changed_po or '<ref>'}",
                          'audit "SELECT * FROM drift"'):
                self.say(f"  ml-connector {query}")
            self.say(f"  {env} ml-connector credentials show {CUSTOMER}")

    # -- helpers ----------------------------------------------------------------------------------------

    def follow(self, until: Any, timeout: float, what: str) -> Any:
        """Print serve's events as they come until `until()` holds; DemoFailed after `timeout` s or if serve dies."""
        assert self.served is not None
        served = self.served

        def tick() -> None:
            for item in served.log.poll():
                self._show_event(item)

        try:
            return wait_until(lambda: until() or self._dead(), timeout, on_tick=tick)
        except TimeoutError:
            raise DemoFailed(f"waited {timeout:g}s for {what}") from None

    def _dead(self) -> bool:
        assert self.served is not None
        if not self.served.alive():
            self.served.log.poll()
            raise DemoFailed(f"serve exited {self.served.proc.returncode}; see {self.served.log.path}")
        return False

    def _event(self, name: str) -> dict[str, Any] | None:
        assert self.served is not None
        return next((e for e in self.served.log.events if e.get("event") == name), None)

    def _run_after(self, mark: int) -> dict[str, Any] | None:
        assert self.served is not None
        return next((e for e in self.served.log.events[mark:] if e.get("event") == "run"), None)

    def _runs_after(self, mark: int, count: int) -> bool:
        assert self.served is not None
        return sum(1 for e in self.served.log.events[mark:] if e.get("event") == "run") >= count

    def _show_event(self, item: dict[str, Any]) -> None:
        name = item.get("event")
        if name == "run":
            self.cycle += 1
            records = ", ".join(f"{k} {v}" for k, v in (item.get("records") or {}).items()
                                if k not in ("unchanged",)) or "no records changed"
            line = (f"  cycle {self.cycle:>2}  run {item.get('run_id')}  {item.get('outcome')}  "
                    f"{item.get('seconds', 0):.1f}s  {plural(item.get('writes', 0), 'write')}  ({records})")
            if item.get("error"):
                line += f"  error: {item['error']}"
            self.say(line, style="green" if item.get("outcome") == "ok" else "yellow")
        elif name == "run_skipped":
            self.say(f"  tick skipped: {item.get('reason')} ({str(item.get('holder', ''))[:80]})", style="dim")
        elif name == "record":
            self.say(f"    {item.get('pipeline')} {item.get('ref')}: {item.get('status')} {item.get('code') or ''} "
                     f"{item.get('message', '')}", style="yellow")
        elif item.get("level") in ("warning", "error", "critical") or name in ("raw", "customer_invalid"):
            self.say(f"  serve: {json.dumps(item)[:300]}", style="yellow")

    def history(self, ref: str, pipeline: str) -> None:
        """The record's last events, through `ml-connector audit history REF --json`."""
        args = ["audit", "history", ref]
        self.command([*args, "--json"], note="# the last two events")
        assert self.dir is not None
        rows = [r for r in Cli(self.dir.project, self.dir.environ()).json_lines(*args) if r.get("pipeline") == pipeline]
        for row in rows[-2:]:
            payload = row.get("payload")
            payload = payload if isinstance(payload, str) else json.dumps(payload)
            self.say(f"  {row.get('happened_at')}  {row.get('run_id')}  {row.get('action')} {row.get('outcome')}"
                     f"{'  HTTP ' + str(row['http_status']) if row.get('http_status') else ''}"
                     f"{'  ' + payload[:160] if payload and payload != 'null' else ''}")

    def _open_order(self, in_b1: dict[str, dict[str, Any]], skip: tuple[Any, ...]) -> tuple[dict[str, Any], int]:
        """A JAGGAER order open in both systems (B1 keeps a closed order or row as it is) and the index of a
        line open in both."""
        for po in self.jag.purchase_orders():
            header = po["header"]
            doc = in_b1.get(str(header["purchaseOrderId"]))
            if (doc is None or str(header["purchaseOrderId"]) in {str(s) for s in skip}
                    or header["workflowStatus"] != "Completed" or header["poStatus"] != "Open"
                    or doc["DocumentStatus"] != "bost_Open" or doc.get("Cancelled") == "tYES"):
                continue
            lines = po["lineList"]["purchaseOrderLine"]
            if len(lines) != len(doc["DocumentLines"]):
                continue
            for index, line in enumerate(lines):
                if line.get("lineStatus") != "Cancelled" and doc["DocumentLines"][index]["LineStatus"] == "bost_Open":
                    return po, index
        raise DemoFailed("no purchase order is open in both systems")

    def _b1_doc(self, entity: str, key: Any) -> dict[str, Any]:
        return next(d for d in self.b1.entities(entity) if d.get("DocEntry") == key)

    def _stop_serve(self) -> None:
        """serve, if still running (a failure, Ctrl-C): SIGTERM, then its process group. A second Ctrl-C
        does not cut the clean-up short."""
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if self.served is not None and self.served.alive():
            self.say("stopping serve …", style="dim")
            self.served.stop(timeout=20)
        elif self.served is not None:
            self.served.kill_group()

    def _finish(self) -> None:
        """Write what the test asked for, remove the directory (unless kept)."""
        if self.args.secrets_out is not None:
            found = {"sapb1_password": self.b1_password, "jaggaer_client_secret": self.client_secret,
                     "tokens": self.capture.tokens, "sessions": self.capture.sessions}
            fd = os.open(self.args.secrets_out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as handle:
                json.dump(found, handle)
        if self.dir is not None:
            self.dir.remove()


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m scripts.demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer orders, no repair step (for the end-to-end test)")
    parser.add_argument("--keep", type=Path, metavar="DIR",
                        help="write the demo into DIR (new or empty) and keep it afterwards")
    # for tests/e2e/test_demo.py: where to write this run's secrets (passwords, tokens, sessions), to search for them
    parser.add_argument("--secrets-out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.secrets_out is not None and args.keep is not None:
        inside = args.secrets_out.expanduser().resolve().is_relative_to(args.keep.expanduser().resolve())
        if inside:
            parser.error("--secrets-out must be outside the demo directory")
    return args


def _terminated(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt  # SIGTERM cleans up as Ctrl-C does


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    console = Console(width=max(100, min(140, shutil.get_terminal_size((120, 40)).columns)))
    signal.signal(signal.SIGTERM, _terminated)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even when started with SIGINT ignored (`&`)
    tour = Tour(args, console)
    try:
        return tour.run()
    except DemoFailed as exc:
        console.print(f"\ndemo failed: {exc}", style="bold red", markup=False, highlight=False)
        return 1
    except KeyboardInterrupt:
        console.print("\ninterrupted: everything the demo started is stopped and its directory removed",
                      style="yellow", markup=False, highlight=False)
        return 130


if __name__ == "__main__":
    sys.exit(main())
