"""Run exclusion: one writer per project and one per SAP B1 company.

    with run_locks(project.state_path, company=company_key(root, "SBODEMOUS"), wait=0):
        ...  # extract, plan, load

Two runs of one project would both send the same creates; two projects writing one company would
each create the documents the other already created (each trusts its own ledger). So a run holds:

- the *project* lock, a file beside the state file (`<state>.lock`);
- the *company* lock, a file per (Service Layer host:port, CompanyDB) in a directory shared by every
  project on the machine (`ML_CONNECTOR_LOCK_DIR`, default `~/.local/state/ml-connector/locks`).

Locks are `flock`s: the kernel releases them when the holder dies (SIGKILL included), so a crashed
holder's lock is simply taken by the next run — nothing to clean up, no stale-PID guessing. The file
holds who has it (pid, host, command, since) for the message a second run gets. Projects on
*different* machines writing one company are not excluded by this; the census (`engine.load.bridge`)
then makes every create look its reference up first, since B1 holds references this ledger never sent.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import socket
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from engine.errors import ConnectorError

LOCK_DIR_ENV = "ML_CONNECTOR_LOCK_DIR"


class RunLocked(ConnectorError):
    """Another run holds the project or the company: this one did not start."""


def lock_dir() -> Path:
    """Where company locks live (shared by every project of this machine's user)."""
    configured = os.environ.get(LOCK_DIR_ENV)
    return Path(configured) if configured else Path.home() / ".local" / "state" / "ml-connector" / "locks"


def project_lock_path(state_path: Path | str) -> Path:
    state = Path(state_path)
    return state.with_name(state.name + ".lock")


def company_key(service_root: str, company_db: str) -> str:
    """One name per SAP B1 company: the Service Layer's host and port (not its version) and the CompanyDB."""
    from engine.sapb1.url import ServiceRoot

    root = ServiceRoot.parse(str(service_root))
    return f"{root.host.lower()}:{root.port or 0}/{str(company_db).upper()}"


def company_lock_path(key: str) -> Path:
    digest = hashlib.sha256(key.encode()).hexdigest()[:20]
    return lock_dir() / f"sapb1-{digest}.lock"


@contextlib.contextmanager
def hold(path: Path, what: str, *, wait: float = 0.0, poll: float = 0.1) -> Iterator[None]:
    """Hold an exclusive lock on `path` (created if missing); wait up to `wait` seconds for it, then
    raise `RunLocked` naming the holder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline = time.monotonic() + max(0.0, wait)
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise RunLocked(f"{what} is busy: {describe_holder(fd)} (lock {path}); "
                                    f"this run did not start — try again when it has finished") from None
                time.sleep(poll)
        _write_holder(fd, what)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the flock


def _write_holder(fd: int, what: str) -> None:
    info = {"pid": os.getpid(), "host": socket.gethostname(), "what": what,
            "command": " ".join(os.path.basename(a) if i == 0 else a for i, a in enumerate(sys.argv[:4])),
            "since": datetime.now(UTC).isoformat(timespec="seconds")}
    data = json.dumps(info).encode()
    os.ftruncate(fd, 0)
    os.pwrite(fd, data, 0)


def describe_holder(fd: int) -> str:
    """Who holds the lock, from what the holder wrote into the file."""
    try:
        info = json.loads(os.pread(fd, 4096, 0) or b"{}")
    except (OSError, ValueError):
        info = {}
    if not info.get("pid"):
        return "another ml-connector process holds it"
    return (f"held by process {info['pid']} on {info.get('host', '?')} since {info.get('since', '?')}"
            f" ({info.get('command') or 'ml-connector'})")


@contextlib.contextmanager
def run_locks(state_path: Path | str, *, company: str | None = None, wait: float = 0.0) -> Iterator[None]:
    """The project lock, then (when the run writes to SAP B1) the company lock — always in this order,
    so two runs never wait on each other crosswise."""
    with hold(project_lock_path(state_path), f"project state {state_path}", wait=wait):
        if company is None:
            yield
            return
        with hold(company_lock_path(company), f"SAP B1 company {company}", wait=wait):
            yield
