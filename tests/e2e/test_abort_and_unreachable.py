"""A run that cannot go on ends within seconds, recorded as aborted, with the ledger consistent; an
unreachable system fails well under a minute naming its URL (issue 8). Real sockets, real processes."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from engine.errors import ConnectorError
from engine.project import load_project
from engine.runner import run_pipelines
from engine.state import db
from tests.e2e.project_fixture import start_stack
from tests.e2e.test_unattended import assert_b1_agrees_with_ledger

ROOT = Path(__file__).resolve().parents[2]


def wait_for_writes(stack, count: int, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while stack.writes()["writes"] < count and time.monotonic() < deadline:
        time.sleep(0.005)
    assert stack.writes()["writes"] >= count, "the run never got going"


def last_run(state: Path) -> tuple[str, str | None]:
    with db.connect(state, read_only=True) as conn:
        return conn.execute("SELECT run_id, aborted FROM runs ORDER BY started_at DESC LIMIT 1").fetchone()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_run_whose_session_cannot_be_restored_ends_within_seconds_and_the_next_run_completes(tmp_path):
    with start_stack(tmp_path, seed=200) as stack:
        stack.b1.set_knobs(write_latency_ms=5)
        result: dict = {}
        runner = threading.Thread(target=lambda: result.setdefault("report", stack.run()))
        runner.start()
        wait_for_writes(stack, 20)
        stack.b1.set_knobs(session_kill_rate=1.0)  # every request from now on: 401/301, re-login, 401 again
        killed = time.monotonic()
        runner.join(timeout=60)
        assert not runner.is_alive() and time.monotonic() - killed < 10, "the aborting run ended within 10 s"
        assert result["report"].aborted and "session" in result["report"].aborted
        assert last_run(stack.state)[1], "the run is recorded as aborted"
        stack.b1.set_knobs(session_kill_rate=0.0, write_latency_ms=0)
        assert stack.run().aborted is None
        assert_b1_agrees_with_ledger(stack, stack.state)


def test_sigterm_ends_a_run_within_seconds_recorded_as_aborted(tmp_path):
    with start_stack(tmp_path, seed=200) as stack:
        stack.b1.set_knobs(write_latency_ms=5)
        cli = [sys.executable, "-c", "import sys; from engine.cli import main; sys.exit(main())"]
        proc = subprocess.Popen([*cli, "run", "--project", str(stack.root)], cwd=ROOT,
                                env={**os.environ, **stack.environ}, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        wait_for_writes(stack, 20)
        proc.send_signal(signal.SIGTERM)
        sent = time.monotonic()
        proc.communicate(timeout=30)
        assert time.monotonic() - sent < 10
        assert proc.returncode == 130
        assert last_run(stack.state)[1], "the run is recorded as aborted"
        stack.b1.set_knobs(write_latency_ms=0)
        assert stack.run().aborted is None
        assert_b1_agrees_with_ledger(stack, stack.state)


@pytest.mark.parametrize("system", [
    pytest.param("jaggaer", marks=pytest.mark.slow),  # make test-long: ~24 s (the 20 s reachability budget)
    "sapb1",
])
def test_an_unreachable_system_fails_in_well_under_a_minute_naming_its_url(tmp_path, system):
    with start_stack(tmp_path, seed=4) as stack:
        port = closed_port()
        url = f"http://127.0.0.1:{port}"
        environ = dict(stack.environ)
        if system == "jaggaer":
            environ["JAGGAER_BASE_URL"] = url
        else:
            environ["SAPB1_SERVICE_ROOT"] = url + "/b1s/v2"
        started = time.monotonic()
        with pytest.raises(ConnectorError) as failure:
            run_pipelines(load_project(stack.root, environ=environ))
        assert time.monotonic() - started < 60
        assert url in str(failure.value) and "ConnectError" in str(failure.value)


@pytest.mark.slow  # spends the JAGGAER reachability budget (~30 s); tests/e2e/test_check.py covers the findings
def test_check_names_the_url_of_an_unreachable_system(tmp_path):
    import asyncio
    from dataclasses import replace

    from engine.checks import check_connections
    from engine.project import load_project

    with start_stack(tmp_path, seed=4) as stack:
        url = f"http://127.0.0.1:{closed_port()}"
        environ = {**stack.environ, "JAGGAER_BASE_URL": url, "SAPB1_SERVICE_ROOT": url + "/b1s/v2"}
        started = time.monotonic()
        checks = asyncio.run(check_connections(replace(load_project(stack.root, with_pipelines=False), environ=environ)))
        assert time.monotonic() - started < 60
        assert [c.ok for c in checks] == [False, False]
        assert all(url in c.detail and "ConnectError" in c.detail for c in checks), [c.detail for c in checks]
        assert not any("_Transient" in c.detail for c in checks)
