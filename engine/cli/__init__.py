"""`ml-connector`: thin command-line verbs over the engine's core functions.

Each verb lives in its own module in this package and exposes `register(subparsers)`, which adds
its parser and sets `func(args) -> int` as the handler. Core functions return results; only the
verb modules print.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from engine import __version__
from engine.errors import ConnectorError

# Verb modules, in the order `--help` lists them. Add a verb by adding its module here.
VERBS = [
    "sim",
    "validate",
    "extract",
    "check",
    "run",
    "replay",
    "test_mappings",
    "plan",
    "audit",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ml-connector",
        description="Sync JAGGAER procurement data with SAP Business One.",
    )
    parser.add_argument("--version", action="version", version=f"ml-connector {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in VERBS:
        importlib.import_module(f"engine.cli.{name}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except ConnectorError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
