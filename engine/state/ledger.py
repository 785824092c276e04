"""The ledger, events, runs and crosswalk tables: what was sent, what B1 answered, what is in flight.

- `ledger`    one row per (pipeline, external_ref): B1 key, fingerprint and payload of what was last
              synced, status (pending | in_flight | synced | waiting | failed | quarantined |
              not_applied | ignored), attempts, last error. `attempt_fingerprint` is the fingerprint of the payload
              last *attempted*. `not_applied`: B1 refused the latest change because the document (or
              some rows) is closed, cancelled or posted; `payload`/`fingerprint` are what B1 holds (the
              part it took included), `attempt_fingerprint` the rendering it refused, `last_error` why.
              `ignored`: the mapping leaves the record out on purpose (`skip_unless`, e.g. a cancelled
              order); `last_error` gives the mapping's reason, `plan_hash` what it was decided from.
- `events`    append-only, one row per intent and per attempt's outcome: payload sent, HTTP status,
              B1 code/message/body, duration, mapping version, run id.
- `runs`      one row per run: pipelines, start/finish, counts per outcome, mapping versions, engine version.
- `crosswalk` JAGGAER id <-> B1 key per object type, with the line map (J1P line -> B1 LineNum) of documents.

Crash safety: `record_intent` commits the in-flight status and the intent event BEFORE the loader
sends anything; after a crash `pending_intents` names the records whose outcome is unknown, to be
looked up in B1 before any re-send. Every write function batches its rows in one transaction.
Secrets (registered credentials, credential keys, session cookies, bearer tokens) are redacted from
anything stored (`redact`, from `engine.secrets`); business text is stored unchanged.

This module is the only code that touches these tables. State files made by an older layout (without
`events.http_status/duration_ms/b1_body`, `runs.mapping_versions/engine_version`, `ledger.plan_hash`)
are brought up to date by `upgrade_tables` (the runner calls it once per run); until then writers insert
by column name and skip the columns a table lacks, and readers never need them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import duckdb
import orjson
import pyarrow as pa

from engine import __version__, secrets
from engine.mapping.core import CrosswalkEntry
from engine.secrets import redact
from engine.state import db

STATUSES = ("pending", "in_flight", "synced", "waiting", "failed", "quarantined", "not_applied", "ignored")
# Statuses of a record B1 holds as the ledger says (key, payload, fingerprint): `not_applied` is a record
# whose latest change B1 refused because the document (or some rows) is closed, cancelled or posted.
HELD = ("synced", "not_applied")
# Statuses settled for the staged content they were planned from (`plan_hash`): a run does not plan
# them again until the record or the mapping changes. `ignored`: the mapping leaves the record out.
SETTLED = (*HELD, "ignored")

DDL = [
    """CREATE TABLE IF NOT EXISTS ledger (
        pipeline VARCHAR NOT NULL, external_ref VARCHAR NOT NULL, record_key VARCHAR,
        target_entity VARCHAR, target_key VARCHAR, fingerprint VARCHAR, attempt_fingerprint VARCHAR,
        mapping_version VARCHAR, status VARCHAR NOT NULL, attempts INTEGER DEFAULT 0,
        last_error_code VARCHAR, last_error VARCHAR, payload JSON, line_map JSON,
        run_id VARCHAR, created_at TIMESTAMPTZ, updated_at TIMESTAMPTZ, plan_hash VARCHAR,
        PRIMARY KEY (pipeline, external_ref))""",
    """CREATE TABLE IF NOT EXISTS events (
        run_id VARCHAR, pipeline VARCHAR, external_ref VARCHAR, action VARCHAR, outcome VARCHAR,
        target_key VARCHAR, b1_code VARCHAR, b1_message VARCHAR, payload JSON, mapping_version VARCHAR,
        writes INTEGER, attempts INTEGER, happened_at TIMESTAMPTZ,
        http_status INTEGER, duration_ms DOUBLE, b1_body JSON)""",
    """CREATE TABLE IF NOT EXISTS runs (
        run_id VARCHAR PRIMARY KEY, kind VARCHAR, pipelines VARCHAR, started_at TIMESTAMPTZ,
        finished_at TIMESTAMPTZ, counts JSON, aborted VARCHAR, mapping_versions JSON, engine_version VARCHAR)""",
    """CREATE TABLE IF NOT EXISTS crosswalk (
        object_type VARCHAR NOT NULL, jaggaer_id VARCHAR NOT NULL, b1_key VARCHAR NOT NULL, line_map JSON,
        updated_at TIMESTAMPTZ, PRIMARY KEY (object_type, jaggaer_id))""",
]
# Columns this module adds to tables an older layout may have created.
EXTRA_COLUMNS = {
    "ledger": [("plan_hash", "VARCHAR")],
    "events": [("http_status", "INTEGER"), ("duration_ms", "DOUBLE"), ("b1_body", "JSON")],
    "runs": [("mapping_versions", "JSON"), ("engine_version", "VARCHAR")],
}
LEDGER_COLUMNS = [
    "pipeline", "external_ref", "record_key", "target_entity", "target_key", "fingerprint", "attempt_fingerprint",
    "mapping_version", "status", "attempts", "last_error_code", "last_error", "payload", "line_map", "run_id",
    "created_at", "updated_at", "plan_hash",
]


def ensure_tables(conn: duckdb.DuckDBPyConnection) -> None:
    """Create missing tables. Tables an older layout created are left as they are (writers here
    insert by column name and skip columns a table lacks); `upgrade_tables` adds the extra columns."""
    for ddl in DDL:
        conn.execute(ddl)


def upgrade_tables(conn: duckdb.DuckDBPyConnection) -> None:
    """Add this module's extra columns to tables created with the older layout. Only once every
    writer inserts by column name (a positional `INSERT INTO events VALUES (...)` breaks after it)."""
    ensure_tables(conn)
    for table, columns in EXTRA_COLUMNS.items():
        for name, sql_type in columns:
            conn.execute(f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {name} {sql_type}")


def _columns(conn: duckdb.DuckDBPyConnection, table: str) -> set[str]:
    """The columns of a table of ours (empty when it does not exist). Reads the result description of an
    empty SELECT: a fraction of a millisecond, where information_schema costs ~1 ms."""
    try:
        return {d[0] for d in conn.execute(f"SELECT * FROM {table} LIMIT 0").description}
    except duckdb.CatalogException:
        return set()


def _many(conn: duckdb.DuckDBPyConnection, head: str, rows: Sequence[Sequence[Any]], tail: str = "") -> None:
    """`{head} SELECT * FROM <rows> {tail}` in one statement: the rows go in as an Arrow table.
    (DuckDB's executemany runs a statement per row, and a VALUES list of thousands of parameters costs
    ~0.1 ms per row to bind; Arrow costs a few microseconds.)"""
    if not rows:
        return
    columns = list(zip(*rows, strict=True))
    table = pa.table({f"c{i}": pa.array(values) for i, values in enumerate(columns)})
    name = f"_rows_{id(table)}"
    conn.register(name, table)
    try:
        conn.execute(f"{head} SELECT * FROM {name} {tail}")
    finally:
        conn.unregister(name)


# ---------------------------------------------------------------- redaction
# What is a secret is decided in `engine.secrets` (registered values, credential keys, credentials in
# transit); business text is stored as it is.


def _json(value: Any) -> str | None:
    """Compact JSON of `value`, redacted. Payloads are serialised once (orjson) and walked by `redact`
    only when their text shows a registered secret, a credential key or a credential in transit."""
    if value is None:
        return None
    text = orjson.dumps(value, default=str, option=orjson.OPT_NON_STR_KEYS)
    if secrets.may_hold_secret(text):
        text = orjson.dumps(redact(value), default=str, option=orjson.OPT_NON_STR_KEYS)
    return text.decode()


def _load(value: Any) -> Any:
    return orjson.loads(value) if isinstance(value, str) else value


def _now() -> datetime:
    return datetime.now(UTC)


# ---------------------------------------------------------------- rows


@dataclass
class LedgerRow:
    pipeline: str
    external_ref: str
    record_key: str | None = None
    target_entity: str | None = None
    target_key: str | None = None
    fingerprint: str | None = None
    attempt_fingerprint: str | None = None
    mapping_version: str | None = None
    status: str = "pending"
    attempts: int = 0
    last_error_code: str | None = None
    last_error: str | None = None
    payload: Any = None
    line_map: dict[str, int] | None = None
    run_id: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    plan_hash: str | None = None  # of the staged record + mapping version its synced state was planned from


def has_table(conn: duckdb.DuckDBPyConnection, name: str) -> bool:
    """Whether a table exists (readers never create tables: they may hold a read-only connection)."""
    return bool(db.one_row(
        conn, "SELECT count(*) FROM information_schema.tables WHERE table_name = ? AND table_schema = 'main'", [name]
    )[0])


def _rows(conn: duckdb.DuckDBPyConnection, where: str, params: Sequence[Any]) -> list[LedgerRow]:
    if not has_table(conn, "ledger"):
        return []
    have = _columns(conn, "ledger")
    cols = [c for c in LEDGER_COLUMNS if c in have]
    sql = f"SELECT {', '.join(cols)} FROM ledger {where} ORDER BY pipeline, external_ref"
    out = []
    for values in conn.execute(sql, list(params)).fetchall():
        row = LedgerRow(**dict(zip(cols, values, strict=True)))
        row.payload = _load(row.payload)
        row.line_map = _load(row.line_map)
        row.attempts = row.attempts or 0
        out.append(row)
    return out


def ledger_rows(conn: duckdb.DuckDBPyConnection, pipeline: str, refs: Iterable[str] | None = None) -> dict[str, LedgerRow]:
    """The ledger rows of one pipeline (optionally only `refs`), by external reference."""
    if refs is None:
        rows = _rows(conn, "WHERE pipeline = ?", [pipeline])
    else:
        refs = [str(r) for r in refs]
        if not refs:
            return {}
        rows = _rows(conn, "WHERE pipeline = ? AND external_ref IN (SELECT unnest(?::VARCHAR[]))", [pipeline, refs])
    return {r.external_ref: r for r in rows}


def _upsert(conn: duckdb.DuckDBPyConnection, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert or update ledger rows, touching only the columns each row names."""
    groups: dict[tuple[str, ...], list[Mapping[str, Any]]] = {}
    for row in rows:
        groups.setdefault(tuple(sorted(k for k in row if k not in ("pipeline", "external_ref"))), []).append(row)
    for cols, group in groups.items():
        names = ["pipeline", "external_ref", *cols]
        sets = ", ".join(f"{c} = coalesce(ledger.attempts, 0) + EXCLUDED.attempts" if c == "attempts" else
                         f"{c} = EXCLUDED.{c}" for c in cols if c != "created_at") or "status = ledger.status"
        _many(conn, f"INSERT INTO ledger ({', '.join(names)})", [[r[c] for c in names] for r in group],
              f"ON CONFLICT (pipeline, external_ref) DO UPDATE SET {sets}")


