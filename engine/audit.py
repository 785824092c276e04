"""Named audit queries over the ledger, events, runs, crosswalk and quarantine tables (read-only).

Every query returns a `QueryResult` (columns, rows); the `audit` verb prints it as a table.
Arbitrary SQL runs too, on a read-only connection, so the audit can never change the state.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from engine import db
from engine.errors import ConfigError


@dataclass(frozen=True)
class NamedQuery:
    sql: str
    help: str
    params: tuple[str, ...] = ()


QUERIES: dict[str, NamedQuery] = {
    "runs": NamedQuery(
        "SELECT run_id, kind, pipelines, started_at, finished_at, counts, aborted FROM runs "
        "ORDER BY started_at DESC LIMIT 50",
        "the last runs with their counts per outcome",
    ),
    "failures": NamedQuery(
        "SELECT pipeline, external_ref, record_key, attempts, last_error_code, last_error, run_id, updated_at "
        "FROM ledger WHERE status = 'failed' ORDER BY updated_at DESC, pipeline, external_ref",
        "records SAP B1 refused (replay them once the cause is fixed)",
    ),
    "waiting": NamedQuery(
        "SELECT pipeline, external_ref, record_key, last_error, updated_at FROM ledger "
        "WHERE status = 'waiting' ORDER BY pipeline, external_ref",
        "records waiting for a dependency (supplier, purchase order) or an approval",
    ),
    "not-applied": NamedQuery(
        "SELECT pipeline, external_ref, record_key, target_key, last_error_code, last_error, run_id, updated_at "
        "FROM ledger WHERE status = 'not_applied' ORDER BY updated_at DESC, pipeline, external_ref",
        "changes SAP B1 kept out of a closed, cancelled or posted document (not re-sent until the source "
        "or the mapping changes again)",
    ),
    "ignored": NamedQuery(
        "SELECT pipeline, external_ref, target_key, last_error AS reason, run_id FROM ledger "
        "WHERE status = 'ignored' ORDER BY pipeline, external_ref",
        "records the mapping leaves out on purpose (skip_unless: a cancelled order, a credit memo), with the "
        "mapping's reason; target_key: the record was in SAP B1 before (left there as it is)",
    ),
    "quarantine": NamedQuery(
        "SELECT pipeline, record_key, stage, reason, run_id, quarantined_at FROM quarantine "
        "WHERE resolved_at IS NULL ORDER BY quarantined_at DESC, pipeline, record_key",
        "records set aside with the reason (bad input, unmapped code, too-long value)",
    ),
    "in-flight": NamedQuery(
        "SELECT pipeline, external_ref, record_key, attempt_fingerprint, run_id, updated_at FROM ledger "
        "WHERE status = 'in_flight' ORDER BY updated_at",
        "writes whose outcome is unknown (an interrupted run): resolved in B1 by the next run",
    ),
    "history": NamedQuery(
        "SELECT {columns} FROM events "
        "WHERE external_ref = ? OR external_ref IN (SELECT external_ref FROM ledger WHERE record_key = ?) "
        "ORDER BY happened_at, run_id",
        "every intent and attempt of one record: history <external ref or record key>",
        ("ref", "ref"),
    ),
    "status": NamedQuery(
        "SELECT pipeline, status, count(*) AS records FROM ledger GROUP BY ALL ORDER BY pipeline, status",
        "records per pipeline and status",
    ),
    "crosswalk": NamedQuery(
        "SELECT object_type, jaggaer_id, b1_key, line_map, updated_at FROM crosswalk ORDER BY object_type, jaggaer_id",
        "JAGGAER ids and the B1 keys they became",
    ),
}


HISTORY_COLUMNS = [
    "happened_at", "run_id", "pipeline", "action", "outcome", "target_key", "http_status", "b1_code", "b1_message",
    "writes", "attempts", "duration_ms", "mapping_version", "payload",
]


@dataclass
class QueryResult:
    columns: list[str]
    rows: list[tuple[Any, ...]]


def run_query(conn: duckdb.DuckDBPyConnection, name_or_sql: str, args: Sequence[str] = ()) -> QueryResult:
    """A named query (with its arguments) or any SQL statement."""
    named = QUERIES.get(name_or_sql)
    if named is not None:
        if len(args) != len(set(named.params)):
            wanted = " ".join(f"<{p}>" for p in dict.fromkeys(named.params))
            raise ConfigError(f"audit {name_or_sql} needs {wanted}" if wanted else f"audit {name_or_sql} takes no argument")
        by_name = dict(zip(dict.fromkeys(named.params), args, strict=True))
        sql, params = named.sql, [by_name[p] for p in named.params]
        if "{columns}" in sql:  # the events columns this state file has (older layouts lack a few)
            have = {r[0] for r in conn.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = 'events'").fetchall()}
            sql = sql.replace("{columns}", ", ".join(c for c in HISTORY_COLUMNS if c in have) or "*")
    else:
        if args:
            raise ConfigError(f"unknown audit query {name_or_sql!r} (named queries: {', '.join(QUERIES)}; or pass one SQL statement)")
        sql, params = name_or_sql, []
    try:
        cursor = conn.execute(sql, params)
    except duckdb.CatalogException as exc:
        raise ConfigError(f"the state file has no such table yet (nothing was run?): {str(exc).splitlines()[0]}") from None
    except duckdb.Error as exc:
        raise ConfigError(f"query failed: {str(exc).splitlines()[0]}") from None
    columns = [d[0] for d in cursor.description or []]
    return QueryResult(columns, cursor.fetchall() if columns else [])


def audit(state_path: Path, name_or_sql: str, args: Sequence[str] = ()) -> QueryResult:
    """Run a query on a read-only connection to the state file."""
    if not Path(state_path).exists():
        raise ConfigError(f"no state file at {state_path}: nothing has been run yet")
    with db.connect(state_path, read_only=True) as conn:
        return run_query(conn, name_or_sql, args)


def format_table(result: QueryResult, *, max_width: int = 60) -> str:
    """A plain-text table (cells cut to max_width)."""
    def cell(value: Any) -> str:
        text = "" if value is None else str(value)
        text = text.replace("\n", " ")
        return text if len(text) <= max_width else text[: max_width - 1] + "…"

    rows = [[cell(v) for v in row] for row in result.rows]
    widths = [max([len(c), *(len(r[i]) for r in rows)]) for i, c in enumerate(result.columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(result.columns, widths, strict=True)).rstrip(),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    lines.append(f"({len(rows)} row{'s' if len(rows) != 1 else ''})")
    return "\n".join(lines)
