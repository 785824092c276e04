"""`ml-connector run [PIPELINE...]`: extract → plan → load in dependency order, with progress."""

from __future__ import annotations

import argparse
import json
import sys
from types import TracebackType
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from engine import exitcodes
from engine.cli.common import add_json_option, add_project_option
from engine.project import load_project
from engine.runner import Failure, RunReport, run_pipelines
from engine.runner import Progress as Step


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "run", help="extract, plan and load pipelines into SAP B1",
        description="Extract, plan and load pipelines into SAP B1, suppliers before orders before invoices.",
        epilog=exitcodes.describe(), formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("pipelines", nargs="*", metavar="PIPELINE", help="pipelines to run (default: all)")
    add_project_option(parser)
    parser.add_argument("--no-extract", action="store_true", help="load what is staged; do not read JAGGAER")
    parser.add_argument("--concurrency", type=int, default=None, help="requests in flight (default: the profile's)")
    parser.add_argument("--wait", type=float, default=0.0, metavar="SECONDS",
                        help="when another run holds the project or its SAP B1 company, wait this long for it "
                             "(default 0: exit 6 at once, naming the holder)")
    parser.add_argument("--max-waiting", type=non_negative, default=None, metavar="N",
                        help="exit 5 when more than N records wait for a dependency (default: no limit)")
    add_json_option(parser)
    parser.set_defaults(func=run)


def non_negative(text: str) -> int:
    """An argparse type: an integer >= 0."""
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {value}")
    return value


class Display:
    """A progress bar per pipeline stage on a terminal; nothing otherwise."""

    def __init__(self, console: Console) -> None:
        self.bar = Progress(TextColumn("{task.description:<28}"), BarColumn(), MofNCompleteColumn(),
                            TimeElapsedColumn(), console=console, transient=False, disable=not console.is_terminal)
        self.tasks: dict[tuple[str, str], TaskID] = {}

    def __enter__(self) -> Display:
        self.bar.__enter__()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.bar.__exit__(exc_type, exc, traceback)

    def __call__(self, step: Step) -> None:
        if step.stage not in ("extract", "load", "done"):
            return
        stage = "load" if step.stage == "done" else step.stage
        key = (step.pipeline, stage)
        if key not in self.tasks:
            self.tasks[key] = self.bar.add_task(f"{stage} {step.pipeline}", total=step.total or None)
        self.bar.update(self.tasks[key], completed=step.done, total=max(step.total, step.done) or None)


# Where each record planned this run ended (`PipelineReport.outcomes`): column -> bucket.
OUTCOME_COLUMNS = {"created": "created", "updated": "updated", "found": "found", "same": "unchanged",
                   "wait": "waiting", "quar.": "quarantined", "ignored": "ignored", "not appl.": "not_applied",
                   "failed": "failed"}
LEGEND = (
    "new/chg  new or changed in JAGGAER this run (of the records the pipeline's source filter selects)",
    "invalid  failed the source schema: set aside, not staged (ml-connector audit quarantine)",
    "planned  records looked at: new/chg, and any still waiting, quarantined or failed; each counted once, created … failed",
    "found    already in SAP B1 (lost answer, crash)   same  nothing to send   "
    "ignored  left out on purpose (audit ignored)",
)


def summary_table(report: RunReport) -> Table:
    """One row per pipeline: records staged, planned, and where each planned record ended (they add up)."""
    table = Table(title=f"run {report.run_id} ({report.seconds:.1f}s)")
    # invalid: records the extraction set aside (source schema); not appl.: changes B1 kept out of a closed,
    # cancelled or posted document (named below, not failures). Shown when a pipeline has any.
    invalid = any(report.extract_quarantined.get(p.name) for p in report.pipelines)
    not_applied = any(p.stats.not_applied for p in report.pipelines)
    outcomes = [col for col in OUTCOME_COLUMNS if col != "not appl." or not_applied]
    columns = ["new/chg", *(["invalid"] if invalid else []), "planned", *outcomes, "writes"]
    table.add_column("pipeline", no_wrap=True, min_width=max((len(p.name) for p in report.pipelines), default=8))
    for col in columns:
        table.add_column(col, justify="right")
    for p in report.pipelines:
        ends = p.outcomes
        cells = {"new/chg": report.staged.get(p.name, "-"), "invalid": report.extract_quarantined.get(p.name, 0),
                 "planned": p.planned_total, **{col: ends[key] for col, key in OUTCOME_COLUMNS.items()},
                 "writes": p.stats.writes}
        table.add_row(p.name, *(str(cells[col]) for col in columns))
    return table