class _Tx:
    def __init__(self, conn: duckdb.DuckDBPyConnection, *, ensure: bool = True):
        self.conn, self.ensure = conn, ensure

    def __enter__(self) -> duckdb.DuckDBPyConnection:
        if self.ensure:
            ensure_tables(self.conn)
        self.conn.execute("BEGIN")
        return self.conn

    def __exit__(self, exc_type: Any, *_: Any) -> None:
        self.conn.execute("ROLLBACK" if exc_type else "COMMIT")


EVENT_COLUMNS = [
    "run_id", "pipeline", "external_ref", "action", "outcome", "target_key", "b1_code", "b1_message", "payload",
    "mapping_version", "writes", "attempts", "happened_at", "http_status", "duration_ms", "b1_body",
]


def _insert_events(conn: duckdb.DuckDBPyConnection, events: list[dict[str, Any]]) -> None:
    if events:
        have = _columns(conn, "events")
        cols = [c for c in EVENT_COLUMNS if c in have]
        _many(conn, f"INSERT INTO events ({', '.join(cols)})", [[e.get(c) for c in cols] for e in events])


# ---------------------------------------------------------------- what the loader calls


@dataclass
class Intent:
    """A write about to be sent (create or update). Committed before the send."""

    pipeline: str
    external_ref: str
    action: str  # create | update
    payload: Any  # what will be sent
    fingerprint: str
    mapping_version: str
    record_key: str | None = None
    target_entity: str | None = None
    target_key: str | None = None


