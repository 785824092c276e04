"""One scheduled run, in its own process: `run_pipelines`, then a `RunResult` sent back to `serve`.

    result = summarize(report, requested=["suppliers"])   # pure: what serve logs and counts of a RunReport

A run lives in a child process (forked from a server that has the engine imported, so it starts in
milliseconds) for three reasons: SIGTERM reaches it in its main thread, where `run_pipelines` turns it
into a clean cancellation (in-flight writes stay journalled as intents, the run is recorded aborted);
a crash (a segfault in a native library, memory) ends that run only; and `serve` itself never opens a
customer's state file. Everything sent back has been redacted here, where the run's secrets are known.
"""

from __future__ import annotations

import logging
import signal
import sys
import time
import traceback
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from engine import exitcodes
from engine.secrets import redact

OUTCOME_OF_EXIT = {exitcodes.OK: "ok", exitcodes.FAILED: "failed_records", exitcodes.QUARANTINED: "quarantined",
                   exitcodes.WAITING: "waiting", exitcodes.ERROR: "error"}
LOGGED_STATUSES = ("failed", "quarantined")  # records logged one line each (waiting ones are counted)
MAX_RECORD_LINES = 200  # per run; the rest are counted in `records_not_listed`
MAX_LATENCIES = 100_000  # B1 request latencies sent back per run


@dataclass
class RunResult:
    """What serve needs of a run: its outcome, counts per pipeline and outcome, the records that failed,
    B1 request latencies. Plain data, redacted: it crosses a process boundary and goes to the logs."""

    outcome: str  # ok | failed_records | quarantined | waiting | error | aborted | busy | crashed
    requested: list[str]
    exit_code: int = exitcodes.OK
    run_id: str | None = None
    seconds: float = 0.0
    message: str = ""  # why it did not finish (error, abort, crash, busy)
    pipelines: list[str] = field(default_factory=list)  # those it ran
    records: dict[str, dict[str, int]] = field(default_factory=dict)  # pipeline -> outcome -> records
    pipeline_seconds: dict[str, float] = field(default_factory=dict)
    writes: int = 0
    failures: list[dict[str, Any]] = field(default_factory=list)  # {pipeline, ref, status, code, message}
    records_not_listed: int = 0
    latencies: dict[str, list[float]] = field(default_factory=dict)  # B1 request seconds by HTTP method

    @property
    def finished(self) -> bool:
        return self.outcome in ("ok", "failed_records", "quarantined", "waiting")


def summarize(report: Any, requested: Iterable[str] = (), *, max_waiting: int | None = None) -> RunResult:
    """A `RunResult` from an `engine.runner.RunReport` (pure)."""
    code = exitcodes.exit_code_for(report, max_waiting=max_waiting)
    outcome = "aborted" if report.aborted else OUTCOME_OF_EXIT.get(code, "error")
    result = RunResult(outcome=outcome, requested=list(requested), exit_code=code, run_id=report.run_id,
                       seconds=float(report.seconds), message=redact(report.aborted or ""),
                       pipelines=[p.name for p in report.pipelines], writes=int(report.writes))
    for p in report.pipelines:
        result.records[p.name] = {k: int(v) for k, v in p.outcomes.items()}
        result.pipeline_seconds[p.name] = float(p.seconds)
    problems = [f for f in report.problems if str(f.status) in LOGGED_STATUSES]
    result.failures = [{"pipeline": f.pipeline, "ref": redact(str(f.ref)), "status": str(f.status),
                        "code": redact(f.code) if f.code else None, "message": redact(f.message or "")}
                       for f in problems[:MAX_RECORD_LINES]]
    result.records_not_listed = max(0, len(problems) - MAX_RECORD_LINES)
    return result


class _Latencies(logging.Handler):
    """Collects the SAP B1 client's per-request timings (its `"%s %s -> %s in %.0f ms"` debug record:
    method, path, status, milliseconds) without formatting them."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.seconds: dict[str, list[float]] = {}
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        args = record.args
        if isinstance(args, tuple) and len(args) == 4 and isinstance(args[3], int | float) and self.count < MAX_LATENCIES:
            self.seconds.setdefault(str(args[0]), []).append(float(args[3]) / 1000)
            self.count += 1


def run(root: str, names: list[str] | None, customer: str = "") -> RunResult:
    """Run the pipelines (in this process) and summarize; never raises for a run that went wrong."""
    from engine.errors import ConnectorError
    from engine.locks import RunLocked
    from engine.project import load_project
    from engine.runner import run_pipelines

    requested = list(names or [])
    started = time.monotonic()
    latencies = _Latencies()
    client_log = logging.getLogger("engine.sapb1")
    client_log.addHandler(latencies)
    client_log.setLevel(logging.DEBUG)
    try:
        report = run_pipelines(load_project(root, names or None), names or None, wait=0)
        result = summarize(report, requested)
    except RunLocked as exc:
        result = RunResult("busy", requested, exitcodes.BUSY, message=redact(str(exc)))
    except KeyboardInterrupt as exc:  # SIGTERM (serve stopping) or SIGINT
        result = RunResult("aborted", requested, exitcodes.INTERRUPTED, message=redact(str(exc) or "terminated"))
    except ConnectorError as exc:
        result = RunResult("error", requested, exitcodes.ERROR, message=redact(str(exc)))
    except BaseException as exc:
        if _signalled:  # the signal surfaced as another error (DuckDB: "Query interrupted")
            return RunResult("aborted", requested, exitcodes.INTERRUPTED, message=f"terminated ({type(exc).__name__}: {exc})",
                             seconds=time.monotonic() - started, latencies=latencies.seconds)
        # a bug: report it with where it happened, this customer only
        where = "".join(traceback.format_exception(exc)[-3:]).strip()
        result = RunResult("crashed", requested, exitcodes.ERROR, message=redact(f"{type(exc).__name__}: {exc}\n{where}"))
    finally:
        client_log.removeHandler(latencies)
    result.latencies = latencies.seconds
    if not result.seconds:
        result.seconds = time.monotonic() - started
    return result


_signalled = False


def _interrupt(signum: int, frame: Any) -> None:
    """SIGTERM and SIGINT: remembered, then raised as KeyboardInterrupt (as `ml-connector run` does)."""
    global _signalled
    _signalled = True
    signal.default_int_handler(signum, frame)


def main(root: str, names: list[str] | None, conn: Any, customer: str = "") -> None:
    """The child process: SIGTERM ends the run as Ctrl-C does; the result goes back over `conn`."""
    sys.argv = ["ml-connector", "serve", customer or root]  # what the run locks name as their holder
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    try:
        result = run(root, names, customer)
    except KeyboardInterrupt:  # a signal between two steps of the summary
        result = RunResult("aborted", list(names or []), exitcodes.INTERRUPTED, message="terminated")
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # the result is being sent: finish that
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        conn.send(result)
    finally:
        conn.close()

