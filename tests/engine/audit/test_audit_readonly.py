"""`ml-connector audit` is read-only: one SELECT over the state file's tables, on a connection that reaches
no file, network or extension and cannot change its settings; data cannot drive the terminal."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from engine.cli import main
from engine.errors import ConfigError
from engine.state import audit, db, ledger

EVIL = "red \x1b[31mALERT\x1b[0m nul \x00 bell \x07 csi \x9b2J tab\there\r\nnext"


@pytest.fixture
def state(tmp_path: Path) -> Path:
    """A state file with the ledger tables and three ledger rows (one holding control characters)."""
    path = tmp_path / "state.duckdb"
    with db.connect(path) as conn:
        ledger.ensure_tables(conn)
        conn.executemany(
            "INSERT INTO ledger (pipeline, external_ref, record_key, status, last_error_code, last_error) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            [("purchase_orders", "PO-1", "1", "synced", None, None),
             ("purchase_orders", "PO-2", "2", "failed", "-10", EVIL),
             ("suppliers", "S-1", "S-1", "waiting", None, "waiting for approval")])
    return path


def ledger_rows(path: Path) -> int:
    with db.connect(path, read_only=True) as conn:
        return conn.execute("SELECT count(*) FROM ledger").fetchone()[0]


def escapes(state: Path, tmp_path: Path) -> list[tuple[str, str]]:
    """(SQL, what the refusal names): each tries to write, read a file, reach the network or unlock."""
    out = tmp_path / "out"
    return [
        (f"ATTACH '{state}' AS w (READ_WRITE); DELETE FROM w.ledger", "2 statements"),
        (f"ATTACH '{state}' AS w (READ_WRITE)", "ATTACH is not allowed"),
        (f"/* harmless */ ATTACH '{tmp_path / 'other.duckdb'}' AS o", "ATTACH is not allowed"),
        ("DETACH w", "DETACH is not allowed"),
        ("DELETE FROM ledger", "DELETE is not allowed"),
        ("UPDATE ledger SET status = 'synced'", "UPDATE is not allowed"),
        ("CREATE TABLE t AS SELECT * FROM ledger", "CREATE is not allowed"),
        ("SELECT 1; SELECT 2", "2 statements"),
        ("SELECT count(*) FROM ledger;\nDROP TABLE ledger", "2 statements"),
        (f"COPY ledger TO '{out}.csv'", "COPY is not allowed"),
        (f"COPY (SELECT * FROM ledger) TO '{out}.parquet' (FORMAT parquet)", "COPY is not allowed"),
        (f"EXPORT DATABASE '{out}'", "EXPORT is not allowed"),
        (f"IMPORT DATABASE '{out}'", "IMPORT is not allowed"),
        ("INSTALL httpfs", "INSTALL is not allowed"),
        ("LOAD httpfs", "LOAD is not allowed"),
        ("SET enable_external_access = true", "SET is not allowed"),
        ("RESET lock_configuration", "RESET is not allowed"),
        ("CALL pragma_version()", "CALL is not allowed"),
        ("PRAGMA table_info('ledger')", "PRAGMA is not allowed"),
        ("CHECKPOINT", "CHECKPOINT is not allowed"),
        (f"EXPLAIN COPY ledger TO '{out}.csv'", "EXPLAIN of anything but a plain SELECT"),
        ("SELECT * FROM read_text('/etc/passwd')", "read_text() is not allowed"),
        ("SELECT content FROM read_blob('/etc/passwd')", "read_blob() is not allowed"),
        ("SELECT * FROM read_csv('/etc/passwd')", "read_csv() is not allowed"),
        ("SELECT * FROM read_csv_auto('/etc/passwd')", "read_csv_auto() is not allowed"),
        ("SELECT * FROM read_json('/etc/hosts')", "read_json() is not allowed"),
        ("SELECT * FROM read_parquet('x.parquet')", "read_parquet() is not allowed"),
        ("SELECT * FROM parquet_scan('x.parquet')", "parquet_scan() is not allowed"),
        ("SELECT * FROM glob('/etc/*')", "glob() is not allowed"),
        ("SELECT * FROM main.\"read_text\"('/etc/passwd')", "read_text() is not allowed"),
        ("SELECT * FROM '/etc/passwd'", "reading the file '/etc/passwd'"),
        ("SELECT * FROM \"out.csv\"", "reading the file 'out.csv'"),
        ("DESCRIBE 'x.parquet'", "reading the file 'x.parquet'"),
        ("SELECT * FROM query('SELECT * FROM read_text(''/etc/passwd'')')", "query() is not allowed"),
        ("WITH f AS (SELECT * FROM read_text('/etc/passwd')) SELECT * FROM f", "read_text() is not allowed"),
        ("SELECT * FROM ledger WHERE last_error IN (SELECT content FROM read_text('/etc/passwd'))",
         "read_text() is not allowed"),
        ("SELECT list_transform(['/etc/passwd'], f -> read_text(f))", "read_text() is not allowed"),
        ("", "the query is empty"),
    ]


def test_every_escape_is_refused_and_the_state_file_is_unchanged(state, tmp_path):
    before = state.read_bytes()
    for sql, named in escapes(state, tmp_path):
        with pytest.raises(ConfigError) as refused:
            audit.audit(state, sql)
        assert named in str(refused.value), sql
        assert "audit runs one read-only SELECT" in str(refused.value) or "query failed" in str(refused.value), sql
    assert ledger_rows(state) == 3
    assert state.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.duckdb"]  # no COPY or EXPORT output


def test_the_cli_reports_a_refusal_as_an_error(state, capsys):
    assert main(["audit", f"ATTACH '{state}' AS w (READ_WRITE)", "--state", str(state)]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "error: audit runs one read-only SELECT; ATTACH is not allowed" in captured.err
    assert ledger_rows(state) == 3


def test_the_connection_itself_reaches_no_file_and_cannot_be_unlocked(state, tmp_path):
    """Defense in depth: were a statement to get past the check, the connection still refuses it."""
    with audit.open_locked(state) as conn:
        for sql in ["SELECT * FROM read_text('/etc/passwd')", f"COPY ledger TO '{tmp_path / 'x.csv'}'",
                    "LOAD httpfs", "SET enable_external_access = true", "SET lock_configuration = false",
                    "SET autoload_known_extensions = true", "DELETE FROM ledger"]:
            with pytest.raises(duckdb.Error):
                conn.execute(sql)
        assert conn.execute("SELECT current_setting('enable_external_access')").fetchone() == (False,)
    assert ledger_rows(state) == 3 and not (tmp_path / "x.csv").exists()


def test_selects_and_named_queries_still_work(state):
    assert audit.audit(state, "SELECT count(*) AS n FROM ledger").rows == [(3,)]
    assert audit.audit(state, "  -- per status\nSELECT status, count(*) FROM ledger GROUP BY ALL ORDER BY 1;").rows \
        == [("failed", 1), ("synced", 1), ("waiting", 1)]
    assert audit.audit(state, "WITH f AS (FROM ledger WHERE status = 'failed') SELECT external_ref FROM f").rows \
        == [("PO-2",)]
    assert audit.audit(state, "SELECT name FROM pragma_table_info('ledger') WHERE name = 'status'").rows == [("status",)]
    assert "status" in {row[0] for row in audit.audit(state, "DESCRIBE ledger").rows}
    assert audit.audit(state, "EXPLAIN SELECT * FROM ledger").columns
    assert audit.audit(state, "status").rows == [("purchase_orders", "failed", 1), ("purchase_orders", "synced", 1),
                                                 ("suppliers", "waiting", 1)]
    assert [row[1] for row in audit.audit(state, "failures").rows] == ["PO-2"]
    assert [row[1] for row in audit.audit(state, "waiting").rows] == ["S-1"]
    assert audit.audit(state, "history", ["PO-2"]).rows == []
    with pytest.raises(ConfigError, match="no such table"):
        audit.audit(state, "SELECT * FROM nowhere")
    with pytest.raises(ConfigError, match="unknown audit query 'failurs' .named queries: runs, failures"):
        audit.audit(state, "failurs")  # a mistyped name, not SQL


def test_control_characters_are_escaped_in_the_table(state, capsys):
    sql = "SELECT external_ref, last_error, chr(27) || '[2J' AS \"col\x1b[1m\" FROM ledger WHERE status = 'failed'"
    assert main(["audit", sql, "--state", str(state), "--width", "200"]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x00" not in out and "\x07" not in out and "\x9b" not in out and "\r" not in out
    assert r"red \x1b[31mALERT\x1b[0m nul \x00 bell \x07 csi \x9b2J tab\there next" in out  # line break -> space
    assert r"col\x1b[1m" in out.splitlines()[0] and r"\x1b[2J" in out
    assert main(["audit", "failures", "--state", str(state), "--width", "200"]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and r"\x1b[31mALERT" in out


def test_control_characters_are_escaped_in_json_and_read_back_exactly(state, capsys):
    assert main(["audit", "SELECT external_ref, last_error FROM ledger WHERE status = 'failed'",
                 "--state", str(state), "--json"]) == 0
    out = capsys.readouterr().out
    assert all(ch not in out for ch in "\x1b\x00\x07\x9b\r\t")
    assert out.count("\n") == 1 and r"\u001b[31m" in out
    assert json.loads(out) == {"external_ref": "PO-2", "last_error": EVIL}


def test_escape_controls():
    assert audit.escape_controls("a\x1b[31mb\x00c\x7f\x85\td") == r"a\x1b[31mb\x00c\x7f\x85\td"
    assert audit.escape_controls("plain é ü — ok") == "plain é ü — ok"


HOLD = """
import sys, time, duckdb
conn = duckdb.connect(sys.argv[1])
print("holding", flush=True)
time.sleep(30)
"""


def test_a_state_file_a_writer_holds_is_waited_for_then_named(state):
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(state)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "holding"
        with pytest.raises(db.StateLocked, match=f"process {holder.pid}"), audit.open_locked(state, wait_seconds=0.3):
            pass
    finally:
        holder.kill()
        holder.wait()
