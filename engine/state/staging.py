"""Read staged records back: `staging.<pipeline>` holds one row per record (`id`, `last_modified`,
`record` JSON with the whole raw J1P record), merged by id. This interface is stable; the mapping and
load steps read staging only through it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import duckdb
import orjson

from engine.state import db

SCHEMA = "staging"
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")

ConnOrPath = duckdb.DuckDBPyConnection | str | Path


def table(pipeline: str) -> str:
    """The quoted staging table of a pipeline."""
    if not _NAME.match(pipeline):
        raise ValueError(f"not a pipeline name: {pipeline!r}")
    return f'{SCHEMA}."{pipeline}"'


def table_exists(conn: duckdb.DuckDBPyConnection, pipeline: str) -> bool:
    row = conn.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
        [SCHEMA, pipeline],
    ).fetchone()
    return bool(row and row[0])


def iter_staged(conn_or_path: ConnOrPath, pipeline: str, *, keys: Iterable[str] | None = None,
                batch_size: int = 1000) -> Iterator[tuple[str, dict[str, Any]]]:
    """Stream (key, record) in key order, `batch_size` rows at a time.

    Given a path, each batch opens and closes its own connection (no connection is held while the
    caller works on the records); given a connection, it is used as is.
    """
    wanted = sorted({str(k) for k in keys}) if keys is not None else None
    if wanted == []:
        return
    after: str | None = None
    while True:
        rows = _batch(conn_or_path, pipeline, after, wanted, batch_size)
        for key, text in rows:
            yield key, orjson.loads(text)
        if len(rows) < batch_size:
            return
        after = rows[-1][0]


def _batch(conn_or_path: ConnOrPath, pipeline: str, after: str | None, keys: list[str] | None,
           limit: int) -> list[tuple[str, str]]:
    sql = f"SELECT id, CAST(record AS VARCHAR) FROM {table(pipeline)} WHERE true"
    params: list[Any] = []
    if after is not None:
        sql += " AND id > ?"
        params.append(after)
    if keys is not None:
        sql += " AND id IN (SELECT unnest(?::VARCHAR[]))"
        params.append(keys)
    sql += " ORDER BY id LIMIT ?"
    params.append(limit)
    if isinstance(conn_or_path, duckdb.DuckDBPyConnection):
        return conn_or_path.execute(sql, params).fetchall() if table_exists(conn_or_path, pipeline) else []
    if not Path(conn_or_path).exists():
        return []
    with db.connect(conn_or_path) as conn:
        return conn.execute(sql, params).fetchall() if table_exists(conn, pipeline) else []


def staged_count(conn_or_path: ConnOrPath, pipeline: str) -> int:
    """Number of records staged for a pipeline (0 before its first extraction)."""
    if isinstance(conn_or_path, duckdb.DuckDBPyConnection):
        return _count(conn_or_path, pipeline)
    if not Path(conn_or_path).exists():
        return 0
    with db.connect(conn_or_path) as conn:
        return _count(conn, pipeline)


def _count(conn: duckdb.DuckDBPyConnection, pipeline: str) -> int:
    if not table_exists(conn, pipeline):
        return 0
    row = conn.execute(f"SELECT count(*) FROM {table(pipeline)}").fetchone()
    return int(row[0]) if row else 0


def existing_keys(conn: duckdb.DuckDBPyConnection, pipeline: str, keys: list[str]) -> set[str]:
    """Which of `keys` are already staged (to tell new records from changed ones)."""
    if not keys or not table_exists(conn, pipeline):
        return set()
    rows = conn.execute(
        f"SELECT id FROM {table(pipeline)} WHERE id IN (SELECT unnest(?::VARCHAR[]))", [keys]
    ).fetchall()
    return {r[0] for r in rows}


def staged_ids(conn: duckdb.DuckDBPyConnection, pipeline: str) -> set[str]:
    """Every staged key of a pipeline (empty before its first extraction)."""
    if not table_exists(conn, pipeline):
        return set()
    return {k for (k,) in conn.execute(f"SELECT id FROM {table(pipeline)}").fetchall()}


def staged_values(conn: duckdb.DuckDBPyConnection, pipeline: str, json_path: str) -> dict[str, str | None]:
    """Staged key -> the value at `json_path` (e.g. `$.header.status`) of each staged record, as text."""
    if not table_exists(conn, pipeline):
        return {}
    return dict(conn.execute(f"SELECT id, json_extract_string(record, ?) FROM {table(pipeline)}", [json_path]).fetchall())
