"""`ml-connector serve` refuses what it cannot serve before it starts anything (no port, no process)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]


def serve(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", "import sys; from engine.cli import main; sys.exit(main())", "serve",
                           "--port", "0", *args], cwd=REPO, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(("args", "message"), [
    (("--workspace", "{tmp}/empty"), "has no project"),
    (("--project", "{tmp}/empty"), "is not a project"),
    (("--workspace", "{tmp}/missing"), "is not a directory"),
    (("--project", "{tmp}/broken", "--every", "soon"), "expected a duration"),
])
def test_nothing_to_serve_is_a_usage_error(tmp_path, args, message):
    (tmp_path / "empty").mkdir()
    done = serve(*(a.format(tmp=tmp_path) for a in args))
    assert done.returncode == 2 and message in done.stderr, done.stderr


def test_a_workspace_without_a_valid_customer_is_an_error(tmp_path):
    (tmp_path / "ws" / "acme").mkdir(parents=True)
    (tmp_path / "ws" / "acme" / "ml-connector.yaml").write_text("project: acme\nstate: [oops\n")
    done = serve("--workspace", str(tmp_path / "ws"), "--log-format", "json")
    assert done.returncode == 1, done.stderr
    assert '"event": "customer_invalid"' in done.stderr and "no customer can be served" in done.stderr
