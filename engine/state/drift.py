"""The `drift` table: the last reconcile's findings per pipeline (`engine.reconcile`), each with the fix
applied (`--fix`) and the run that applied it. Details are redacted before they are stored."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import orjson

from engine.secrets import redact
from engine.state import db, ledger

DDL = """CREATE TABLE IF NOT EXISTS drift (
    run_id VARCHAR NOT NULL, pipeline VARCHAR NOT NULL, external_ref VARCHAR, kind VARCHAR NOT NULL,
    target_entity VARCHAR, target_key VARCHAR, details JSON, found_at TIMESTAMPTZ,
    fix VARCHAR, fix_run_id VARCHAR)"""
PRIVATE = ("b1_holds",)  # details kept in memory for --fix, not stored


def ensure_table(conn: duckdb.DuckDBPyConnection) -> None:
    conn.execute(DDL)


def replace(conn: duckdb.DuckDBPyConnection, run_id: str, pipelines: list[str], findings: Iterable[Any],
            entity_of: Mapping[str, str]) -> None:
    """Replace the previous reconcile's rows of these pipelines by this one's findings, in one transaction."""
    now = datetime.now(UTC)
    rows = [[run_id, f.pipeline, f.ref, f.kind, entity_of.get(f.pipeline), f.target_key, _details_json(f.details),
             now, f.fix] for f in findings]
    ensure_table(conn)
    conn.execute("BEGIN")
    try:
        conn.execute("DELETE FROM drift WHERE pipeline IN (SELECT unnest(?::VARCHAR[]))", [pipelines])
        if rows:
            conn.executemany(
                "INSERT INTO drift (run_id, pipeline, external_ref, kind, target_entity, target_key, details, "
                "found_at, fix) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def mark_fixed(conn: duckdb.DuckDBPyConnection, run_id: str, fix_run_id: str, findings: Iterable[Any]) -> None:
    """Record what `--fix` made of each finding of reconcile `run_id`, and the run that did it."""
    ensure_table(conn)
    for f in findings:
        conn.execute("UPDATE drift SET fix = ?, fix_run_id = ? WHERE run_id = ? AND pipeline = ? "
                     "AND external_ref = ? AND kind = ?", [f.fix, fix_run_id, run_id, f.pipeline, f.ref, f.kind])


def rows(state: Path | str, pipeline: str | None = None) -> list[dict[str, Any]]:
    """The last reconcile's findings as stored (for the audit and tests)."""
    with db.connect(state, read_only=True) as conn:
        if not ledger.has_table(conn, "drift"):
            return []
        sql = ("SELECT run_id, pipeline, external_ref, kind, target_entity, target_key, details, found_at, fix, "
               "fix_run_id FROM drift")
        params: list[Any] = []
        if pipeline is not None:
            sql += " WHERE pipeline = ?"
            params.append(pipeline)
        cursor = conn.execute(sql + " ORDER BY pipeline, kind, external_ref", params)
        names = [d[0] for d in cursor.description]
        found = [dict(zip(names, values, strict=True)) for values in cursor.fetchall()]
    for row in found:
        row["details"] = orjson.loads(row["details"]) if row["details"] else {}
    return found


def _details_json(details: Mapping[str, Any]) -> str:
    kept = {k: v for k, v in details.items() if k not in PRIVATE}
    return orjson.dumps(redact(kept), default=str).decode()
