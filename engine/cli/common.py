"""Options several verbs share, defined once so their spelling, default and help agree.

Imports nothing heavy: every verb's `register` runs it (`engine.cli` builds a verb's parser lazily).
"""

from __future__ import annotations

import argparse
from pathlib import Path

JSON_HELP = ("print one JSON document (the summary, exit_code, every problem) on stdout and nothing "
             "else there (progress goes to stderr)")


def add_project_option(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """`--project DIR`: the project directory, default the current one."""
    parser.add_argument("--project", type=Path, default=Path("."), help="project directory (default: .)")


def add_json_option(parser: argparse.ArgumentParser | argparse._ArgumentGroup, help: str = JSON_HELP) -> None:
    """`--json`: machine-readable output on stdout; `help` says what the verb prints."""
    parser.add_argument("--json", action="store_true", help=help)