def record_intent(conn: duckdb.DuckDBPyConnection, run_id: str, intents: Sequence[Intent]) -> None:
    """Mark records in flight and journal the intents, in one committed transaction, before sending."""
    if intents:
        with _Tx(conn) as tx:
            _intent_rows(tx, run_id, intents)


def record_batch(conn: duckdb.DuckDBPyConnection, run_id: str, results: Sequence[Result],
                 intents: Sequence[Intent]) -> None:
    """`record_result` then `record_intent` in ONE transaction (the loader's journal: one commit per
    batch). The tables must exist (`upgrade_tables`)."""
    if results or intents:
        with _Tx(conn, ensure=False) as tx:
            _result_rows(tx, run_id, results)
            _intent_rows(tx, run_id, intents)


def _intent_rows(tx: duckdb.DuckDBPyConnection, run_id: str, intents: Sequence[Intent]) -> None:
    if not intents:
        return
    now = _now()
    rows = {}
    for i in intents:
        row = {"pipeline": i.pipeline, "external_ref": i.external_ref, "status": "in_flight",
               "attempt_fingerprint": i.fingerprint, "run_id": run_id, "updated_at": now, "created_at": now}
        if i.record_key is not None:
            row["record_key"] = i.record_key
        if i.target_entity is not None:
            row["target_entity"] = i.target_entity
        rows[(i.pipeline, i.external_ref)] = row
    _upsert(tx, list(rows.values()))
    _insert_events(tx, [{
        "run_id": run_id, "pipeline": i.pipeline, "external_ref": i.external_ref, "action": i.action,
        "outcome": "intent", "target_key": i.target_key, "payload": _json(i.payload),
        "mapping_version": i.mapping_version, "writes": 0, "attempts": 0, "happened_at": now,
    } for i in intents])


