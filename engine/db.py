"""The customer's state file: one DuckDB database holding staging, ledger, events, runs, quarantine.

DuckDB admits one writer per file. Open, work, close: never hold a connection across a network wait.
A second process meeting a locked file waits briefly, then is told clearly what holds it.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Iterator
from pathlib import Path

import duckdb

from engine.errors import ConnectorError


class StateLocked(ConnectorError):
    """Another process holds the state file."""


_HOLDER = re.compile(r"\(PID (\d+)\)")


@contextlib.contextmanager
def connect(path: str | Path, *, read_only: bool = False, wait_seconds: float = 10.0) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open the state file, retrying while another process holds its write lock."""
    path = Path(path)
    if not read_only:
        path.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + wait_seconds
    delay = 0.05
    while True:
        try:
            conn = duckdb.connect(str(path), read_only=read_only)
            break
        except duckdb.IOException as exc:
            if "lock" not in str(exc).lower():
                raise ConnectorError(f"cannot open state file {path}: {exc}") from None
            if time.monotonic() >= deadline:
                holder = _HOLDER.search(str(exc))
                who = f"process {holder.group(1)}" if holder else "another process"
                raise StateLocked(
                    f"state file {path} is locked by {who} (another ml-connector command is running); "
                    f"waited {wait_seconds:.0f}s — try again when it has finished"
                ) from None
            time.sleep(delay)
            delay = min(delay * 2, 0.5)
    try:
        yield conn
    finally:
        conn.close()
