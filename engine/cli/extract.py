"""`ml-connector extract [PIPELINE...]`: pull new and changed JAGGAER records into staging."""

from __future__ import annotations

import argparse
import sys

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from engine.cli.common import add_project_option
from engine.extract import extract_pipelines
from engine.project import load_project


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("extract", help="pull new and changed records into the staging tables")
    parser.add_argument("pipelines", nargs="*", metavar="PIPELINE", help="pipelines to extract (default: all)")
    add_project_option(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    project = load_project(args.project, args.pipelines or None, check_mappings=False)  # extraction needs no mapping
    console = Console(file=sys.stderr)
    tasks: dict[str, TaskID] = {}
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=True, disable=not console.is_terminal) as bar:

        def progress(pipeline: str, done: int, total: int | None) -> None:
            if pipeline not in tasks:
                tasks[pipeline] = bar.add_task(pipeline, total=total)
            bar.update(tasks[pipeline], completed=done, total=max(total or 0, done) or None)

        results = extract_pipelines(project, args.pipelines or None, progress=progress)
    for result in results:
        print(result.summary())
    return 0 if all(r.ok for r in results) else 1
