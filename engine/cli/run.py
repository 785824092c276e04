"""`ml-connector run [PIPELINE...]`: extract → plan → load in dependency order, with progress."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from engine.runner import Progress as Step
from engine.runner import RunReport, run_pipelines


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("run", help="extract, plan and load pipelines into SAP B1")
    parser.add_argument("pipelines", nargs="*", metavar="PIPELINE", help="pipelines to run (default: all)")
    parser.add_argument("--project", type=Path, default=Path("."), help="project directory (default: .)")
    parser.add_argument("--no-extract", action="store_true", help="load what is staged; do not read JAGGAER")
    parser.add_argument("--concurrency", type=int, default=None, help="requests in flight (default: the profile's)")
    parser.set_defaults(func=run)


class Display:
    """A progress bar per pipeline stage on a terminal; nothing otherwise."""

    def __init__(self, console: Console) -> None:
        self.bar = Progress(TextColumn("{task.description:<28}"), BarColumn(), MofNCompleteColumn(),
                            TimeElapsedColumn(), console=console, transient=False, disable=not console.is_terminal)
        self.tasks: dict[tuple[str, str], int] = {}

    def __enter__(self) -> Display:
        self.bar.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.__exit__(*exc)

    def __call__(self, step: Step) -> None:
        if step.stage not in ("extract", "load", "done"):
            return
        stage = "load" if step.stage == "done" else step.stage
        key = (step.pipeline, stage)
        if key not in self.tasks:
            self.tasks[key] = self.bar.add_task(f"{stage} {step.pipeline}", total=step.total or None)
        self.bar.update(self.tasks[key], completed=step.done, total=max(step.total, step.done) or None)


def summary_table(report: RunReport) -> Table:
    table = Table(title=f"run {report.run_id} ({report.seconds:.1f}s)")
    # invalid: records the extraction set aside (source schema); not appl.: changes B1 kept out of a closed,
    # cancelled or posted document (named below, not failures). Shown when a pipeline has any.
    invalid = any(report.extract_quarantined.get(p.name) for p in report.pipelines)
    not_applied = any(p.stats.not_applied for p in report.pipelines)
    columns = ["read", *(["invalid"] if invalid else []), "create", "update", "skip", "wait", "quar.", "created",
               "updated", "found", *(["not appl."] if not_applied else []), "failed", "writes"]
    table.add_column("pipeline", no_wrap=True, min_width=max((len(p.name) for p in report.pipelines), default=8))
    for col in columns:
        table.add_column(col, justify="right")
    for p in report.pipelines:
        s = p.stats
        cells = {"read": report.extracted.get(p.name, "-"), "invalid": report.extract_quarantined.get(p.name, 0),
                 **{col: p.planned.get(k, 0) for col, k in (("create", "create"), ("update", "update"), ("skip", "skip"),
                                                            ("wait", "wait"), ("quar.", "quarantine"))},
                 "created": s.created, "updated": s.updated, "found": s.adopted, "not appl.": s.not_applied,
                 "failed": s.failed, "writes": s.writes}
        table.add_row(p.name, *(str(cells[col]) for col in columns))
    return table


def print_report(report: RunReport, console: Console) -> None:
    console.print(summary_table(report))
    for problem in report.rule_problems:  # rule-table rows whose code B1 lacks: their records are quarantined
        console.print(f"  rule table  {problem}", markup=False, highlight=False)
    for problem in report.problems[:50]:
        code = f" [{problem.code}]" if problem.code else ""
        console.print(f"  {problem.status:<11} {problem.pipeline} {problem.ref}{code}: {problem.message}",
                      markup=False, highlight=False)
    if len(report.problems) > 50:
        console.print(f"  … and {len(report.problems) - 50} more (ml-connector audit failures, quarantine, "
                      "not-applied)")
    if report.aborted:
        console.print(f"run aborted: {report.aborted}", markup=False)


def run(args: argparse.Namespace) -> int:
    console = Console()
    with Display(Console(file=sys.stderr)) as display:
        report = run_pipelines(args.project, args.pipelines or None, extract=not args.no_extract,
                               progress=display, concurrency=args.concurrency)
    print_report(report, console)
    return 0 if report.ok else 1
