"""`ml-connector check [CONNECTION...]`: what is wrong with each connection, and what to do about it.

A thin verb over `engine.checks` (which diagnoses and returns results): SAP B1 logs in and reads, never
writes (the user fields the pipelines need, every code their rule tables can produce); JAGGAER gets a
token and makes one authenticated read with it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from engine import exitcodes
from engine.checks import ConnectionCheck, check_connections
from engine.cli.common import add_json_option, add_project_option
from engine.project import load_project

__all__ = ["check_connections", "register", "run"]


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "check", help="log in to each SAP B1 connection and get a JAGGAER token",
        description="Log in to each SAP B1 connection and get a JAGGAER token, then read what a run needs: "
                    "SAP B1's user fields and the codes the rule tables produce; JAGGAER's API with the token. "
                    "Each problem is reported with what to do. Nothing is written.",
        epilog="exit codes: 0 every connection checked is ok (warnings allowed), 1 a problem (or the project is "
               "invalid), 2 usage",
    )
    parser.add_argument("connections", nargs="*", metavar="CONNECTION", help="connections to check (default: all)")
    add_project_option(parser)
    add_json_option(parser, help='print one JSON document on stdout: {"ok", "connections": '
                    '[{name, kind, ok, detail, findings: [{code, severity, message, hint, ...}]}]}')
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """One block per connection (a failed one on stderr) or one JSON document; exit 1 when any failed."""
    project = load_project(args.project, with_pipelines=False)  # `check` reports invalid pipelines, not fails
    results = asyncio.run(check_connections(project, args.connections or None))
    ok = all(result.ok for result in results)
    if args.json:
        print(json.dumps({"ok": ok, "connections": [r.as_dict() for r in results]}))
    else:
        for result in results:
            print(_text(result), file=sys.stdout if result.ok else sys.stderr)
    return exitcodes.OK if ok else exitcodes.ERROR


def _text(result: ConnectionCheck) -> str:
    head = f"{'ok' if result.ok else 'FAILED':<7} {result.name} ({result.kind})"
    lines = [f"{head}: {result.detail}" if result.ok else head]
    for finding in result.findings:
        label = finding.code if finding.severity == "error" else f"{finding.severity}: {finding.code}"
        lines.append(f"  - {label}: {finding.message}")
        lines.append(f"    fix: {finding.hint}")
    return "\n".join(lines)