@dataclass
class Result:
    """The outcome of one record's attempt(s), as the loader saw it."""

    pipeline: str
    external_ref: str
    action: str  # create | update | lookup
    status: str  # synced | failed | waiting | quarantined | not_applied | in_flight (still unknown)
    target_key: str | None = None
    fingerprint: str | None = None  # of the full rendered payload now in B1 (synced)
    payload: Any = None  # the full rendered payload now in B1 (synced): the base of the next diff
    sent: Any = None  # the body actually sent (for the event)
    mapping_version: str | None = None
    line_map: dict[str, int] | None = None
    crosswalk: tuple[str, str] | None = None  # (object type, jaggaer id) to record with target_key
    http_status: int | None = None
    b1_code: str | None = None
    b1_message: str | None = None
    b1_body: Any = None
    duration_ms: float | None = None
    writes: int = 0
    attempts: int = 1
    adopted: bool = False  # found already in B1 (lost answer, crash) instead of written now
    record_key: str | None = None
    target_entity: str | None = None
    plan_hash: str | None = None  # (synced) of the staged record + mapping version the payload came from
    # Earlier attempts that did not settle the record (`engine.load.model.Attempt`: http_status, b1_code,
    # b1_message, b1_body, duration_ms), each journalled as a `retry` event before the final one.
    tries: list[Any] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    # not_applied: the fingerprint of the rendering B1 refused, and whether B1 took part of the change
    # (then `mapping_version` is recorded: it produced part of what B1 holds)
    attempt_fingerprint: str | None = None
    applied: bool = False


def record_result(conn: duckdb.DuckDBPyConnection, run_id: str, results: Sequence[Result]) -> None:
    """Journal outcomes: ledger status, events, attempts and crosswalk, in one transaction."""
    if results:
        with _Tx(conn) as tx:
            _result_rows(tx, run_id, results)


