"""SQL over the state file's `ledger`, `events`, `runs` and `crosswalk` tables (see ARCHITECTURE.md).

Batched: intents for a chunk of records in one transaction, outcomes in batches. Secrets never
reach these tables: payloads are B1 documents, error texts are B1's messages.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import duckdb

from engine.load.model import Operation, Outcome, Status

DDL = [
    """CREATE TABLE IF NOT EXISTS ledger (
        pipeline VARCHAR NOT NULL, external_ref VARCHAR NOT NULL, record_key VARCHAR,
        target_entity VARCHAR, target_key VARCHAR, fingerprint VARCHAR, attempt_fingerprint VARCHAR,
        mapping_version VARCHAR, status VARCHAR NOT NULL, attempts INTEGER DEFAULT 0,
        last_error_code VARCHAR, last_error VARCHAR, payload JSON, line_map JSON,
        run_id VARCHAR, created_at TIMESTAMPTZ, updated_at TIMESTAMPTZ,
        PRIMARY KEY (pipeline, external_ref))""",
    """CREATE TABLE IF NOT EXISTS events (
        run_id VARCHAR, pipeline VARCHAR, external_ref VARCHAR, action VARCHAR, outcome VARCHAR,
        target_key VARCHAR, b1_code VARCHAR, b1_message VARCHAR, payload JSON, mapping_version VARCHAR,
        writes INTEGER, attempts INTEGER, happened_at TIMESTAMPTZ)""",
    """CREATE TABLE IF NOT EXISTS runs (
        run_id VARCHAR PRIMARY KEY, kind VARCHAR, pipelines VARCHAR, started_at TIMESTAMPTZ,
        finished_at TIMESTAMPTZ, counts JSON, aborted VARCHAR)""",
    """CREATE TABLE IF NOT EXISTS crosswalk (
        object_type VARCHAR NOT NULL, jaggaer_id VARCHAR NOT NULL, b1_key VARCHAR NOT NULL, line_map JSON,
        updated_at TIMESTAMPTZ, PRIMARY KEY (object_type, jaggaer_id))""",
]


def ensure_tables(conn: duckdb.DuckDBPyConnection) -> None:
    for ddl in DDL:
        conn.execute(ddl)


def _now() -> datetime:
    return datetime.now(UTC)


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value, default=str, separators=(",", ":"))


def _load(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def load_crosswalk(conn: duckdb.DuckDBPyConnection) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for object_type, jaggaer_id, b1_key, line_map in conn.execute(
        "SELECT object_type, jaggaer_id, b1_key, line_map FROM crosswalk"
    ).fetchall():
        out.setdefault(object_type, {})[jaggaer_id] = {"b1_key": b1_key, "line_map": _load(line_map)}
    return out


def ledger_rows(conn: duckdb.DuckDBPyConnection, pipeline: str) -> dict[str, dict[str, Any]]:
    cols = ["external_ref", "target_key", "fingerprint", "attempt_fingerprint", "status", "payload", "line_map",
            "mapping_version"]
    rows = conn.execute(f"SELECT {', '.join(cols)} FROM ledger WHERE pipeline = ?", [pipeline]).fetchall()
    out = {}
    for row in rows:
        item = dict(zip(cols, row, strict=True))
        item["payload"] = _load(item["payload"])
        item["line_map"] = _load(item["line_map"])
        out[item["external_ref"]] = item
    return out


def _many(conn: duckdb.DuckDBPyConnection, head: str, rows: list[list[Any]], tail: str = "") -> None:
    """One multi-row VALUES statement per 500 rows: DuckDB's executemany runs a statement per row."""
    for start in range(0, len(rows), 500):
        chunk = rows[start : start + 500]
        one = "(" + ", ".join("?" for _ in chunk[0]) + ")"
        conn.execute(f"{head} VALUES {', '.join(one for _ in chunk)} {tail}", [v for row in chunk for v in row])


def _upsert(conn: duckdb.DuckDBPyConnection, rows: list[dict[str, Any]]) -> None:
    """Insert or update ledger rows, touching only the columns given (besides the key)."""
    if not rows:
        return
    by_cols: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row in rows:
        by_cols.setdefault(tuple(sorted(k for k in row if k not in ("pipeline", "external_ref"))), []).append(row)
    for cols, group in by_cols.items():
        names = ["pipeline", "external_ref", *cols]
        sets = ", ".join(f"{c} = EXCLUDED.{c}" for c in cols if c != "created_at")
        _many(conn, f"INSERT INTO ledger ({', '.join(names)})", [[r[c] for c in names] for r in group],
              f"ON CONFLICT (pipeline, external_ref) DO UPDATE SET {sets}")


