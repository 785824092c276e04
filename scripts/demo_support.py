"""The machinery of `make demo` (scripts/demo.py): its directory, the CLI as a user types it, `serve` and
its log, the secrets the simulators hand out, and the edits a person makes in either system.

Everything the demo starts is a child of this process or a thread in it, and `DemoDir` keeps every file
it writes under one directory: nothing goes to the user's home (credential store, key file and lock
directory come from `ML_CONNECTOR_*` variables set for the child processes only).
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
PROJECT_PARTS = ("pipelines", "mappings", "schemas")
CUSTOMER = "demo"  # the credential store's customer, and the project directory's name (serve's customer id)
# Variables the demo's child processes must not inherit: the user's own credentials and store.
INHERITED_OUT = ("SAPB1_", "JAGGAER_", "ML_CONNECTOR_")

PROJECT_FILE = f"""\
# yaml-language-server: $schema=schemas/project.schema.json
# The demo's project: every connection value comes from the encrypted credential store (customer `{CUSTOMER}`:
# `ml-connector credentials show {CUSTOMER}`), nothing from the environment.
project: {CUSTOMER}
state: var/state.duckdb
extract:
  commit_every: 10000
connections:
  jaggaer:
    kind: jaggaer
    credentials: {{customer: {CUSTOMER}}}
    max_concurrency: 8
  sapb1:
    kind: sapb1
    credentials: {{customer: {CUSTOMER}}}
    max_concurrency: 8
    verify_tls: true
"""


# -- the demo's directory ----------------------------------------------------------------------------------


@dataclass
class DemoDir:
    """`root/demo` the project copy, `root/credentials` the store and its key, `root/locks` the run locks,
    `root/logs` serve's log. Removed at the end unless kept (`--keep DIR`)."""

    root: Path
    keep: bool

    @classmethod
    def create(cls, keep: Path | None) -> DemoDir:
        import tempfile

        if keep is None:
            return cls(Path(tempfile.mkdtemp(prefix="ml-connector-demo-")), keep=False)
        keep = keep.expanduser().resolve()
        if keep.exists() and any(keep.iterdir()):
            raise SystemExit(f"--keep {keep}: the directory is not empty (the demo writes a fresh project there)")
        keep.mkdir(mode=0o700, parents=True, exist_ok=True)
        return cls(keep, keep=True)

    @property
    def project(self) -> Path:
        return self.root / CUSTOMER

    @property
    def store(self) -> Path:
        return self.root / "credentials" / "credentials.json.enc"

    @property
    def key_file(self) -> Path:
        return self.root / "credentials" / "key"

    @property
    def locks(self) -> Path:
        return self.root / "locks"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def state(self) -> Path:
        return self.project / "var" / "state.duckdb"

    def environ(self) -> dict[str, str]:
        """The environment of every child process: the demo's store, key file and locks; none of the user's
        credentials or store variables."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(INHERITED_OUT)}
        env.update(ML_CONNECTOR_CREDENTIALS=str(self.store), ML_CONNECTOR_KEY_FILE=str(self.key_file),
                   ML_CONNECTOR_LOCK_DIR=str(self.locks), PYTHONUNBUFFERED="1", COLUMNS="120")
        return env

    def copy_project(self, every: str, leave_out: tuple[str, ...] = ()) -> list[str]:
        """The repo's pipelines, mappings and schemas; a project file naming the stored customer; every
        pipeline scheduled `every: <every>`. Returns the pipelines copied."""
        self.project.mkdir(parents=True)
        for folder in PROJECT_PARTS:
            shutil.copytree(ROOT / folder, self.project / folder)
        (self.project / "ml-connector.yaml").write_text(PROJECT_FILE)
        names = []
        for path in sorted((self.project / "pipelines").glob("*.yaml")):
            if path.stem in leave_out:
                path.unlink()
                continue
            text = re.sub(r"^schedule:.*\n(?:[ \t]+.*\n?)*", "", path.read_text(), flags=re.M)
            path.write_text(text.rstrip("\n") + f"\nschedule:                              # the demo's cadence\n"
                                                 f"  every: {every}\n")
            names.append(path.stem)
        (self.locks).mkdir(mode=0o700)
        self.logs.mkdir()
        return names

    def remove(self) -> None:
        if not self.keep:
            shutil.rmtree(self.root, ignore_errors=True)


# -- the CLI, as a user types it ---------------------------------------------------------------------------


def cli_command() -> list[str]:
    """`ml-connector` of this interpreter's environment (the venv `make` installs), else the module."""
    script = Path(sys.executable).with_name("ml-connector")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "import sys; from engine.cli import main; sys.exit(main())"]


@dataclass
class Cli:
    """Runs `ml-connector ARGS` in the project directory with the demo's environment."""

    cwd: Path
    env: dict[str, str]

    def run(self, *args: str, stdin: str | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*cli_command(), *args], cwd=self.cwd, env=self.env, input=stdin, text=True,
                              capture_output=True, timeout=timeout, stdin=None if stdin is not None else subprocess.DEVNULL)

    def json_lines(self, *args: str) -> list[dict[str, Any]]:
        """Rows of a `... --json` command that prints JSON lines (audit)."""
        done = self.run(*args, "--json")
        if done.returncode != 0:
            raise RuntimeError(f"ml-connector {' '.join(args)} exited {done.returncode}: {done.stderr.strip()}")
        return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]


# -- serve and its log -------------------------------------------------------------------------------------


