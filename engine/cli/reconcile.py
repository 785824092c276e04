"""`ml-connector reconcile [PIPELINE...]`: compare JAGGAER (staged), the ledger and SAP B1; report drift.

Reads SAP B1 only (one paged query per entity set) unless `--fix` is given. Prints a table per kind of
finding, or one JSON document with `--json`; the findings also replace the previous reconcile's rows
in the `drift` table (`ml-connector audit "SELECT * FROM drift"`).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from engine import exitcodes
from engine.cli.common import add_json_option, add_project_option

HELP = "compare JAGGAER, the ledger and SAP B1; report drift (--fix repairs it)"
DRIFT = 1  # this verb's exit code when it found drift
EPILOG = f"""\
kinds of drift:
  changed_in_b1      a field we set (lines by the ledger's line map) holds another value in SAP B1
  closed_in_b1       closed or cancelled by hand in SAP B1 while JAGGAER still has it open
  missing_in_b1      the ledger's record is gone from SAP B1 (deleted, or its reference cleared)
  unknown_to_ledger  SAP B1 holds a record carrying our reference that the ledger never wrote

--fix (JAGGAER wins): changed_in_b1 on a document is PATCHed back (the changed fields only; a supplier
is reported only: suppliers sync both ways), missing_in_b1 is looked up and created again,
unknown_to_ledger is adopted when its reference is a staged record's; closed_in_b1 is reported only
(never reopened). The repair is an ordinary run of those references (`audit runs`).

exit codes:
  {exitcodes.OK}  clean: SAP B1 holds what the ledger says was written
  {DRIFT}  drift found (listed; with --fix, found before the repair: reconcile again to confirm),
     or an error (the message on stderr says which)
  {exitcodes.USAGE}  usage error (the command line)
  {exitcodes.BUSY}  busy: a run holds the project (--wait to wait for it)
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "reconcile", help=HELP,
        description="Compare what JAGGAER says (staged), what the ledger says was written and what SAP B1 holds "
                    "for purchase orders, invoices and suppliers. Reads SAP B1 only, unless --fix.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("pipelines", nargs="*", metavar="PIPELINE",
                        help="pipelines to compare (default: all writing PurchaseOrders, PurchaseInvoices or "
                             "BusinessPartners)")
    add_project_option(parser)
    parser.add_argument("--fix", action="store_true",
                        help="repair what the policy says (see below) and report what was sent")
    parser.add_argument("--limit", type=int, default=50, help="findings listed per kind (default 50; 0: all)")
    parser.add_argument("--wait", type=float, default=0.0, metavar="SECONDS",
                        help="when a run holds the project, wait this long for it (default 0: exit 6 at once)")
    add_json_option(parser, help="print one JSON document (every finding with its details, the repair) and "
                    "nothing else")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from engine.project import load_project
    from engine.reconcile import reconcile

    result = reconcile(load_project(args.project, args.pipelines or None), args.pipelines or None, fix=args.fix, wait=args.wait)
    code = exitcodes.OK if result.clean else DRIFT
    if args.json:
        print(json.dumps(document(result, code), default=str))
    else:
        show(result, args.limit)
    return code


def document(result: Any, code: int) -> dict[str, Any]:
    """The reconcile as one JSON-ready document."""
    fix = result.fix
    return {
        "run_id": result.run_id, "started_at": result.started_at.isoformat(), "seconds": round(result.seconds, 3),
        "clean": result.clean, "exit_code": code, "counts": result.counts(), "requests": result.requests,
        "pipelines": [{"name": c.name, "entity": c.entity, "b1_records": c.b1_records, "ledger_keys": c.ledger_keys,
                       "seconds": round(c.seconds, 3)} for c in result.pipelines],
        "findings": [{"pipeline": f.pipeline, "ref": f.ref, "kind": f.kind, "target_key": f.target_key,
                      "details": {k: v for k, v in f.details.items() if k != "b1_holds"}, "fix": f.fix}
                     for f in result.findings],
        "fix": None if fix is None else {
            "refs": fix.refs, "rebased": fix.rebased, "keys_cleared": fix.keys_cleared, "adoptions": fix.adoptions,
            "run_id": fix.run.run_id if fix.run else None, "writes": fix.writes,
            "outcomes": {p.name: p.outcomes for p in fix.run.pipelines} if fix.run else {},
            "not_repaired": [{"pipeline": p, "ref": r, "why": why} for p, r, why in fix.not_repaired],
        },
    }


def show(result: Any, limit: int) -> None:
    from rich.console import Console
    from rich.table import Table

    from engine.reconcile import KINDS

    console = Console(soft_wrap=True)  # plain lines are not cut at the terminal width (tables still fit it)
    checked = ", ".join(f"{c.name} ({c.b1_records} in SAP B1, {c.ledger_keys} in the ledger)" for c in result.pipelines)
    console.print(f"reconcile {result.run_id} ({result.seconds:.1f}s, {result.requests} requests): "
                  f"{checked or 'nothing to compare'}", markup=False, highlight=False)
    fixing = result.fix is not None
    for kind in KINDS:
        found = result.of(kind)
        if not found:
            continue
        table = Table(title=f"{kind} ({len(found)})", title_justify="left")
        for name in ("pipeline", "ref", "B1 key", "ours -> SAP B1" if kind == "changed_in_b1" else "details"):
            table.add_column(name, overflow="fold")
        if fixing:
            table.add_column("fix")
        shown = found if limit <= 0 else found[:limit]
        for f in shown:
            table.add_row(f.pipeline, f.ref or "", f.target_key or "", f.summary(), *([f.fix or ""] if fixing else []))
        console.print(table)
        if len(found) > len(shown):
            console.print(f"  … and {len(found) - len(shown)} more (--limit 0, or audit \"SELECT * FROM drift\")",
                          markup=False, highlight=False)
    if result.clean:
        console.print("clean: SAP B1 holds what the ledger says was written", markup=False, highlight=False)
    else:
        counts = ", ".join(f"{n} {k}" for k, n in result.counts().items() if n)
        console.print(f"drift: {counts}", markup=False, highlight=False)
    if fixing:
        _show_fix(console, result.fix)


def _show_fix(console: Any, fix: Any) -> None:
    line = (f"fix: {fix.rebased} rebased on SAP B1 (patched back), {fix.keys_cleared} keys cleared (created again), "
            f"{fix.adoptions} handed over for adoption")
    if fix.run is not None:
        stats = [p.stats for p in fix.run.pipelines]
        line += (f" -> run {fix.run.run_id}: {fix.writes} write(s): {sum(s.updated for s in stats)} updated, "
                 f"{sum(s.created for s in stats)} created, {sum(s.adopted for s in stats)} found and adopted, "
                 f"{sum(s.lookups for s in stats)} lookup(s)")
        if fix.run.aborted:
            line += f"; aborted: {fix.run.aborted}"
    console.print(line, markup=False, highlight=False)
    for pipeline, ref, why in fix.not_repaired:
        console.print(f"  not repaired  {pipeline} {ref}: {why}", markup=False, highlight=False)