def legend(report: RunReport) -> list[str]:
    """What the summary table's columns count, in a few lines under it."""
    invalid = any(report.extract_quarantined.get(p.name) for p in report.pipelines)
    return [line for line in LEGEND if invalid or not line.startswith("invalid")]


def print_report(report: RunReport, console: Console) -> None:
    console.print(summary_table(report))
    for line in legend(report):
        console.print(f"  {line}", markup=False, highlight=False, style="dim")
    for problem in report.rule_problems:  # rule-table rows whose code B1 lacks: their records are quarantined
        console.print(f"  rule table  {problem}", markup=False, highlight=False)
    _print_records(console, report.problems, "ml-connector audit failures, quarantine, not-applied")
    _print_records(console, [f for p in report.pipelines for f in p.still_failed], "ml-connector audit failures")
    _print_records(console, [f for p in report.pipelines for f in p.ignored], "ml-connector audit ignored", limit=10)
    if report.aborted:
        console.print(f"run aborted: {report.aborted}", markup=False)


def _print_records(console: Console, records: list[Failure], more: str, limit: int = 50) -> None:
    for problem in records[:limit]:
        code = f" [{problem.code}]" if problem.code else ""
        console.print(f"  {problem.status:<11} {problem.pipeline} {problem.ref}{code}: {problem.message}",
                      markup=False, highlight=False)
    if len(records) > limit:
        console.print(f"  … and {len(records) - limit} more ({more})", markup=False, highlight=False)


def report_document(report: RunReport, exit_code: int) -> dict[str, Any]:
    """The run as one JSON-ready document: counts per pipeline and every record that did not settle."""
    return {
        "run_id": report.run_id, "started_at": report.started_at.isoformat(), "seconds": round(report.seconds, 3),
        "aborted": report.aborted, "exit_code": exit_code, "writes": report.writes,
        "pipelines": [{
            "name": p.name, "entity": p.entity, "staged": report.staged.get(p.name),
            "invalid": report.extract_quarantined.get(p.name, 0), "planned": p.planned_total,
            "planned_by_action": p.planned, "outcomes": p.outcomes, "writes": p.stats.writes,
            "seconds": round(p.seconds, 3),
        } for p in report.pipelines],
        "problems": [_failure(f) for f in report.problems],
        "still_failed": [_failure(f) for p in report.pipelines for f in p.still_failed],
        "ignored": [_failure(f) for p in report.pipelines for f in p.ignored],
        "rule_problems": report.rule_problems,
    }


def _failure(failure: Failure) -> dict[str, Any]:
    return {"pipeline": failure.pipeline, "ref": failure.ref, "status": str(failure.status),
            "code": failure.code, "message": failure.message}


def finish(report: RunReport, args: argparse.Namespace) -> int:
    """Print the report (a table, or `--json`) and return the run's exit code (`engine.exitcodes`)."""
    code = exitcodes.exit_code_for(report, max_waiting=getattr(args, "max_waiting", None))
    if args.json:
        print(json.dumps(report_document(report, code), default=str))
    else:
        print_report(report, Console())
    return code


def run(args: argparse.Namespace) -> int:
    """Run the pipelines with progress on stderr; the summary on stdout."""
    with Display(Console(file=sys.stderr)) as display:
        report = run_pipelines(load_project(args.project, args.pipelines or None), args.pipelines or None,
                               extract=not args.no_extract,
                               progress=display, concurrency=args.concurrency, wait=args.wait)
    return finish(report, args)