def _result_rows(tx: duckdb.DuckDBPyConnection, run_id: str, results: Sequence[Result]) -> None:
    if not results:
        return
    now = _now()
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    crosswalk: dict[tuple[str, str], list[Any]] = {}
    events = []
    for r in results:
        row: dict[str, Any] = {"pipeline": r.pipeline, "external_ref": r.external_ref, "run_id": run_id,
                               "updated_at": now, "created_at": now, "status": r.status}
        if r.record_key is not None:
            row["record_key"] = r.record_key
        if r.target_entity is not None:
            row["target_entity"] = r.target_entity
        if r.status == "synced":
            row.update(target_key=r.target_key, fingerprint=r.fingerprint, attempt_fingerprint=r.fingerprint,
                       mapping_version=r.mapping_version, payload=_json(r.payload), last_error_code=None, last_error=None)
            if r.plan_hash is not None:
                row["plan_hash"] = r.plan_hash
            if r.line_map is not None:
                row["line_map"] = _json(r.line_map)
            if r.crosswalk and r.target_key is not None:
                crosswalk[r.crosswalk] = [r.crosswalk[0], str(r.crosswalk[1]), str(r.target_key), _json(r.line_map), now]
        elif r.status == "not_applied":
            row.update(target_key=r.target_key, attempt_fingerprint=r.attempt_fingerprint,
                       last_error_code=r.b1_code, last_error=r.b1_message)
            if r.payload is not None:
                row.update(fingerprint=r.fingerprint, payload=_json(r.payload))
            if r.applied:
                row["mapping_version"] = r.mapping_version
            if r.plan_hash is not None:
                row["plan_hash"] = r.plan_hash
            if r.line_map is not None:
                row["line_map"] = _json(r.line_map)
            if r.crosswalk and r.target_key is not None and r.line_map is not None:
                crosswalk[r.crosswalk] = [r.crosswalk[0], str(r.crosswalk[1]), str(r.target_key), _json(r.line_map), now]
        else:
            row.update(last_error_code=r.b1_code, last_error=r.b1_message)
            if r.target_key is not None:
                row["target_key"] = r.target_key
        rows[(r.pipeline, r.external_ref)] = row
        events += [{
            "run_id": run_id, "pipeline": r.pipeline, "external_ref": r.external_ref, "action": r.action,
            "outcome": "retry", "b1_code": t.b1_code, "b1_message": redact(t.b1_message),
            "mapping_version": r.mapping_version, "writes": 1, "attempts": 1, "happened_at": now,
            "http_status": t.http_status, "duration_ms": t.duration_ms, "b1_body": _json(t.b1_body),
        } for t in r.tries]
        events.append({
            "run_id": run_id, "pipeline": r.pipeline, "external_ref": r.external_ref, "action": r.action,
            "outcome": "adopted" if r.adopted else r.status, "target_key": r.target_key, "b1_code": r.b1_code,
            "b1_message": redact(r.b1_message), "payload": _json(r.sent), "mapping_version": r.mapping_version,
            "writes": r.writes, "attempts": r.attempts, "happened_at": now, "http_status": r.http_status,
            "duration_ms": r.duration_ms, "b1_body": _json(r.b1_body),
        })
    for r in results:  # attempts add up (several results of one record in a batch included)
        row = rows[(r.pipeline, r.external_ref)]
        row["attempts"] = row.get("attempts", 0) + (r.attempts or 0)
    if "plan_hash" not in _columns(tx, "ledger"):  # an older layout: upgrade_tables adds it
        for row in rows.values():
            row.pop("plan_hash", None)
    _upsert(tx, list(rows.values()))
    if crosswalk:
        _many(tx, "INSERT INTO crosswalk (object_type, jaggaer_id, b1_key, line_map, updated_at)", list(crosswalk.values()),
              "ON CONFLICT (object_type, jaggaer_id) DO UPDATE SET "
              "b1_key = EXCLUDED.b1_key, line_map = EXCLUDED.line_map, updated_at = EXCLUDED.updated_at")
    _insert_events(tx, events)


@dataclass(frozen=True)
class Unchanged:
    """A synced record planned again without a write: B1 already holds what it renders to now (or, with
    status `not_applied`, the rendering is the one B1 refused before: nothing new to send)."""

    pipeline: str
    external_ref: str
    plan_hash: str | None
    mapping_version: str | None = None  # recorded only with a new fingerprint (else it names the version synced)
    fingerprint: str | None = None  # with `payload`: a new rendering whose diff was empty (e.g. removals only)
    payload: Any = None
    status: str = "synced"
    # A record first seen from the other side (the write-back's baseline, `engine.bidirectional`): the row is
    # new, so it is given its key, staged key and target too (None: left as they are).
    target_key: str | None = None
    record_key: str | None = None
    target_entity: str | None = None


def refresh_synced(conn: duckdb.DuckDBPyConnection, items: Sequence[Unchanged]) -> None:
    """Note on synced records what they were planned from, so a later run skips them without rendering."""
    if not items:
        return
    now = _now()
    rows = []
    for u in items:
        row: dict[str, Any] = {"pipeline": u.pipeline, "external_ref": u.external_ref, "status": u.status,
                               "plan_hash": u.plan_hash, "updated_at": now}
        if u.status == "synced":  # B1 holds what the record renders to: an earlier hold-back is over
            row.update(last_error_code=None, last_error=None)
        if u.fingerprint is not None:  # the stored payload is now this mapping version's rendering
            row.update(fingerprint=u.fingerprint, attempt_fingerprint=u.fingerprint, payload=_json(u.payload),
                       mapping_version=u.mapping_version)
        for name in ("target_key", "record_key", "target_entity"):
            if getattr(u, name) is not None:
                row[name] = getattr(u, name)
        if u.target_key is not None:
            row["created_at"] = now  # kept on an existing row (`_upsert` never updates it)
        rows.append(row)
    with _Tx(conn) as tx:
        have = _columns(tx, "ledger")
        _upsert(tx, [{k: v for k, v in r.items() if k in have} for r in rows])


