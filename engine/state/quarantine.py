"""Records set aside with a reason instead of stopping the batch: extraction, validation or mapping.

A quarantined record is never lost: its raw content stays here (and in staging) until a later run
processes it successfully, which clears its open quarantine entry.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import duckdb

DDL = """
CREATE TABLE IF NOT EXISTS quarantine (
    pipeline     VARCHAR NOT NULL,
    record_key   VARCHAR NOT NULL,
    stage        VARCHAR NOT NULL,   -- extract | validate | map | payload
    reason       VARCHAR NOT NULL,
    record       JSON,
    run_id       VARCHAR,
    quarantined_at TIMESTAMPTZ NOT NULL,
    resolved_at  TIMESTAMPTZ
)
"""


@dataclass(frozen=True)
class QuarantinedRecord:
    pipeline: str
    record_key: str
    stage: str
    reason: str
    record: Any = None
    run_id: str | None = None


def ensure_table(conn: duckdb.DuckDBPyConnection) -> None:
    conn.execute(DDL)


def add(conn: duckdb.DuckDBPyConnection, entries: Iterable[QuarantinedRecord]) -> int:
    """Insert entries in one batch; an open entry for the same (pipeline, key, stage) is replaced."""
    rows = [
        (e.pipeline, e.record_key, e.stage, e.reason, json.dumps(e.record, default=str), e.run_id, datetime.now(UTC))
        for e in entries
    ]
    if not rows:
        return 0
    ensure_table(conn)
    conn.execute("BEGIN")
    conn.executemany(
        "DELETE FROM quarantine WHERE pipeline = ? AND record_key = ? AND stage = ? AND resolved_at IS NULL",
        [(r[0], r[1], r[2]) for r in rows],
    )
    conn.executemany("INSERT INTO quarantine VALUES (?, ?, ?, ?, ?, ?, ?, NULL)", rows)
    conn.execute("COMMIT")
    return len(rows)


def resolve(conn: duckdb.DuckDBPyConnection, pipeline: str, record_keys: Iterable[str], *,
            stage: str | None = None) -> None:
    """Close the open quarantine entries (of one stage, or all) of records that have now been processed."""
    keys = [(pipeline, k, stage) for k in record_keys]
    if keys:
        ensure_table(conn)
        conn.executemany(
            "UPDATE quarantine SET resolved_at = now() WHERE pipeline = ? AND record_key = ? AND resolved_at IS NULL "
            "AND (? IS NULL OR stage = ?)",
            [(p, k, s, s) for p, k, s in keys],
        )


def open_keys(conn: duckdb.DuckDBPyConnection, pipeline: str, stage: str | None = None) -> set[str]:
    """Record keys of a pipeline with an open quarantine entry (of one stage, or any)."""
    ensure_table(conn)
    rows = conn.execute("SELECT DISTINCT record_key FROM quarantine WHERE pipeline = ? AND resolved_at IS NULL "
                        "AND (? IS NULL OR stage = ?)", [pipeline, stage, stage]).fetchall()
    return {r[0] for r in rows}


EXTRACT_STAGES = ("extract", "validate")  # set aside while reading a source: a refused detail read, a schema failure


def resolve_extracted(conn: duckdb.DuckDBPyConnection, pipeline: str, keys: list[str]) -> None:
    """A record staged now closes its open extract/validate entries (not later stages')."""
    if not keys:
        return
    ensure_table(conn)
    conn.execute(
        "UPDATE quarantine SET resolved_at = now() WHERE pipeline = ? AND stage IN (SELECT unnest(?::VARCHAR[])) "
        "AND resolved_at IS NULL AND record_key IN (SELECT unnest(?::VARCHAR[]))",
        [pipeline, list(EXTRACT_STAGES), keys],
    )


def open_extracted(conn: duckdb.DuckDBPyConnection, run_id: str) -> list[tuple[str, str, str, str]]:
    """(pipeline, record key, stage, reason) of what a run's extraction set aside and is still open."""
    ensure_table(conn)
    return conn.execute(
        "SELECT pipeline, record_key, stage, reason FROM quarantine WHERE run_id = ? AND resolved_at IS NULL "
        "AND stage IN (SELECT unnest(?::VARCHAR[])) ORDER BY pipeline, record_key",
        [run_id, list(EXTRACT_STAGES)]).fetchall()
