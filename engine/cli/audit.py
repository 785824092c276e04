"""`ml-connector audit QUERY [ARG...]`: named audit queries or SQL over the state file (read-only)."""

from __future__ import annotations

import argparse
from pathlib import Path

from engine.cli.common import add_json_option, add_project_option
from engine.state.audit import QUERIES, audit, format_table, json_rows


def register(subparsers: argparse._SubParsersAction) -> None:
    names = "\n".join(f"  {name:<11} {q.help}" for name, q in QUERIES.items())
    parser = subparsers.add_parser(
        "audit", help="query the audit trail: runs, failures, history <ref>, quarantine, waiting, or SQL",
        description=f"Named queries:\n{names}\nor one SELECT over ledger, events, runs, crosswalk, quarantine, staging.*\n"
                    "(read-only: no other statement, no file or network access; control characters escaped).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("query", nargs="?", default="runs", help="a named query or one SELECT statement (default: runs)")
    parser.add_argument("args", nargs="*", help="arguments of the named query (history: the external reference)")
    add_project_option(parser)
    parser.add_argument("--state", type=Path, help="state file (default: the project's)")
    add_json_option(parser, help="print rows as JSON lines")
    parser.add_argument("--width", type=int, default=60, help="cut cells to this many characters (table output)")
    parser.set_defaults(func=run)


def _state_path(args: argparse.Namespace) -> Path:
    if args.state:
        return args.state
    from engine.project import load_project

    return load_project(args.project, with_pipelines=False).state_path


def run(args: argparse.Namespace) -> int:
    """Print the query's rows as a table or as JSON lines."""
    result = audit(_state_path(args), args.query, args.args)
    if args.json:
        for line in json_rows(result):
            print(line)
    else:
        print(format_table(result, max_width=args.width))
    return 0
