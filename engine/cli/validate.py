"""`ml-connector validate [PIPELINE...]`: check specs, mappings and references; no credentials needed."""

from __future__ import annotations

import argparse
import sys

from engine.cli.common import add_project_option
from engine.project import check_project
from engine.spec import iter_problems_sorted


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "validate", help="check pipeline specs, mapping files and references (no credentials needed)"
    )
    parser.add_argument("pipelines", nargs="*", metavar="PIPELINE", help="pipelines to check (default: all)")
    add_project_option(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    project, problems = check_project(args.project, args.pipelines or None)
    specs = project.pipelines if project is not None else ()
    for problem in iter_problems_sorted(problems):
        print(problem, file=sys.stderr)
    if problems:
        print(f"{len(problems)} problem(s) found", file=sys.stderr)
        return 1
    print(f"ok: {len(specs)} pipeline(s) valid: {', '.join(s.name for s in specs)}")
    return 0
