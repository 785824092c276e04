"""The customer's state file: one DuckDB database holding staging, ledger, events, runs, quarantine.

DuckDB admits one writer per file. Open, work, close: never hold a connection across a network wait.
A second process meeting a locked file waits briefly, then is told clearly what holds it. A file
DuckDB cannot read (random bytes, a truncated copy, a damaged block or WAL) is `StateCorrupt`, with
what to do — whether DuckDB notices on opening or only when a damaged block is read.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb

from engine.errors import ConnectorError


class StateLocked(ConnectorError):
    """Another process holds the state file."""


class StateCorrupt(ConnectorError):
    """The state file is not a readable DuckDB database."""


_HOLDER = re.compile(r"\(PID (\d+)\)")
# What DuckDB says of a file it cannot read as a database (connect, WAL replay or a later block read).
_CORRUPT = re.compile(r"not a valid DuckDB database file|Corrupt database file|Corrupt WAL file|Failure while replaying WAL")
_SHORT_READ = re.compile(r'Could not read enough bytes from file "([^"]+)"')


@contextlib.contextmanager
def connect(path: str | Path, *, read_only: bool = False, wait_seconds: float = 10.0,
            config: dict[str, Any] | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open the state file, retrying while another process holds its write lock; `config` goes to
    duckdb.connect. Raises StateLocked, StateCorrupt, or ConnectorError naming the file."""
    path = Path(path)
    if not read_only:
        path.parent.mkdir(parents=True, exist_ok=True)
    conn = _open(path, read_only, wait_seconds, config or {})
    try:
        yield conn
    except duckdb.Error as exc:
        if is_corrupt(exc, path):
            raise StateCorrupt(corrupt_message(path, exc)) from None
        raise
    finally:
        with contextlib.suppress(duckdb.Error):
            conn.close()


def tune_writes(conn: duckdb.DuckDBPyConnection, *, compress: bool = False) -> None:
    """For a write that runs beside network reads: one DuckDB thread leaves the other cores to them. With
    `compress` (raw J1P records: long, repetitive JSON), zstd checkpoints them ~5x faster than DuckDB's
    automatic choice (dictionary/FSST analysis) and stores them ~8x smaller."""
    conn.execute("SET threads TO 1")
    if compress:
        conn.execute("SET force_compression = 'zstd'")


def one_row(conn: duckdb.DuckDBPyConnection, sql: str, params: Any = None) -> tuple[Any, ...]:
    """The row of a query that returns exactly one (an aggregate, a scalar function)."""
    row = conn.execute(sql, params).fetchone()
    if row is None:
        raise ConnectorError(f"the state file answered no row to: {sql[:80]}")
    return row


def _open(path: Path, read_only: bool, wait_seconds: float, config: dict[str, Any]) -> duckdb.DuckDBPyConnection:
    deadline = time.monotonic() + wait_seconds
    delay = 0.05
    while True:
        try:
            return duckdb.connect(str(path), read_only=read_only, config=config)
        except duckdb.Error as exc:
            if is_corrupt(exc, path):
                raise StateCorrupt(corrupt_message(path, exc)) from None
            if not isinstance(exc, duckdb.IOException):
                raise
            if "lock" not in str(exc).lower():
                raise ConnectorError(f"cannot open state file {path}: {_first_line(exc)}") from None
            if time.monotonic() >= deadline:
                holder = _HOLDER.search(str(exc))
                who = f"process {holder.group(1)}" if holder else "another process"
                raise StateLocked(
                    f"state file {path} is locked by {who} (another ml-connector command is running); "
                    f"waited {wait_seconds:.0f}s — try again when it has finished"
                ) from None
            time.sleep(delay)
            delay = min(delay * 2, 0.5)


def is_corrupt(exc: BaseException, path: Path) -> bool:
    """Whether a DuckDB error says the state file at `path` (or its WAL) is damaged; a short read of
    another file (say a truncated parquet file read through this connection) is not."""
    if not isinstance(exc, duckdb.Error):
        return False
    text = str(exc)
    if _CORRUPT.search(text):
        return True
    short = _SHORT_READ.search(text)
    return short is not None and Path(short.group(1)).name in (path.name, f"{path.name}.wal")


def corrupt_message(path: Path, exc: BaseException) -> str:
    """What a user reads about a damaged state file: which file, DuckDB's reason, what to do."""
    return (
        f"state file {path} is not a readable DuckDB database ({_first_line(exc)}); what to do: restore it "
        f"from backup, or move it (and {path.name}.wal, if present) aside and re-run — the connector then "
        "rebuilds staging from JAGGAER and resolves every record by its external reference in SAP B1 "
        "(nothing is sent twice)"
    )


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