@dataclass(frozen=True)
class Mark:
    """A record set to waiting / failed / quarantined / ignored without a write (planning, or a refused record)."""

    pipeline: str
    external_ref: str
    reason: str
    code: str | None = None
    record_key: str | None = None
    mapping_version: str | None = None
    plan_hash: str | None = None  # ignored: the staged content + mapping version it was decided from


# Statuses a mark leaves as they are (it only notes why): B1 holds the record's last good version, or
# an intent's outcome is still unknown.
KEEP = ("synced", "not_applied", "in_flight")


def _mark(conn: duckdb.DuckDBPyConnection, run_id: str | None, status: str, marks: Sequence[Mark],
          keep: Sequence[str] = KEEP) -> None:
    if not marks:
        return
    now = _now()
    with _Tx(conn) as tx:
        known: dict[tuple[str, str], tuple[str, str | None]] = {}  # -> (status, B1 key)
        by_pipeline: dict[str, list[str]] = {}
        for m in marks:
            by_pipeline.setdefault(m.pipeline, []).append(m.external_ref)
        for pipeline, refs in by_pipeline.items():
            for start in range(0, len(refs), 1000):
                chunk = refs[start:start + 1000]
                known.update({(p, ref): (st, key) for p, ref, st, key in tx.execute(
                    f"SELECT pipeline, external_ref, status, target_key FROM ledger WHERE pipeline = ? "
                    f"AND external_ref IN ({', '.join('?' for _ in chunk)})", [pipeline, *chunk]).fetchall()})
        rows = []
        for m in marks:
            status_now, key = known.get((m.pipeline, m.external_ref), (None, None))
            row: dict[str, Any] = {"pipeline": m.pipeline, "external_ref": m.external_ref, "last_error_code": m.code,
                                   "last_error": m.reason, "updated_at": now, "run_id": run_id}
            # A synced (or not_applied) record keeps its status (B1 holds its last good version); an in-flight
            # one stays in flight until it is resolved in B1. Both only note why the new version is held back.
            if status_now not in keep:
                row.update(status=status, created_at=now)
                if m.mapping_version is not None and key is None:  # else it names the version of B1's payload
                    row["mapping_version"] = m.mapping_version
                if m.plan_hash is not None:
                    row["plan_hash"] = m.plan_hash
            if m.record_key is not None:
                row["record_key"] = m.record_key
            rows.append(row)
        _upsert(tx, list({(r["pipeline"], r["external_ref"]): r for r in rows}.values()))
        _insert_events(tx, [{"run_id": run_id, "pipeline": m.pipeline, "external_ref": m.external_ref, "action": "plan",
                             "outcome": status, "target_key": known.get((m.pipeline, m.external_ref), (None, None))[1],
                             "b1_code": m.code, "b1_message": redact(m.reason),
                             "mapping_version": m.mapping_version, "writes": 0, "attempts": 0, "happened_at": now}
                            for m in marks])


def mark_waiting(conn: duckdb.DuckDBPyConnection, run_id: str | None, marks: Sequence[Mark]) -> None:
    _mark(conn, run_id, "waiting", marks)


def mark_failed(conn: duckdb.DuckDBPyConnection, run_id: str | None, marks: Sequence[Mark]) -> None:
    _mark(conn, run_id, "failed", marks)


def mark_quarantined(conn: duckdb.DuckDBPyConnection, run_id: str | None, marks: Sequence[Mark]) -> None:
    _mark(conn, run_id, "quarantined", marks)


def mark_ignored(conn: duckdb.DuckDBPyConnection, run_id: str | None, marks: Sequence[Mark]) -> None:
    """Records the mapping leaves out on purpose (`skip_unless`): status `ignored` with the mapping's reason
    and the `plan_hash` they were decided from (not planned again until the record or the mapping changes),
    and a `plan` event. A record B1 holds keeps its key, payload and line map (e.g. an order synced, then
    cancelled in JAGGAER: B1 keeps it for a buyer); only an intent whose outcome is unknown stays in flight."""
    _mark(conn, run_id, "ignored", marks, keep=("in_flight",))


