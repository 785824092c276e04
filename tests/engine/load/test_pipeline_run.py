"""One pipeline of a run (`engine.runner.PipelineRun`) offline: staged records in a real state file,
the real mapping, plan, journal and loader against the in-memory B1."""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace

from engine.kinds import SapB1Target
from engine.runner import PipelineRun
from engine.state import db, ledger, quarantine
from tests.engine.load.fakes import FakeB1
from tests.engine.plan.test_changed_only import stage
from tests.engine.plan.test_plan import MAPPING, order


def pipeline(project, tmp_path):
    project.rules("gl", """
        kind,AccountCode,note
        bad*,999999,an account SAP B1 does not have
        *,612000,
    """)
    project.mapping("po", MAPPING.format(account="rule('gl', kind=line.kind).AccountCode"))
    state = tmp_path / "state.duckdb"
    with db.connect(state) as conn:
        ledger.upgrade_tables(conn)
        quarantine.ensure_table(conn)
    spec = SimpleNamespace(name="purchase_orders", mapping="mappings/po.yaml",
                           target=SapB1Target("sapb1", "PurchaseOrders", "U_JaggaerRef"))
    return SimpleNamespace(root=project.root), spec, state


def load(project, spec, state, b1, run_id):
    run = PipelineRun(project, spec, state, run_id, {}, {"accounts": {"612000"}})
    return asyncio.run(run.load(b1, None, lambda _p: None, 8))


def test_a_rule_code_b1_lacks_is_reported_and_quarantines_only_the_records_that_meet_it(project, tmp_path):
    proj, spec, state = pipeline(project, tmp_path)
    bad = order(2)
    bad["lines"][1]["kind"] = "bad-debt"
    stage(state, {"1": order(1), "2": bad, "3": order(3)})
    b1 = FakeB1()
    report = load(proj, spec, state, b1, "run-1")

    assert len(report.rule_problems) == 1
    assert "gl" in report.rule_problems[0] and "999999" in report.rule_problems[0]
    assert sorted(b1.refs()) == ["1", "3"] and report.stats.created == 2
    [held] = [p for p in report.problems if p.status == "quarantined"]
    assert held.ref == "2" and all(part in held.message for part in ("gl", "'999999'", "record 2", "ChartOfAccounts"))
    with db.connect(state, read_only=True) as conn:
        rows = ledger.ledger_rows(conn, "purchase_orders")
        reasons = conn.execute("SELECT record_key, reason, record FROM quarantine").fetchall()
    assert {r: row.status for r, row in rows.items()} == {"1": "synced", "2": "quarantined", "3": "synced"}
    assert [(k, json.loads(rec)["id"]) for k, _, rec in reasons] == [("2", 2)]

    again = load(proj, spec, state, b1, "run-2")  # nothing changed: only the quarantined record is planned again
    assert again.planned == {"quarantine": 1} and again.stats.writes == 0 and b1.creates == 2
