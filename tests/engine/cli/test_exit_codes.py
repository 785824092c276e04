"""`engine.exitcodes.exit_code_for` on hand-built run reports: each case, and which wins when several apply."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from engine import exitcodes
from engine.cli import build_parser, main
from engine.exitcodes import exit_code_for
from engine.runner import Failure, PipelineReport, RunReport


def failure(status: str, ref: str = "PO-1", pipeline: str = "purchase_orders") -> Failure:
    return Failure(pipeline, ref, status, None, f"{status} record")


def report(*statuses: str, aborted: str | None = None, still_failed: int = 0, ignored: int = 0,
           extract_quarantined: int = 0) -> RunReport:
    """A run whose one pipeline ended with these problem statuses."""
    pipeline = PipelineReport("purchase_orders", "PurchaseOrders",
                              problems=[failure(s, f"PO-{i}") for i, s in enumerate(statuses)],
                              still_failed=[failure("failed", f"OLD-{i}") for i in range(still_failed)],
                              ignored=[failure("ignored", f"IGN-{i}") for i in range(ignored)])
    return RunReport("run-1", datetime.now(UTC), pipelines=[pipeline], aborted=aborted,
                     extract_problems=[failure("quarantined", f"X-{i}", "invoices") for i in range(extract_quarantined)])


def test_the_codes_are_the_documented_numbers():
    assert (exitcodes.OK, exitcodes.ERROR, exitcodes.USAGE, exitcodes.FAILED, exitcodes.QUARANTINED,
            exitcodes.WAITING) == (0, 1, 2, 3, 4, 5)


@pytest.mark.parametrize(("case", "expected"), [
    (report(), 0),
    (report("not_applied", "not_applied"), 0),  # B1 keeps a closed document: settled
    (report(ignored=3), 0),  # left out by the mapping on purpose: settled
    (report("waiting", "waiting"), 0),  # no limit given: waiting alone is not an error
    (report(aborted="RunAborted: SAP B1 unreachable"), 1),
    (report("failed"), 3),
    (report(still_failed=1), 3),  # failed earlier and not re-sent: still failed
    (report("quarantined"), 4),
    (report(extract_quarantined=1), 4),  # set aside by the extraction (source schema)
])
def test_each_case(case, expected):
    assert exit_code_for(case) == expected


def test_waiting_past_the_limit():
    two_waiting = report("waiting", "waiting", "not_applied")
    assert exit_code_for(two_waiting, max_waiting=2) == 0
    assert exit_code_for(two_waiting, max_waiting=1) == 5
    assert exit_code_for(two_waiting, max_waiting=0) == 5
    assert exit_code_for(report(), max_waiting=0) == 0


@pytest.mark.parametrize(("case", "expected"), [
    (report("failed", "quarantined", "waiting", aborted="RunAborted: stopped"), 1),  # 1 > 3 > 4 > 5
    (report("waiting", "quarantined", "failed"), 3),
    (report("quarantined", still_failed=1), 3),
    (report("waiting", "quarantined", "not_applied"), 4),
    (report("waiting", extract_quarantined=1), 4),
    (report("waiting", "not_applied"), 5),
])
def test_the_most_serious_wins(case, expected):
    assert exit_code_for(case, max_waiting=0) == expected


def test_help_documents_the_exit_codes(capsys):
    top = build_parser().format_help()
    assert "exit codes:" in top and all(f"  {code}  " in top for code in range(6))
    with pytest.raises(SystemExit) as done:
        main(["run", "--help"])
    assert done.value.code == 0
    text = capsys.readouterr().out
    assert "--max-waiting N" in text and "  5  more records waiting than run --max-waiting allows" in text


def test_usage_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as done:
        main(["run", "--max-waiting", "-1"])
    assert done.value.code == exitcodes.USAGE
    assert "must be 0 or more" in capsys.readouterr().err
    assert main([]) == exitcodes.USAGE


def test_a_duckdb_statement_interrupted_by_a_signal_exits_130(monkeypatch, capsys):
    """Ctrl-C or SIGTERM during a DuckDB statement arrives as DuckDB's InterruptException, not KeyboardInterrupt."""
    import duckdb

    from engine.cli import main

    def interrupted(args):
        raise duckdb.InterruptException("INTERRUPT Error: Interrupted!")

    monkeypatch.setattr("engine.cli.validate.run", interrupted)
    assert main(["validate"]) == 130
    assert "interrupted" in capsys.readouterr().err
