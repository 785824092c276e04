"""A state file DuckDB cannot read is reported as StateCorrupt naming the file and what to do."""

from __future__ import annotations

import os
from pathlib import Path

import duckdb
import pytest

from engine.cli import main
from engine.state import db

REPO = Path(__file__).resolve().parents[3]


def real_database(path: Path, rows: int = 200_000) -> Path:
    conn = duckdb.connect(str(path))
    conn.execute(f"CREATE TABLE t AS SELECT range AS x, 'row ' || range AS s FROM range({rows})")
    conn.close()
    return path


def assert_advice(message: str, path: Path) -> None:
    assert message.startswith(f"state file {path} is not a readable DuckDB database (")
    assert "restore it from backup" in message and "move it" in message
    assert "resolves every record by its external reference in SAP B1 (nothing is sent twice)" in message
    assert "Traceback" not in message


@pytest.mark.parametrize("read_only", [False, True])
def test_random_bytes(tmp_path: Path, read_only: bool) -> None:
    path = tmp_path / "state.duckdb"
    path.write_bytes(os.urandom(20_000))
    with pytest.raises(db.StateCorrupt) as caught, db.connect(path, read_only=read_only):
        pass
    assert_advice(str(caught.value), path)
    assert "not a valid DuckDB database file" in str(caught.value)
    assert isinstance(caught.value, db.ConnectorError)


def test_truncated_database(tmp_path: Path) -> None:
    path = real_database(tmp_path / "state.duckdb")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(db.StateCorrupt) as caught, db.connect(path):
        pass
    assert_advice(str(caught.value), path)
    assert "\n" not in str(caught.value)  # DuckDB's first line only


def test_a_damaged_block_met_while_reading_is_reported_too(tmp_path: Path) -> None:
    path = real_database(tmp_path / "state.duckdb")
    data = bytearray(path.read_bytes())
    for i in range(3 * 4096, 3 * 4096 + 4096):  # past the file and database headers: a data block
        data[i] ^= 0xA5
    path.write_bytes(bytes(data))
    with pytest.raises(db.StateCorrupt) as caught, db.connect(path) as conn:
        conn.execute("SELECT count(*), sum(x), max(s) FROM t").fetchall()
    assert_advice(str(caught.value), path)


def test_other_errors_in_the_body_are_left_alone(tmp_path: Path) -> None:
    with pytest.raises(duckdb.CatalogException), db.connect(tmp_path / "state.duckdb") as conn:
        conn.execute("SELECT * FROM no_such_table")


def test_config_is_passed_to_duckdb(tmp_path: Path) -> None:
    with db.connect(tmp_path / "state.duckdb", config={"threads": 1}) as conn:
        assert conn.execute("SELECT current_setting('threads')").fetchone()[0] == 1


def test_cli_reports_a_corrupt_state_file_without_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "state.duckdb"
    path.write_bytes(b"this is not a database\n" * 100)
    code = main(["plan", "--project", str(REPO), "--state", str(path)])
    err = capsys.readouterr().err
    assert code != 0
    assert err.startswith("error: state file ")
    assert_advice(err.removeprefix("error: ").strip(), path)
