"""`ml-connector test-mappings [MAPPING...]`: run mapping fixtures (record in, expected payload out)."""

from __future__ import annotations

import argparse
import sys

from engine.cli.common import add_project_option
from engine.mapping.fixtures import run_fixtures


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "test-mappings", help="run the mapping fixtures in mappings/fixtures/ (source record in, expected payload out)"
    )
    parser.add_argument("mappings", nargs="*", metavar="MAPPING", help="mappings to test, e.g. purchase_order (default: all)")
    add_project_option(parser)
    parser.add_argument("--update", action="store_true", help="rewrite the expected output of failing fixtures")
    parser.add_argument("-v", "--verbose", action="store_true", help="list passing fixtures too")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    results = run_fixtures(args.project, args.mappings or None, update=args.update)
    if not results:
        print(f"no fixtures found in {args.project / 'mappings' / 'fixtures'}", file=sys.stderr)
        return 1
    failed = [r for r in results if not r.passed]
    for r in results:
        if r.passed and not args.verbose:
            continue
        print(f"{'PASS' if r.passed else 'FAIL'}  {r.mapping}/{r.case}  ({r.path})")
        for message in r.messages:
            print(f"      {message}")
    print(f"{len(results) - len(failed)} passed, {len(failed)} failed" + (" (expected output updated)" if args.update and failed else ""))
    return 1 if failed and not args.update else 0