def record_intents(conn: duckdb.DuckDBPyConnection, run_id: str, entity: str, ops: Sequence[Operation]) -> None:
    """Mark operations in flight, durably, before any of them is sent."""
    now = _now()
    latest = {op.ref: op for op in ops}
    conn.execute("BEGIN")
    try:
        _upsert(conn, [{
            "pipeline": op.pipeline, "external_ref": op.ref, "record_key": op.context.get("record_key"),
            "target_entity": entity, "status": "in_flight", "attempt_fingerprint": op.fingerprint,
            "run_id": run_id, "updated_at": now, "created_at": now,
        } for op in latest.values()])
        _many(conn, "INSERT INTO events",
              [[run_id, op.pipeline, op.ref, op.action.value, "intent", None if op.key is None else str(op.key),
                None, None, _json(op.payload), op.mapping_version, 0, 0, now] for op in ops])
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def record_results(conn: duckdb.DuckDBPyConnection, run_id: str, entity: str, crosswalk_type: str,
                   outcomes: Sequence[Outcome]) -> None:
    now = _now()
    ledger: dict[tuple[str, str], dict[str, Any]] = {}
    crosswalk: dict[tuple[str, str], list[Any]] = {}
    events = []
    for o in outcomes:
        op = o.op
        row: dict[str, Any] = {"pipeline": op.pipeline, "external_ref": op.ref, "target_entity": entity,
                               "run_id": run_id, "updated_at": now, "created_at": now,
                               "record_key": op.context.get("record_key")}
        if o.status is Status.SYNCED:
            line_map = o.lines if o.lines is not None else op.context.get("line_map")
            row.update(status="synced", target_key=str(o.key), fingerprint=op.fingerprint,
                       mapping_version=op.mapping_version, payload=_json(op.full_payload or op.payload),
                       line_map=_json(line_map), last_error_code=None, last_error=None)
            xkey = op.context.get("crosswalk_key")
            if xkey:
                crosswalk[(crosswalk_type, str(xkey))] = [crosswalk_type, str(xkey), str(o.key), _json(line_map), now]
        elif o.error_code == "unresolved":
            row.update(status="in_flight", last_error_code=o.error_code, last_error=o.error_message)
        else:
            status = "waiting" if o.status is Status.WAITING else "failed"
            row.update(status=status, last_error_code=o.error_code, last_error=o.error_message,
                       mapping_version=op.mapping_version)
        ledger[(op.pipeline, op.ref)] = row
        outcome = "adopted" if o.adopted else o.status.value
        sent = op.payload if o.writes else None
        events.append([run_id, op.pipeline, op.ref, op.action.value, outcome, None if o.key is None else str(o.key),
                       o.error_code, o.error_message, _json(sent), op.mapping_version, o.writes, o.attempts, now])
    conn.execute("BEGIN")
    try:
        _upsert(conn, list(ledger.values()))
        written = [[o.writes, o.op.pipeline, o.op.ref] for o in outcomes if o.writes]
        if written:
            _many(conn, "UPDATE ledger SET attempts = ledger.attempts + w.n FROM (", written,
                  ") AS w(n, p, r) WHERE ledger.pipeline = w.p AND ledger.external_ref = w.r")
        if crosswalk:
            _many(conn, "INSERT INTO crosswalk", list(crosswalk.values()),
                  "ON CONFLICT (object_type, jaggaer_id) DO UPDATE SET "
                  "b1_key = EXCLUDED.b1_key, line_map = EXCLUDED.line_map, updated_at = EXCLUDED.updated_at")
        _many(conn, "INSERT INTO events", events)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def set_status(conn: duckdb.DuckDBPyConnection, pipeline: str, ref: str, record_key: str, status: str,
               code: str | None, message: str | None, run_id: str, mapping_version: str | None) -> None:
    """A record that waits or was quarantined at planning; a synced record keeps its key and status."""
    now = _now()
    existing = conn.execute("SELECT status FROM ledger WHERE pipeline = ? AND external_ref = ?", [pipeline, ref]).fetchone()
    if existing and existing[0] in ("synced", "in_flight"):
        conn.execute("UPDATE ledger SET last_error_code = ?, last_error = ?, updated_at = ? "
                     "WHERE pipeline = ? AND external_ref = ?", [code, message, now, pipeline, ref])
        return
    _upsert(conn, [{"pipeline": pipeline, "external_ref": ref, "record_key": record_key, "status": status,
                    "last_error_code": code, "last_error": message, "run_id": run_id,
                    "mapping_version": mapping_version, "updated_at": now, "created_at": now}])


def mark_synced_unchanged(conn: duckdb.DuckDBPyConnection, pipeline: str, ref: str, fp: str, version: str,
                          payload: Any) -> None:
    conn.execute("UPDATE ledger SET fingerprint = ?, mapping_version = ?, payload = ?, status = 'synced', "
                 "updated_at = ? WHERE pipeline = ? AND external_ref = ?",
                 [fp, version, _json(payload), _now(), pipeline, ref])


def start_run(conn: duckdb.DuckDBPyConnection, run_id: str, kind: str, pipelines: list[str]) -> None:
    conn.execute("INSERT INTO runs VALUES (?, ?, ?, ?, NULL, NULL, NULL)", [run_id, kind, ",".join(pipelines), _now()])


def finish_run(conn: duckdb.DuckDBPyConnection, run_id: str, counts: dict[str, int], aborted: str | None) -> None:
    conn.execute("UPDATE runs SET finished_at = ?, counts = ?, aborted = ? WHERE run_id = ?",
                 [_now(), _json(counts), aborted, run_id])


def failed_refs(conn: duckdb.DuckDBPyConnection, *, run_id: str | None = None, refs: Sequence[str] | None = None,
                pipelines: Sequence[str] | None = None) -> dict[str, set[str]]:
    """pipeline -> external refs of failed records (optionally: failed in one run, or among `refs`)."""
    sql = "SELECT DISTINCT l.pipeline, l.external_ref FROM ledger l WHERE l.status = 'failed'"
    params: list[Any] = []
    if run_id:
        sql += (" AND EXISTS (SELECT 1 FROM events e WHERE e.run_id = ? AND e.pipeline = l.pipeline"
                " AND e.external_ref = l.external_ref AND e.outcome = 'failed')")
        params.append(run_id)
    if refs:
        sql += f" AND (l.external_ref IN ({', '.join('?' for _ in refs)}) OR l.record_key IN ({', '.join('?' for _ in refs)}))"
        params += list(refs) + list(refs)
    if pipelines:
        sql += f" AND l.pipeline IN ({', '.join('?' for _ in pipelines)})"
        params += list(pipelines)
    out: dict[str, set[str]] = {}
    for pipeline, ref in conn.execute(sql, params).fetchall():
        out.setdefault(pipeline, set()).add(ref)
    return out
