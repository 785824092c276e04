"""The `extract_state` table: each source's committed cursor, as the JSON its reader stored.

A J1P source stores the §4.5 keyset `{stamp, id, seen}` (`engine.jaggaer.keyset.KeysetState`); a SAP B1
source its `UpdateDate`/`UpdateTime` cursor (`engine.sapb1.changes.ChangeCursor`). A cursor is written
only after the data it covers is committed, in the same connection.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import duckdb
import orjson

DDL = """
CREATE TABLE IF NOT EXISTS extract_state (
    pipeline   VARCHAR PRIMARY KEY,
    cursor     JSON NOT NULL,        -- J1P: {"stamp": T, "id": X, "seen": {id: stamp}} (J1P §4.5)
    updated_at TIMESTAMPTZ NOT NULL
)
"""


def stored(conn: duckdb.DuckDBPyConnection, pipeline: str) -> Any:
    """A source's committed cursor as the JSON value it was stored as (None before its first commit)."""
    conn.execute(DDL)
    row = conn.execute("SELECT cursor FROM extract_state WHERE pipeline = ?", [pipeline]).fetchone()
    return orjson.loads(row[0]) if row else None


def store(conn: duckdb.DuckDBPyConnection, pipeline: str, cursor: Any) -> None:
    conn.execute(DDL)
    conn.execute("INSERT OR REPLACE INTO extract_state VALUES (?, ?, ?)",
                 [pipeline, orjson.dumps(cursor).decode(), datetime.now(UTC)])