def key_census(conn: duckdb.DuckDBPyConnection, target_entity: str) -> tuple[int, int]:
    """(records of an entity set the ledger knows a B1 key of, records in flight without one)."""
    if not has_table(conn, "ledger"):
        return 0, 0
    known, in_flight = db.one_row(
        conn, "SELECT count(*) FILTER (WHERE target_key IS NOT NULL), "
        "count(*) FILTER (WHERE target_key IS NULL AND status = 'in_flight') FROM ledger WHERE target_entity = ?",
        [target_entity])
    return int(known), int(in_flight)


def pending_intents(conn: duckdb.DuckDBPyConnection, pipeline: str | None = None) -> list[LedgerRow]:
    """Records left in flight by an interrupted run: look each up in B1 before re-sending anything."""
    if pipeline is None:
        return _rows(conn, "WHERE status = 'in_flight'", [])
    return _rows(conn, "WHERE status = 'in_flight' AND pipeline = ?", [pipeline])


def failed_records(
    conn: duckdb.DuckDBPyConnection, run_id: str | None = None, ref: str | Sequence[str] | None = None,
    pipeline: str | None = None,
) -> list[LedgerRow]:
    """Failed records for `replay`: all, those that failed in one run, or by reference (ref or record key).
    Named by reference, a record whose change was not applied (closed document) is replayed too: someone
    may have reopened the document in B1."""
    where, params = ["status IN ('failed', 'not_applied')" if ref is not None else "status = 'failed'"], []
    if run_id is not None:
        where.append("EXISTS (SELECT 1 FROM events e WHERE e.run_id = ? AND e.pipeline = ledger.pipeline "
                     "AND e.external_ref = ledger.external_ref AND e.outcome = 'failed')")
        params.append(run_id)
    if ref is not None:
        refs = [ref] if isinstance(ref, str) else list(ref)
        marks = ", ".join("?" for _ in refs)
        where.append(f"(external_ref IN ({marks}) OR record_key IN ({marks}))")
        params += refs + refs
    if pipeline is not None:
        where.append("pipeline = ?")
        params.append(pipeline)
    return _rows(conn, "WHERE " + " AND ".join(where), params)


# ---------------------------------------------------------------- runs


def start_run(
    conn: duckdb.DuckDBPyConnection, run_id: str, pipelines: Sequence[str], *, kind: str = "run",
    mapping_versions: Mapping[str, str] | None = None,
) -> None:
    ensure_tables(conn)
    values = {"run_id": run_id, "kind": kind, "pipelines": ",".join(pipelines), "started_at": _now(),
              "mapping_versions": _json(dict(mapping_versions or {})), "engine_version": __version__}
    cols = [c for c in values if c in _columns(conn, "runs")]
    conn.execute(f"INSERT INTO runs ({', '.join(cols)}) VALUES ({', '.join('?' for _ in cols)})", [values[c] for c in cols])


def finish_run(
    conn: duckdb.DuckDBPyConnection, run_id: str, counts: Mapping[str, int], *, aborted: str | None = None,
    mapping_versions: Mapping[str, str] | None = None,
) -> None:
    sets, params = ["finished_at = ?", "counts = ?", "aborted = ?"], [_now(), _json(dict(counts)), redact(aborted)]
    if mapping_versions is not None and "mapping_versions" in _columns(conn, "runs"):
        sets.append("mapping_versions = ?")
        params.append(_json(dict(mapping_versions)))
    conn.execute(f"UPDATE runs SET {', '.join(sets)} WHERE run_id = ?", [*params, run_id])


# ---------------------------------------------------------------- crosswalk


@dataclass(frozen=True)
class CrosswalkRow:
    object_type: str
    jaggaer_id: str
    b1_key: str
    line_map: dict[str, int] | None = None


def upsert_crosswalk(conn: duckdb.DuckDBPyConnection, rows: Sequence[CrosswalkRow]) -> None:
    if not rows:
        return
    now = _now()
    with _Tx(conn) as tx:
        _many(tx, "INSERT INTO crosswalk (object_type, jaggaer_id, b1_key, line_map, updated_at)",
              [[r.object_type, str(r.jaggaer_id), str(r.b1_key), _json(r.line_map), now] for r in rows],
              "ON CONFLICT (object_type, jaggaer_id) DO UPDATE SET "
              "b1_key = EXCLUDED.b1_key, line_map = EXCLUDED.line_map, updated_at = EXCLUDED.updated_at")


