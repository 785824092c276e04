"""Exit codes of `ml-connector`, and the one a run or replay ends with (`exit_code_for`).

    0  all settled: every record synced, unchanged, ignored on purpose or not applied (closed document)
    1  error or aborted: invalid configuration, a system unreachable, a failed check, an aborted run
    2  usage: the command line is wrong
    3  records failed: SAP B1 refused a record (now or earlier and not re-sent); replay after the fix
    4  records quarantined: bad input or a mapping problem set a record aside
    5  records waiting past the limit: more than `run --max-waiting N` wait for a dependency
    6  busy: another run holds the project or its SAP B1 company (`run --wait SECONDS` waits for it)

When several apply the most serious wins: 1 > 3 > 4 > 5 > 0. Records waiting are not an error
unless a limit is given (they sync once their supplier, order or approval is there).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from engine.runner import RunReport

OK = 0
ERROR = 1
USAGE = 2
FAILED = 3
QUARANTINED = 4
WAITING = 5
BUSY = 6
INTERRUPTED = 130  # Ctrl-C

MEANING = {
    OK: "all settled (synced, unchanged, ignored, not applied to a closed document)",
    ERROR: "error or aborted run (configuration, a system unreachable, a failed check)",
    USAGE: "usage error (the command line)",
    FAILED: "records failed: SAP B1 refused them (ml-connector audit failures; replay after the fix)",
    QUARANTINED: "records quarantined: bad input or mapping (ml-connector audit quarantine)",
    WAITING: "more records waiting than run --max-waiting allows (ml-connector audit waiting)",
    BUSY: "busy: another run holds the project or its SAP B1 company (nothing was done; --wait to wait)",
}


def describe() -> str:
    """The exit codes as help text (an argparse epilog)."""
    lines = [f"  {code}  {text}" for code, text in MEANING.items()]
    return "exit codes:\n" + "\n".join(lines) + "\n  several apply: the first of 1, 3, 4, 5 wins"


def exit_code_for(report: RunReport, *, max_waiting: int | None = None) -> int:
    """The exit code of a `engine.runner.RunReport`: 1 aborted, 3 a record failed (this run or failed
    earlier and not re-sent), 4 a record quarantined (extraction or mapping), 5 more records waiting than
    `max_waiting` (None: no limit), else 0. Not applied and ignored records are settled."""
    if report.aborted:
        return ERROR
    statuses = [str(p.status) for p in report.problems]
    if "failed" in statuses or any(p.still_failed for p in report.pipelines):
        return FAILED
    if "quarantined" in statuses:
        return QUARANTINED
    if max_waiting is not None and statuses.count("waiting") > max_waiting:
        return WAITING
    return OK
