"""The state file admits one writer: a second command waits briefly, then names what holds it."""

import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.state import db

HOLD = """
import sys, time, duckdb
conn = duckdb.connect(sys.argv[1])
conn.execute("CREATE TABLE IF NOT EXISTS t (x INTEGER)")
print("holding", flush=True)
time.sleep(float(sys.argv[2]))
conn.close()
"""


def hold_lock(path: Path, seconds: float) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(path), str(seconds)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "holding"
    return proc


def test_a_locked_state_file_names_the_holding_process(tmp_path: Path):
    path = tmp_path / "state.duckdb"
    holder = hold_lock(path, 30)
    try:
        started = time.monotonic()
        with pytest.raises(db.StateLocked) as caught, db.connect(path, wait_seconds=0.5):
            pass
        assert time.monotonic() - started >= 0.5  # it waited before giving up
        message = str(caught.value)
        assert str(path) in message and f"process {holder.pid}" in message and "try again" in message
    finally:
        holder.kill()
        holder.wait()


def test_a_briefly_locked_state_file_is_waited_for(tmp_path: Path):
    path = tmp_path / "state.duckdb"
    holder = hold_lock(path, 1.0)
    try:
        with db.connect(path, wait_seconds=20) as conn:
            assert conn.execute("SELECT count(*) FROM t").fetchone() == (0,)
    finally:
        holder.wait()
