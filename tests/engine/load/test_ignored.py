"""Records a mapping leaves out on purpose (`skip_unless`): one `ignored` ledger row with the mapping's
reason and a `plan` event, counted in the run report, listed by `audit ignored`, not planned again until
the record or the mapping changes — and planned normally once it is no longer left out."""

from __future__ import annotations

from engine.state import audit, db, ledger
from engine.state.planning import plan_hashes
from tests.engine.load.fakes import FakeB1
from tests.engine.load.test_pipeline_run import load, pipeline
from tests.engine.plan.test_changed_only import stage
from tests.engine.plan.test_plan import MAPPING, order

REASON = "the order is cancelled in JAGGAER"


def skipping(project, tmp_path):
    """The pipeline of `test_pipeline_run`, its mapping leaving cancelled orders out."""
    proj, spec, state = pipeline(project, tmp_path)
    text = MAPPING.format(account="'612000'").replace(
        "fields:\n", f'skip_unless:\n  "record.status | default(\'Open\') != \'Cancelled\'": "{REASON}"\nfields:\n', 1)
    project.mapping("po", text)
    return proj, spec, state


def cancelled(oid: int, **kwargs):
    return dict(order(oid, **kwargs), status="Cancelled")


def row(state, ref: str) -> ledger.LedgerRow:
    with db.connect(state, read_only=True) as conn:
        return ledger.ledger_rows(conn, "purchase_orders", [ref])[ref]


def events(state, ref: str) -> list[tuple[str, str, str | None, str | None]]:
    with db.connect(state, read_only=True) as conn:
        return conn.execute("SELECT action, outcome, b1_code, b1_message FROM events WHERE external_ref = ? "
                            "ORDER BY happened_at", [ref]).fetchall()


def test_a_left_out_record_is_ignored_with_the_reason_counted_and_not_planned_again(project, tmp_path):
    proj, spec, state = skipping(project, tmp_path)
    stage(state, {"1": order(1), "2": cancelled(2), "3": order(3)})
    b1 = FakeB1()
    report = load(proj, spec, state, b1, "run-1")

    assert sorted(b1.refs()) == ["1", "3"]
    assert [(f.ref, f.status, f.code, f.message) for f in report.ignored] == [("2", "ignored", "skip_unless", REASON)]
    assert report.problems == []  # left out on purpose: not a problem
    assert report.outcomes == {"created": 2, "updated": 0, "found": 0, "unchanged": 0, "waiting": 0, "quarantined": 0,
                               "ignored": 1, "not_applied": 0, "failed": 0}
    assert report.planned_total == sum(report.outcomes.values()) == 3
    ignored = row(state, "2")
    assert (ignored.status, ignored.last_error_code, ignored.last_error, ignored.target_key) == (
        "ignored", "skip_unless", REASON, None)
    assert ignored.plan_hash and ignored.record_key == "2"
    assert events(state, "2") == [("plan", "ignored", "skip_unless", REASON)]
    assert [(r[0], r[1], r[3]) for r in audit.audit(state, "ignored").rows] == [("purchase_orders", "2", REASON)]
    assert ("purchase_orders", "ignored", 1) in audit.audit(state, "status").rows

    again = load(proj, spec, state, b1, "run-2")  # nothing changed: the ignored order is not planned again
    assert again.planned == {} and again.ignored == [] and len(events(state, "2")) == 1

    stage(state, {"2": order(2)})  # no longer cancelled: planned normally, created once
    back = load(proj, spec, state, b1, "run-3")
    assert back.planned == {"create": 1} and back.stats.created == 1 and sorted(b1.refs()) == ["1", "2", "3"]
    assert (row(state, "2").status, row(state, "2").last_error) == ("synced", None)
    assert audit.audit(state, "ignored").rows == []


def test_a_synced_order_cancelled_later_keeps_its_b1_key_and_comes_back_without_a_write(project, tmp_path):
    proj, spec, state = skipping(project, tmp_path)
    stage(state, {"1": order(1)})
    b1 = FakeB1()
    load(proj, spec, state, b1, "run-1")
    synced = row(state, "1")

    stage(state, {"1": cancelled(1)})
    report = load(proj, spec, state, b1, "run-2")
    assert report.outcomes["ignored"] == 1 and report.stats.writes == 0
    left = row(state, "1")
    assert left.status == "ignored" and left.last_error == REASON
    # B1 keeps the order (a buyer cancels it there): its key, payload and mapping version stay the ledger's
    assert (left.target_key, left.fingerprint, left.mapping_version) == (
        synced.target_key, synced.fingerprint, synced.mapping_version)
    [(_, name, ref, key, reason, run_id)] = [("row", *r) for r in audit.audit(state, "ignored").rows]
    assert (name, ref, key, reason, run_id) == ("purchase_orders", "1", synced.target_key, REASON, "run-2")
    assert load(proj, spec, state, b1, "run-3").planned == {}

    stage(state, {"1": order(1)})  # reopened as it was: B1 already holds it
    back = load(proj, spec, state, b1, "run-4")
    assert back.planned == {"skip": 1} and back.outcomes["unchanged"] == 1 and b1.creates == 1 and b1.patches == 0
    assert (row(state, "1").status, row(state, "1").last_error) == ("synced", None)

    stage(state, {"1": cancelled(1, qty2=9.0)})  # changed while cancelled: still left out, B1 not written
    assert load(proj, spec, state, b1, "run-5").outcomes["ignored"] == 1 and b1.patches == 0


def test_a_write_in_flight_stays_in_flight_when_its_record_is_left_out(tmp_path):
    """Its outcome in B1 is unknown: only a lookup may settle it, so it is planned again every run."""
    state = tmp_path / "state.duckdb"
    stage(state, {"1": cancelled(1)})
    with db.connect(state) as conn:
        ledger.upgrade_tables(conn)
        ledger.record_intent(conn, "r1", [ledger.Intent("purchase_orders", "1", "create", {}, "fp", "v1", record_key="1")])
        ledger.mark_ignored(conn, "r2", [ledger.Mark("purchase_orders", "1", REASON, "skip_unless", "1", "v1", "h")])
        assert ledger.ledger_rows(conn, "purchase_orders")["1"].status == "in_flight"
        assert list(plan_hashes(conn, "purchase_orders", "v1", changed_only=True)) == ["1"]