def load_crosswalk(
    conn: duckdb.DuckDBPyConnection, object_types: Iterable[str] | None = None
) -> dict[str, dict[str, CrosswalkEntry]]:
    """type -> jaggaer id -> CrosswalkEntry(b1_key, line_map): what mappings' `crosswalk()` looks up."""
    if not has_table(conn, "crosswalk"):
        return {}
    sql, params = "SELECT object_type, jaggaer_id, b1_key, line_map FROM crosswalk", []
    if object_types is not None:
        types = list(object_types)
        if not types:
            return {}
        sql += f" WHERE object_type IN ({', '.join('?' for _ in types)})"
        params = types
    out: dict[str, dict[str, CrosswalkEntry]] = {}
    for object_type, jaggaer_id, b1_key, line_map in conn.execute(sql, params).fetchall():
        lm = _load(line_map)
        out.setdefault(object_type, {})[jaggaer_id] = CrosswalkEntry(
            b1_key, {str(k): int(v) for k, v in lm.items()} if lm else None
        )
    return out


# ---------------------------------------------------------------- reconcile (engine/reconcile.py --fix)
# Two edits a reconcile makes after comparing the ledger with what SAP B1 holds; each journals a
# `reconcile` event per record, so `audit history <ref>` tells why the next write happened.


@dataclass(frozen=True)
class Rebase:
    """A record B1 holds with other values than we wrote: its payload as B1 holds it now."""

    external_ref: str
    payload: Any  # what B1 holds, in the shape of our payload (reserved keys kept)
    fingerprint: str


def rebase_on_b1(conn: duckdb.DuckDBPyConnection, run_id: str, pipeline: str, items: Sequence[Rebase],
                 reason: str) -> None:
    """Set the ledger's payload and fingerprint of these records to what B1 holds and clear `plan_hash`, so
    the next plan of each (a run or a replay of it) PATCHes exactly the fields B1 holds differently. Status,
    key, line map and mapping version stay."""
    if not items:
        return
    now = _now()
    with _Tx(conn) as tx:
        known = _target_keys(tx, pipeline, [i.external_ref for i in items])
        items = [i for i in items if i.external_ref in known]
        _many(tx, "UPDATE ledger SET payload = r.c2, fingerprint = r.c3, plan_hash = NULL, updated_at = r.c4 FROM (",
              [[pipeline, i.external_ref, _json(i.payload), i.fingerprint, now] for i in items],
              ") r WHERE ledger.pipeline = r.c0 AND ledger.external_ref = r.c1")
        _insert_events(tx, [{"run_id": run_id, "pipeline": pipeline, "external_ref": i.external_ref,
                             "action": "reconcile", "outcome": "rebased", "target_key": known[i.external_ref],
                             "b1_message": reason, "b1_body": _json(i.payload), "writes": 0, "attempts": 0,
                             "happened_at": now} for i in items])


def _target_keys(conn: duckdb.DuckDBPyConnection, pipeline: str, refs: list[str]) -> dict[str, Any]:
    """external_ref -> target_key (None when unknown to B1) of the ledger rows of these references."""
    return dict(conn.execute(
        "SELECT external_ref, target_key FROM ledger WHERE pipeline = ? "
        "AND external_ref IN (SELECT unnest(?::VARCHAR[]))", [pipeline, refs]).fetchall())


def forget_b1_key(conn: duckdb.DuckDBPyConnection, run_id: str, pipeline: str, refs: Sequence[str],
                  reason: str) -> None:
    """B1 no longer holds these records (deleted, or their reference cleared): forget key, payload, fingerprint,
    line map and plan hash (status `pending`, `last_error_code` `missing_in_b1`). The next plan creates each
    again; `attempt_fingerprint` is kept, so the loader looks the reference up before it creates."""
    if not refs:
        return
    now = _now()
    with _Tx(conn) as tx:
        known = _target_keys(tx, pipeline, list(refs))
        tx.execute("UPDATE ledger SET target_key = NULL, payload = NULL, fingerprint = NULL, line_map = NULL, "
                   "plan_hash = NULL, status = 'pending', last_error_code = 'missing_in_b1', last_error = ?, "
                   "updated_at = ? WHERE pipeline = ? AND external_ref IN (SELECT unnest(?::VARCHAR[]))",
                   [reason, now, pipeline, list(known)])
        _insert_events(tx, [{"run_id": run_id, "pipeline": pipeline, "external_ref": ref, "action": "reconcile",
                             "outcome": "key_cleared", "target_key": key, "b1_code": "missing_in_b1",
                             "b1_message": reason, "writes": 0, "attempts": 0, "happened_at": now}
                            for ref, key in known.items()])

