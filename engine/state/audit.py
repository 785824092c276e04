"""Named audit queries over the ledger, events, runs, crosswalk and quarantine tables (read-only).

Every query returns a `QueryResult` (columns, rows); the `audit` verb prints it as a table.
One SQL statement of the user's own runs too, and only a SELECT: the connection is read-only, reaches
no file, network or extension and cannot change its settings, and a query that names anything else
(ATTACH, COPY, SET, INSTALL, a file reader such as read_csv) is refused before it runs. Control
characters of the data are escaped on output (`escape_controls`).
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from engine.errors import ConfigError
from engine.state import db


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
    "conflicts": NamedQuery(
        "SELECT detected_at, kind, changed_on, jaggaer_id, b1_key, field, b1_field, jaggaer_value, b1_value, policy, "
        "winner, jaggaer_stamp, b1_stamp, run_id FROM conflicts ORDER BY detected_at DESC, jaggaer_id, field",
        "suppliers both ways: fields changed on both sides (kind conflict: both values, the policy, whose value "
        "both sides keep) and changes of a field the other side owns (kind not_owner: not propagated)",
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


# -- the locked-down connection ---------------------------------------------------------------------

# No file or network access (COPY, read_text, ATTACH of another file, INSTALL), no extension loading.
LOCKED_CONFIG = {
    "enable_external_access": False,
    "autoload_known_extensions": False,
    "autoinstall_known_extensions": False,
}


@contextlib.contextmanager
def open_locked(path: str | Path, *, wait_seconds: float = 10.0) -> Iterator[duckdb.DuckDBPyConnection]:
    """The state file, read-only, with `LOCKED_CONFIG` and its configuration locked (no query can SET it
    back); waits while a writer holds the file (`engine.state.db.connect`)."""
    with db.connect(path, read_only=True, wait_seconds=wait_seconds, config=dict(LOCKED_CONFIG)) as conn:
        conn.execute("SET lock_configuration = true")
        yield conn


# -- one read-only SELECT ---------------------------------------------------------------------------

# Table functions and scalar functions that read files, the network or other databases, or run SQL text.
# Refused by name on top of `enable_external_access=false`.
_DENIED_FUNCTIONS = frozenset({
    "glob", "sniff_csv", "query", "query_table", "getenv", "duckdb_secrets", "which_secret",
    "load_aws_credentials", "checkpoint", "force_checkpoint",
})
_DENIED_PREFIXES = ("read_", "parquet_", "iceberg_", "delta_", "sqlite_", "postgres_", "mysql_", "st_read",
                    "http_", "httpfs_", "excel_", "xlsx_", "avro_", "lance_")
_LEADING_COMMENTS = re.compile(r"^(?:\s+|--[^\n]*(?:\n|$)|/\*.*?\*/)*", re.S)
_EXPLAIN = re.compile(r"^explain\s+(?:analy[sz]e\s+)?(?:\([^)]*\)\s*)?", re.I)
_REFUSED = "audit runs one read-only SELECT"


def check_select(conn: duckdb.DuckDBPyConnection, sql: str) -> None:
    """Refuse (ConfigError) anything but exactly one SELECT (or EXPLAIN of one) that reads only tables of
    the state file: no other statement, no file, network or SQL-text function, no file as a table."""
    for what, name in _references(conn, _the_select(conn, sql)):
        lowered = name.lower()
        if what == "function" and (lowered in _DENIED_FUNCTIONS or lowered.startswith(_DENIED_PREFIXES)):
            raise ConfigError(f"{_REFUSED} over the state file's tables; {escape_controls(name)}() is not allowed")
        if what == "table" and any(c in name for c in "/\\:."):
            raise ConfigError(f"{_REFUSED} over the state file's tables; reading the file "
                              f"'{escape_controls(name)}' is not allowed")


def _the_select(conn: duckdb.DuckDBPyConnection, sql: str) -> str:
    """The text of the one SELECT in `sql` (the SELECT an EXPLAIN explains); ConfigError for anything else."""
    statements = _parse(conn, sql)
    if len(statements) != 1:
        raise ConfigError(f"{_REFUSED}; " + (f"{len(statements)} statements were given" if statements
                                             else "the query is empty"))
    kind, text = statements[0].type.name, _LEADING_COMMENTS.sub("", statements[0].query, count=1)
    if kind == "EXPLAIN":
        inner = _EXPLAIN.sub("", text, count=1)
        if inner == text or [s.type.name for s in _parse(conn, inner)] != ["SELECT"]:
            raise ConfigError(f"{_REFUSED}; EXPLAIN of anything but a plain SELECT is not allowed")
        return inner
    if kind != "SELECT":
        word = re.match(r"[A-Za-z]+", text)
        hint = " (read it with SELECT * FROM pragma_table_info('ledger'))" if kind == "PRAGMA" else ""
        raise ConfigError(f"{_REFUSED}; {(word.group(0) if word else kind).upper()} is not allowed{hint}")
    return text


def _parse(conn: duckdb.DuckDBPyConnection, sql: str) -> list[Any]:
    try:
        return conn.extract_statements(sql)
    except duckdb.Error as exc:
        raise ConfigError(f"query failed: {_first_line(exc)}") from None


def _parses(conn: duckdb.DuckDBPyConnection, sql: str) -> bool:
    try:
        conn.extract_statements(sql)
    except duckdb.Error:
        return False
    return True


def _references(conn: duckdb.DuckDBPyConnection, sql: str) -> Iterator[tuple[str, str]]:
    """("function", name) and ("table", name) for every function call and table the SELECT names."""
    try:
        tree = json.loads(db.one_row(conn, "SELECT json_serialize_sql(?)", [sql])[0])
    except duckdb.Error as exc:
        raise ConfigError(f"audit cannot check this query: {_first_line(exc)}") from None
    if tree.get("error"):
        raise ConfigError(f"query failed: {_first_line(ValueError(tree.get('error_message') or 'cannot parse'))}")
    stack: list[Any] = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if isinstance(node.get("function_name"), str):
                yield "function", node["function_name"]
            if node.get("type") == "BASE_TABLE" and isinstance(node.get("table_name"), str):
                yield "table", node["table_name"]
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)


# -- running a query --------------------------------------------------------------------------------


def run_query(conn: duckdb.DuckDBPyConnection, name_or_sql: str, args: Sequence[str] = ()) -> QueryResult:
    """A named query (with its arguments) or one read-only SELECT (`check_select`)."""
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
        if args or (re.fullmatch(r"[\w-]+", name_or_sql.strip()) and not _parses(conn, name_or_sql)):
            raise ConfigError(f"unknown audit query {escape_controls(name_or_sql)!r} (named queries: "
                              f"{', '.join(QUERIES)}; or pass one SELECT statement)")
        check_select(conn, name_or_sql)
        sql, params = name_or_sql, []
    try:
        cursor = conn.execute(sql, params)
        columns = [d[0] for d in cursor.description or []]
        rows = cursor.fetchall() if columns else []
    except duckdb.CatalogException as exc:
        raise ConfigError(f"the state file has no such table yet (nothing was run?): {_first_line(exc)}") from None
    except duckdb.Error as exc:
        raise ConfigError(f"query failed: {_first_line(exc)}") from None
    return QueryResult(columns, rows)


def audit(state_path: Path, name_or_sql: str, args: Sequence[str] = ()) -> QueryResult:
    """Run a query on a locked-down, read-only connection to the state file (`open_locked`)."""
    if not Path(state_path).exists():
        raise ConfigError(f"no state file at {state_path}: nothing has been run yet")
    with open_locked(state_path) as conn:
        return run_query(conn, name_or_sql, args)


# -- output -----------------------------------------------------------------------------------------

_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_NAMED = {"\t": "\\t", "\r": "\\r", "\n": "\\n"}


def escape_controls(text: str) -> str:
    """Control characters (C0, DEL, C1) as visible escapes (ESC -> `\\x1b`, NUL -> `\\x00`, TAB -> `\\t`), so
    data shown on a terminal cannot drive it."""
    return _CONTROLS.sub(lambda m: _NAMED.get(m.group(0)) or f"\\x{ord(m.group(0)):02x}", text)


def _first_line(exc: BaseException) -> str:
    return escape_controls(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)


def format_table(result: QueryResult, *, max_width: int = 60) -> str:
    """A plain-text table (line breaks as spaces, control characters escaped, cells cut to max_width)."""
    def cell(value: Any) -> str:
        text = "" if value is None else str(value)
        text = escape_controls(text.replace("\r\n", " ").replace("\n", " "))
        return text if len(text) <= max_width else text[: max_width - 1] + "…"

    columns = [escape_controls(str(c)) for c in result.columns]
    rows = [[cell(v) for v in row] for row in result.rows]
    widths = [max([len(c), *(len(r[i]) for r in rows)]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip(),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    lines.append(f"({len(rows)} row{'s' if len(rows) != 1 else ''})")
    return "\n".join(lines)


def json_rows(result: QueryResult) -> Iterator[str]:
    """One JSON object per row. JSON's own escapes (ESC -> `\\u001b`; every non-ASCII character as
    `\\uXXXX`) keep control characters off the terminal while a JSON reader gets the exact value."""
    for row in result.rows:
        yield json.dumps(dict(zip(result.columns, row, strict=True)), default=str, ensure_ascii=True)
