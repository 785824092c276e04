"""`ml-connector extract [PIPELINE...]`: pull new and changed JAGGAER records into staging."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("extract", help="pull new and changed records into the staging tables")
    parser.add_argument("pipelines", nargs="*", metavar="PIPELINE", help="pipelines to extract (default: all)")
    parser.add_argument("--project", type=Path, default=Path("."), help="project directory (default: .)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from engine.errors import ConfigError

    raise ConfigError("extract is not available yet")
