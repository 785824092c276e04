"""`ml-connector replay`: re-send failed records, re-rendered with the current mapping."""

from __future__ import annotations

import argparse
import sys

from rich.console import Console

from engine import exitcodes
from engine.cli.common import add_json_option, add_project_option
from engine.cli.run import Display, finish
from engine.errors import ConfigError
from engine.project import load_project
from engine.runner import replay_failed


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "replay", help="re-send failed records (all, of one run, or by reference)",
        description="Re-send failed records, re-rendered with the current mapping, from what is staged.",
        epilog=exitcodes.describe(), formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--all", action="store_true", help="every failed record")
    which.add_argument("--run", metavar="RUN_ID", help="the records that failed in this run")
    which.add_argument("--ref", metavar="REF", action="append",
                       help="an external reference (repeatable); a change not applied because the document was "
                       "closed is re-sent too (after it was reopened in SAP B1)")
    parser.add_argument("--pipeline", action="append", help="only this pipeline (repeatable)")
    add_project_option(parser)
    add_json_option(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Replay with progress on stderr; the summary on stdout; the exit code of `engine.exitcodes`."""
    with Display(Console(file=sys.stderr)) as display:
        report = replay_failed(load_project(args.project, with_pipelines=False), run_id=args.run, refs=args.ref, pipelines=args.pipeline,
                               progress=display)
    if report is None:
        raise ConfigError("nothing to replay: no failed records match")
    return finish(report, args)
