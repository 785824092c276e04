"""`ml-connector`: thin command-line verbs over the engine's core functions.

Each verb lives in its own module in this package and exposes `register(subparsers)`, which adds
its parser and sets `func(args) -> int` as the handler. Core functions return results; only the
verb modules print. Exit codes: `engine.exitcodes`.

Start-up stays fast: `build_parser()` imports no verb module. `VERBS` holds each verb's name and the
one-line help `ml-connector --help` lists; a verb's module is imported, and its `register` run, only
when that verb is parsed or its help is asked for, so `ml-connector validate` never imports dlt,
DuckDB or pyarrow. A test keeps the help in `VERBS` equal to what each module registers.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Any

from engine import __version__, exitcodes
from engine.errors import ConnectorError
from engine.locks import RunLocked

# (module, verb, one-line help), in the order `--help` lists them. Add a verb by adding its module here
# with the help its `register` gives (tests/engine/cli/test_startup.py checks that they agree).
VERBS = [
    ("sim", "sim", "run a local simulator of SAP B1 or JAGGAER"),
    ("init", "init", "create a new project (pipelines, mappings, schemas) in DIR"),
    ("validate", "validate", "check pipeline specs, mapping files and references (no credentials needed)"),
    ("extract", "extract", "pull new and changed records into the staging tables"),
    ("check", "check", "log in to each SAP B1 connection and get a JAGGAER token"),
    ("run", "run", "extract, plan and load pipelines into SAP B1"),
    ("serve", "serve", "run pipelines on their schedules, for one or many customers, until stopped"),
    ("replay", "replay", "re-send failed records (all, of one run, or by reference)"),
    ("test_mappings", "test-mappings",
     "run the mapping fixtures in mappings/fixtures/ (source record in, expected payload out)"),
    ("plan", "plan", "show what a run would create, update, skip, hold back (writes nothing)"),
    ("audit", "audit", "query the audit trail: runs, failures, history <ref>, quarantine, waiting, or SQL"),
    ("credentials", "credentials", "the encrypted credential store: set, list, show, delete, rotate-key"),
    ("reconcile", "reconcile", "compare JAGGAER, the ledger and SAP B1; report drift (--fix repairs it)"),
]


class _Verb(argparse.ArgumentParser):
    """A verb's place in the top-level parser. The verb's real parser is built by its module's
    `register` the first time the verb is parsed or its help or usage is formatted; all of that is
    delegated to it, so the verb behaves exactly as if it had been registered up front."""

    def __init__(self, *, module: str, verb: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._module, self._verb = module, verb
        self._real: argparse.ArgumentParser | None = None

    def real(self) -> argparse.ArgumentParser:
        if self._real is None:
            prefix = self.prog.removesuffix(f" {self._verb}")  # "ml-connector"
            subparsers = argparse.ArgumentParser(prog=prefix).add_subparsers(prog=prefix)
            importlib.import_module(f"engine.cli.{self._module}").register(subparsers)
            self._real = subparsers.choices[self._verb]
        return self._real

    def parse_known_args(self, args: Any = None, namespace: Any = None) -> Any:
        return self.real().parse_known_args(args, namespace)

    def format_usage(self) -> str:
        return self.real().format_usage()

    def format_help(self) -> str:
        return self.real().format_help()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ml-connector",
        description="Sync JAGGAER procurement data with SAP Business One.",
        epilog=exitcodes.describe(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"ml-connector {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Verb)
    for module, verb, help_text in VERBS:
        subparsers.add_parser(verb, help=help_text, module=module, verb=verb)
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
    except Exception as exc:
        if not _interrupted_query(exc):
            raise
        print("interrupted", file=sys.stderr)  # Ctrl-C or SIGTERM while DuckDB ran a statement
        return exitcodes.INTERRUPTED


def _interrupted_query(exc: BaseException) -> bool:
    """DuckDB answers a signal during a statement with its own InterruptException (a RuntimeError through
    some layers) instead of KeyboardInterrupt: the command was interrupted, not broken."""
    return type(exc).__name__ == "InterruptException" or (
        isinstance(exc, RuntimeError) and str(exc).startswith("Query interrupted"))


def _terminate_as_interrupt() -> None:
    """SIGTERM (a scheduler, systemd, `kill`) ends a command the way Ctrl-C does: the run in progress is
    cancelled, its in-flight writes stay journalled as intents, the run is recorded as aborted."""
    import signal
    import threading

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, signal.default_int_handler)


if __name__ == "__main__":
    sys.exit(main())
