"""`ml-connector`: thin command-line verbs over the engine's core functions.

Each verb lives in its own module in this package and exposes `register(subparsers)`, which adds
its parser and sets `func(args) -> int` as the handler. Core functions return results; only the
verb modules print. Exit codes: `engine.exitcodes`.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from engine import __version__, exitcodes
from engine.errors import ConnectorError
from engine.locks import RunLocked

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
        epilog=exitcodes.describe(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
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
        return exitcodes.USAGE
    _terminate_as_interrupt()
    try:
        return int(args.func(args) or 0)
    except RunLocked as exc:
        print(f"busy: {exc}", file=sys.stderr)
        return exitcodes.BUSY
    except ConnectorError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exitcodes.ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return exitcodes.INTERRUPTED


def _terminate_as_interrupt() -> None:
    """SIGTERM (a scheduler, systemd, `kill`) ends a command the way Ctrl-C does: the run in progress is
    cancelled, its in-flight writes stay journalled as intents, the run is recorded as aborted."""
    import signal
    import threading

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, signal.default_int_handler)


if __name__ == "__main__":
    sys.exit(main())
