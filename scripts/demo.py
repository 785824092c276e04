"""`make demo`: the end-to-end flow on loopback.

Both simulators start on free ports and are seeded; every pipeline runs (extract → plan → load) with a
progress display; a few records change in JAGGAER and a second run shows the incremental sync; then
a summary and the audit through `ml-connector audit` (two queries run, the others to paste). Works in a
temporary copy of the project (nothing in var/), kept afterwards so the printed queries can be pasted.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console

from engine.cli.run import Display, print_report
from engine.runner import run_pipelines

ROOT = Path(__file__).resolve().parents[1]


def _project_copy() -> Path:
    workdir = Path(tempfile.mkdtemp(prefix="ml-connector-demo-"))
    for folder in ("pipelines", "mappings", "schemas"):
        shutil.copytree(ROOT / folder, workdir / folder)
    shutil.copy(ROOT / "ml-connector.yaml", workdir / "ml-connector.yaml")
    return workdir


def _cli() -> str:
    """How to call our CLI from the repository root (the venv `make` installs), else from the PATH."""
    return ".venv/bin/ml-connector" if (ROOT / ".venv" / "bin" / "ml-connector").exists() else "ml-connector"


def _audit(console: Console, project: Path, ref: str | None) -> None:
    """Run two audit queries through our own CLI, then list the others to paste (and raw SQL for duckdb)."""
    from engine.cli import main as cli

    for argv in (["audit", "status"], ["audit", "ignored", "--width", "45"]):
        console.print(f"$ {_cli()} {' '.join(argv)} --project {project}", markup=False, highlight=False)
        sys.stdout.flush()
        cli([*argv, "--project", str(project)])
        sys.stdout.flush()
        console.print()
    console.print("more to paste:")
    for argv in ("audit runs", "audit failures", f"audit history {ref or '<external ref>'}", "audit waiting",
                 "audit quarantine"):
        console.print(f"  {_cli()} {argv} --project {project}", markup=False, highlight=False)
    console.print(f"or in duckdb ({project / 'var' / 'state.duckdb'}):", markup=False, highlight=False)
    for sql in (
        "SELECT pipeline, status, count(*) FROM ledger GROUP BY ALL ORDER BY ALL;",
        f"SELECT * FROM events WHERE external_ref = '{ref or '<ref>'}' ORDER BY happened_at;",
    ):
        console.print(f"  {sql}", markup=False, highlight=False)
    console.print(f"\nThe demo project is kept for these queries: {project} (delete it when done).",
                  markup=False, highlight=False)


def main() -> int:
    from simulators.jaggaer import start_simulator as start_jaggaer
    from simulators.sapb1 import start_simulator as start_sapb1

    console = Console(width=max(120, shutil.get_terminal_size().columns))
    project = _project_copy()
    started = time.monotonic()
    with start_sapb1(seed="demo") as b1, start_jaggaer(seed=200, random_seed=7, history_days=30) as jag:
        os.environ.update(
            JAGGAER_BASE_URL=jag.base_url, JAGGAER_CLIENT_ID=jag.client_id, JAGGAER_CLIENT_SECRET=jag.client_secret,
            SAPB1_SERVICE_ROOT=b1.service_root("v2"), SAPB1_COMPANY_DB=b1.company,
            SAPB1_USERNAME=b1.user, SAPB1_PASSWORD=b1.password,
        )
        b1.set_knobs(latency_ms=5)
        console.rule("ml-connector demo")
        console.print(f"SAP B1 Service Layer simulator: {b1.service_root('v2')}")
        console.print(f"JAGGAER J1P simulator:          {jag.base_url}")
        console.print(f"project copy:                   {project}\n")

        console.rule("1. first run: every pipeline")
        with Display(console) as display:
            first = run_pipelines(project, progress=display)
        print_report(first, console)

        console.rule("2. changes in JAGGAER")
        # B1 keeps a closed order (or a fully invoiced row) as it is: change orders still open in B1
        open_in_b1 = {d["U_JaggaerRef"] for d in b1.entities("PurchaseOrders") if d.get("U_JaggaerRef")
                      and d["DocumentStatus"] == "bost_Open"
                      and all(ln["LineStatus"] == "bost_Open" for ln in d["DocumentLines"])}
        orders = [po for po in jag.purchase_orders() if po["header"]["workflowStatus"] == "Completed"
                  and po["header"]["poStatus"] == "Open" and str(po["header"]["purchaseOrderId"]) in open_in_b1
                  and po["lineList"]["purchaseOrderLine"][0].get("lineStatus") != "Cancelled"]
        changed = orders[:2]
        for po in changed:
            line = po["lineList"]["purchaseOrderLine"][0]
            jag.change_purchase_order(po["header"]["purchaseOrderId"],
                                      lines=[{"lineNumber": line["lineNumber"], "quantity": float(line["quantity"]) + 5}])
            console.print(f"  PO {po['header']['poNumber']}: line {line['lineNumber']} quantity +5")
        before = b1.counters
        with Display(console) as display:
            second = run_pipelines(project, progress=display)
        after = b1.counters
        print_report(second, console)
        patches = after["requests"].get("PATCH", 0) - before["requests"].get("PATCH", 0)
        console.print(f"incremental run: {after['writes'] - before['writes']} writes to SAP B1 "
                      f"({patches} PATCH) for {len(changed)} changed orders")

        console.rule("3. summary")
        for entity in ("BusinessPartners", "PurchaseOrders", "PurchaseInvoices"):
            docs = [d for d in b1.entities(entity) if d.get("U_JaggaerRef")]
            console.print(f"  {entity:<18} {len(docs):>4} records from JAGGAER in SAP B1")
        invoices = [d for d in b1.entities("PurchaseInvoices") if d.get("U_JaggaerRef")]
        linked = sum(1 for d in invoices for ln in d.get("DocumentLines", []) if ln.get("BaseType") in (20, 22))
        console.print(f"  invoice lines linked to a PO or goods receipt: {linked}")
        console.print(f"  total {time.monotonic() - started:.1f}s\n")

        console.rule("4. the audit: every record explained")
        _audit(console, project, str(changed[0]["header"]["purchaseOrderId"]) if changed else None)
        ok = first.aborted is None and second.aborted is None
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
