"""`make demo` end to end (issue: the demo keeps its credentials encrypted and runs `serve`).

The demo runs as a real process (`python -m scripts.demo --quick --keep DIR`), its stdout and stderr
captured to files, serve's JSON log in DIR/logs, with HOME pointing at an empty directory. It must
exit 0 and show the changes landing, `/healthz` and `/metrics`, reconcile's finding and serve's clean
stop. Then every file it left (logs, the DuckDB state file read table by table, dlt's working files
decompressed, the credential store), its captured output, the fake HOME, and the command line and
environment of every process it started are searched for each secret of the run: the SAP B1 password,
the JAGGAER client secret, every access token the JAGGAER simulator issued and every B1SESSION the SAP
B1 simulator opened (the demo records them as the simulators hand them out and writes them, for this
test only, to a file outside DIR: `--secrets-out`). Zero hits. Nothing it started is left running.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import gzip
import json
import os
import re
import subprocess
import sys
import threading
import time
import zlib
from pathlib import Path

import pytest

from scripts.demo import LEAVE_OUT, TWO_WAY

ROOT = Path(__file__).resolve().parents[2]
DEMO_TIMEOUT = 100  # seconds; the quick demo takes about 30 on two cores

pytestmark = pytest.mark.timeout(DEMO_TIMEOUT + 20)


# -- the processes the demo starts -------------------------------------------------------------------------


class ProcessWatch(threading.Thread):
    """Samples /proc every 0.1 s: the command line and environment of every descendant of `root`."""

    def __init__(self, root: int) -> None:
        super().__init__(daemon=True)
        self.root = root
        self.seen: dict[int, tuple[bytes, bytes]] = {}  # pid -> (cmdline, environ) as first seen
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.is_set():
            self.sample()
            self.halt.wait(0.1)

    def sample(self) -> None:
        children: dict[int, list[int]] = {}
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                stat = Path(f"/proc/{entry.name}/stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry.name))
        todo, tree = [self.root], []
        while todo:
            pid = todo.pop()
            tree.append(pid)
            todo += children.get(pid, [])
        for pid in tree[1:]:
            if pid in self.seen:
                continue
            with contextlib.suppress(OSError):
                self.seen[pid] = (Path(f"/proc/{pid}/cmdline").read_bytes(), Path(f"/proc/{pid}/environ").read_bytes())

    def still_running(self) -> list[str]:
        """Processes seen that still run the same command (not a reused pid)."""
        left = []
        for pid, (cmdline, _) in self.seen.items():
            try:
                now = Path(f"/proc/{pid}/cmdline").read_bytes()
                state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
            except OSError:
                continue
            if now == cmdline and state != "Z":
                shown = cmdline.replace(b"\0", b" ").decode(errors="replace")[:160]
                left.append(f"{pid}: {shown}")
        return left


# -- what a file holds, in every form a secret could hide in ------------------------------------------------


ZLIB_BASE64 = re.compile(rb"eNp[A-Za-z0-9+/]{8,}={0,2}")  # dlt's compressed pipeline state


def views(path: Path) -> list[tuple[str, bytes]]:
    """(what, bytes) of a file: as stored, decompressed (gzip), decoded (parquet rows, DuckDB tables), and
    any base64 zlib blob inside those, inflated."""
    raw = path.read_bytes()
    out = [("bytes", raw)]
    if raw[:2] == b"\x1f\x8b":
        out.append(("gunzip", gzip.decompress(raw)))
    if raw[:4] == b"PAR1":
        import pyarrow.parquet as pq

        out.append(("parquet rows", json.dumps(pq.read_table(path).to_pylist(), default=str).encode()))
    if path.suffix == ".duckdb":
        out.append(("duckdb tables", duckdb_text(path)))
    for what, data in list(out):
        for blob in ZLIB_BASE64.findall(data):
            with contextlib.suppress(binascii.Error, zlib.error, ValueError):
                out.append((f"{what}: zlib blob", zlib.decompress(base64.b64decode(blob + b"=" * (-len(blob) % 4)))))
    return out


def duckdb_text(path: Path) -> bytes:
    """Every row of every table of a DuckDB file, as text (the file itself stores strings compressed)."""
    import duckdb

    parts = []
    with duckdb.connect(str(path), read_only=True) as conn:
        tables = conn.execute("SELECT table_catalog, table_schema, table_name FROM information_schema.tables "
                              "WHERE table_type = 'BASE TABLE'").fetchall()
        assert tables, f"{path} has no tables"
        for catalog, schema, table in tables:
            rows = conn.execute(f'SELECT * FROM "{catalog}"."{schema}"."{table}"').fetchall()
            parts.append(f"{schema}.{table}: {json.dumps(rows, default=str)}")
    return "\n".join(parts).encode()


def hits(files: list[Path], secrets: dict[str, list[str]]) -> list[str]:
    """'file (view): kind' for every secret found."""
    found = []
    for path in files:
        for what, data in views(path):
            for kind, values in secrets.items():
                if any(v.encode() in data for v in values):
                    found.append(f"{path} ({what}): {kind}")
    return found


# -- the test --------------------------------------------------------------------------------------------


def run_demo(tmp_path: Path) -> tuple[subprocess.Popen[bytes], Path, Path, Path, ProcessWatch]:
    demo_dir, home = tmp_path / "demo", tmp_path / "home"
    home.mkdir()
    out, err, secrets_file = tmp_path / "demo.stdout", tmp_path / "demo.stderr", tmp_path / "secrets.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SAPB1_", "JAGGAER_", "ML_CONNECTOR_"))}
    env.update(HOME=str(home), COLUMNS="120", PYTHONUNBUFFERED="1")
    command = [sys.executable, "-m", "scripts.demo", "--quick", "--keep", str(demo_dir), "--secrets-out", str(secrets_file)]
    with out.open("wb") as stdout, err.open("wb") as stderr:
        proc = subprocess.Popen(command, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr)
        watch = ProcessWatch(proc.pid)
        watch.start()
        try:
            proc.wait(DEMO_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.terminate()  # the demo cleans up on SIGTERM
            proc.wait(30)
            pytest.fail(f"the demo took more than {DEMO_TIMEOUT}s:\n{out.read_text()[-4000:]}")
        finally:
            watch.halt.set()
            watch.join(5)
    return proc, demo_dir, home, secrets_file, watch


def test_the_demo_syncs_both_ways_under_serve_and_writes_no_secret_down(tmp_path):
    started = time.monotonic()
    proc, demo_dir, home, secrets_file, watch = run_demo(tmp_path)
    stdout = (tmp_path / "demo.stdout").read_text()
    stderr = (tmp_path / "demo.stderr").read_text()
    assert proc.returncode == 0, f"demo exited {proc.returncode}\n{stdout[-6000:]}\n{stderr[-3000:]}"
    assert time.monotonic() - started < 90

    # what it shows: the credentials stored, check, the changes landing, health and metrics, drift, the stop
    assert "stored the sapb1 profile of demo" in stdout and "stored the jaggaer profile of demo" in stdout
    assert re.search(r"^\s+password\s+set$", stdout, re.M), "show prints the secret as 'set'"
    assert re.search(r"^\s+ok\s+sapb1 \(sapb1\): logged in", stdout, re.M), stdout
    assert re.search(r"landed: SAP B1 PurchaseOrders\(\d+\) line \d+ Quantity [\d.]+ -> [\d.]+", stdout), stdout
    if TWO_WAY not in LEAVE_OUT:
        assert re.search(r"landed: JAGGAER company profile \d+ bizPhone -> ", stdout), stdout
    assert re.search(r"update synced\s+HTTP 204", stdout), "the audit history of the changed order"
    assert "HTTP 200  status: ok" in stdout, "/healthz"
    assert re.search(r'^\s+ml_connector_runs_total\{customer="demo",outcome="ok"\} [1-9]', stdout, re.M), stdout
    assert re.search(r'^\s+ml_connector_records_total\{customer="demo",outcome="updated",pipeline="purchase_orders"\} '
                     r"[1-9]", stdout, re.M), stdout
    assert "changed_in_b1 (1)" in stdout, "reconcile finds the quantity edited by hand in SAP B1"
    assert re.search(r"serve exited 0 after", stdout), stdout
    assert re.search(r"^\s+0 hits$", stdout, re.M), "the demo's own search"

    # serve's JSON log: cycles that wrote, a clean stop
    log = [json.loads(line) for line in (demo_dir / "logs" / "serve.jsonl").read_text().splitlines() if line.strip()]
    stopping = next(i for i, e in enumerate(log) if e["event"] == "stopping")
    runs = [e for e in log[:stopping] if e["event"] == "run"]
    assert len(runs) >= 4 and [e for e in runs if e["outcome"] != "ok"] == []
    assert all(e["outcome"] in ("ok", "aborted") for e in log[stopping:] if e["event"] == "run"), \
        "a run SIGTERM cut short is recorded aborted"
    assert sum(1 for e in runs if e["writes"]) >= (2 if TWO_WAY in LEAVE_OUT else 3), \
        "the first sync, the JAGGAER change, the SAP B1 change"
    assert log[-1]["event"] == "stopped"

    # the credential store: encrypted, nothing of the profiles in plain text; nothing in the (fake) home
    store_path = demo_dir / "credentials" / "credentials.json.enc"
    store = json.loads(store_path.read_bytes())
    assert store["cipher"] == "AES-256-GCM" and sorted(store["customers"]["demo"]) == ["jaggaer", "sapb1"]
    for plain in (b"demo-sync", b"demo-erp-sync", b"127.0.0.1", b"SBODEMOUS", b"b1s/v2"):
        assert plain not in store_path.read_bytes(), f"{plain!r} in the credential store"
    assert (demo_dir / "credentials" / "key").stat().st_mode & 0o077 == 0
    project = (demo_dir / "demo" / "ml-connector.yaml").read_text()
    assert project.count("credentials: {customer: demo}") == 2 and "env:" not in project
    assert not (home / ".config" / "ml-connector").exists() and not (home / ".local" / "state" / "ml-connector").exists()

    # every secret of the run, searched for everywhere
    captured = json.loads(secrets_file.read_text())
    secrets = {"SAP B1 password": [captured["sapb1_password"]],
               "JAGGAER client secret": [captured["jaggaer_client_secret"]],
               "JAGGAER access token": captured["tokens"], "B1SESSION": captured["sessions"]}
    assert len(captured["tokens"]) >= 3 and len(captured["sessions"]) >= 3, "check, serve's runs, reconcile"
    assert all(len(v) >= 16 for values in secrets.values() for v in values)
    assert hits([secrets_file], secrets), "the search finds what it looks for"
    files = sorted(p for p in [*demo_dir.rglob("*"), *home.rglob("*")] if p.is_file() and not p.is_symlink())
    assert store_path in files and (demo_dir / "demo" / "var" / "state.duckdb") in files
    assert any(p.suffix == ".parquet" for p in files), "dlt's working files are searched too"
    assert hits([*files, tmp_path / "demo.stdout", tmp_path / "demo.stderr"], secrets) == []

    # ... in the command line and environment of every process the demo started (secrets go on stdin)
    assert any(b"serve" in cmdline for cmdline, _ in watch.seen.values()), "the watch saw serve"
    leaks = [f"{pid}: {kind}" for pid, (cmdline, environ) in watch.seen.items() for kind, values in secrets.items()
             if any(v.encode() in cmdline or v.encode() in environ for v in values)]
    assert leaks == []

    # and nothing it started is left running
    deadline = time.monotonic() + 5
    while watch.still_running() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert watch.still_running() == []