class ServeLog:
    """serve's JSON log file, read as it grows: every event parsed, kept in order."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.events: list[dict[str, Any]] = []
        self._offset = 0
        self._partial = b""

    def poll(self) -> list[dict[str, Any]]:
        """Events written since the last poll."""
        try:
            with self.path.open("rb") as handle:
                handle.seek(self._offset)
                chunk = handle.read()
        except FileNotFoundError:
            return []
        self._offset += len(chunk)
        lines = (self._partial + chunk).split(b"\n")
        self._partial = lines.pop()
        fresh = []
        for line in lines:
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except ValueError:
                item = {"event": "raw", "line": line.decode("utf-8", "replace")}
            fresh.append(item)
        self.events += fresh
        return fresh

    def mark(self) -> int:
        self.poll()
        return len(self.events)


@dataclass
class Served:
    """A running `ml-connector serve` (its own session: a Ctrl-C at the terminal is the demo's to handle)."""

    proc: subprocess.Popen[bytes]
    log: ServeLog
    port: int = 0
    started: float = field(default_factory=time.monotonic)

    @classmethod
    def start(cls, cli: Cli, args: list[str], log_dir: Path) -> Served:
        err = (log_dir / "serve.jsonl").open("wb")
        out = (log_dir / "serve.out").open("wb")
        with err, out:
            proc = subprocess.Popen([*cli_command(), "serve", *args], cwd=cli.cwd, env=cli.env, stdin=subprocess.DEVNULL,
                                    stdout=out, stderr=err, start_new_session=True)
        return cls(proc, ServeLog(log_dir / "serve.jsonl"))

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout: float = 30) -> tuple[int | None, float]:
        """SIGTERM, wait; then SIGKILL of its process group (its runs) if it did not stop. (exit code, seconds)."""
        started = time.monotonic()
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout)
        self.kill_group()
        return self.proc.returncode, time.monotonic() - started

    def kill_group(self) -> None:
        """What may be left of serve's session (its fork server, a run): SIGKILL, by its process group id."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)  # the group outlives its leader while a child holds it


# -- the secrets the simulators hand out -------------------------------------------------------------------


@dataclass
class SecretCapture:
    """Every access token the JAGGAER simulator issues and every B1SESSION the SAP B1 simulator opens,
    recorded in this process (the simulators run in it), so the demo can show that none was written down."""

    tokens: list[str] = field(default_factory=list)
    sessions: list[str] = field(default_factory=list)

    def attach(self, b1: Any, jag: Any) -> None:
        issuer, sessions = jag.app.tokens, b1.app.sessions
        issue, create = issuer.issue, sessions.create

        def recorded_issue(*args: Any, **kwargs: Any) -> str:
            token = issue(*args, **kwargs)
            self.tokens.append(token)
            return token

        def recorded_create(*args: Any, **kwargs: Any) -> Any:
            session = create(*args, **kwargs)
            self.sessions.append(session.id)
            return session

        issuer.issue = recorded_issue
        sessions.create = recorded_create


def files_holding(root: Path, values: list[str]) -> dict[str, int]:
    """Files under `root` holding any of `values`: {relative path: hits}. A file is searched as stored and,
    where it stores text compressed, as its text: gzip decompressed, a DuckDB file's rows (read-only)."""
    needles = [v.encode() for v in values if v]
    found: dict[str, int] = {}
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.is_symlink():
            data = path.read_bytes()
            if data[:2] == b"\x1f\x8b":
                data += gzip.decompress(data)
            if path.suffix == ".duckdb":
                data += _duckdb_rows(path)
            hits = sum(data.count(n) for n in needles)
            if hits:
                found[str(path.relative_to(root))] = hits
    return found


def _duckdb_rows(path: Path) -> bytes:
    """Every row of every table, as text (DuckDB stores strings compressed)."""
    import duckdb

    with duckdb.connect(str(path), read_only=True) as conn:
        tables = conn.execute("SELECT table_schema, table_name FROM information_schema.tables "
                              "WHERE table_type = 'BASE TABLE'").fetchall()
        return "\n".join(json.dumps(conn.execute(f'SELECT * FROM "{schema}"."{table}"').fetchall(), default=str)
                         for schema, table in tables).encode()


# -- what people do in either system -----------------------------------------------------------------------


@contextlib.contextmanager
def service_layer(service_root: str, company: str, user: str, password: str) -> Iterator[httpx.Client]:
    """A person's own SAP B1 Service Layer session (Login ... Logout)."""
    with httpx.Client(base_url=service_root.rstrip("/") + "/", timeout=30) as client:
        client.post("Login", json={"CompanyDB": company, "UserName": user, "Password": password}).raise_for_status()
        try:
            yield client
        finally:
            with contextlib.suppress(httpx.HTTPError):
                client.post("Logout")


def jaggaer_admin(base_url: str, method: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
    """The JAGGAER simulator's admin API (`/_sim/...`, see simulators/jaggaer/admin.py)."""
    response = httpx.request(method, f"{base_url}/_sim/{path.lstrip('/')}", json=body, timeout=30)
    response.raise_for_status()
    return response.json()


def wait_until(condition: Callable[[], Any], timeout: float, every: float = 0.25,
               on_tick: Callable[[], None] | None = None) -> Any:
    """`condition()`'s first truthy value, polling; TimeoutError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        if on_tick is not None:
            on_tick()
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"not within {timeout:g}s")
        time.sleep(every)
