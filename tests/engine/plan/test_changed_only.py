"""A run plans only what changed since it was last planned (`plan_pipeline(changed_only=True)`): new or
changed staged records, records not synced, and every record once the mapping version changes."""

from __future__ import annotations

import json

from engine.state import db, ledger
from engine.state.planning import plan_pipeline
from tests.engine.plan.test_plan import MAPPING, order


def stage(state, records: dict[str, dict]) -> None:
    with db.connect(state) as conn:
        conn.execute("CREATE SCHEMA IF NOT EXISTS staging")
        conn.execute('CREATE TABLE IF NOT EXISTS staging."purchase_orders" (id VARCHAR PRIMARY KEY, last_modified VARCHAR, record JSON)')
        conn.executemany('INSERT OR REPLACE INTO staging."purchase_orders" VALUES (?, ?, ?)',
                         [(k, "", json.dumps(r)) for k, r in records.items()])


def land(state, plan) -> None:
    """What the journal records when the planned creates/updates land, and the runner for skips."""
    with db.connect(state) as conn:
        ledger.record_result(conn, "r", [
            ledger.Result(i.pipeline, i.external_ref, i.action, "synced", target_key=f"{100 + int(i.record_key)}",
                          fingerprint=i.fingerprint, payload=i.payload, mapping_version=i.mapping_version,
                          record_key=i.record_key, plan_hash=i.plan_hash)
            for i in plan.items if i.action in ("create", "update")])
        ledger.refresh_synced(conn, [ledger.Unchanged(i.pipeline, i.external_ref, i.plan_hash)
                                     for i in plan.items if i.action == "skip"])


def actions(plan) -> dict[str, str]:
    return {i.record_key: i.action for i in plan.items}


def test_only_changed_records_and_all_after_a_mapping_change(project, tmp_path):
    from engine.mapping import load_mapping

    state = tmp_path / "state.duckdb"
    with db.connect(state) as conn:
        ledger.upgrade_tables(conn)
    m = load_mapping(project.mapping("po", MAPPING.format(account="'612000'")))
    stage(state, {str(i): order(i) for i in range(1, 6)})

    first = plan_pipeline(state, "purchase_orders", m, changed_only=True)
    assert actions(first) == {str(i): "create" for i in range(1, 6)}
    land(state, first)
    assert plan_pipeline(state, "purchase_orders", m, changed_only=True).items == []  # a no-op run renders nothing
    assert len(plan_pipeline(state, "purchase_orders", m).items) == 5  # `plan` (the verb) still shows every record

    stage(state, {"2": order(2, qty2=7.0), "4": dict(order(4), unused="x")})  # 4: a field the mapping ignores
    second = plan_pipeline(state, "purchase_orders", m, changed_only=True)
    assert actions(second) == {"2": "update", "4": "skip"}
    land(state, second)
    assert plan_pipeline(state, "purchase_orders", m, changed_only=True).items == []

    changed = load_mapping(project.mapping("po", MAPPING.format(account="'650000' if line.kind == 'consulting' else '612000'")))
    third = plan_pipeline(state, "purchase_orders", changed, changed_only=True)
    assert actions(third) == {str(i): "update" for i in range(1, 6)}  # every order has a consulting line
    land(state, third)
    assert plan_pipeline(state, "purchase_orders", changed, changed_only=True).items == []


def test_records_not_synced_are_planned_again(project, tmp_path):
    from engine.mapping import load_mapping

    state = tmp_path / "state.duckdb"
    m = load_mapping(project.mapping("po", MAPPING.format(account="'612000'")))
    stage(state, {"1": order(1), "2": order(2), "3": order(3)})
    plan = plan_pipeline(state, "purchase_orders", m, changed_only=True)
    land(state, plan)
    with db.connect(state) as conn:
        ledger.record_intent(conn, "r2", [ledger.Intent("purchase_orders", "2", "update", {}, "fp", m.version)])
        ledger.mark_waiting(conn, "r2", [ledger.Mark("purchase_orders", "3", "waiting", record_key="3")])
        conn.execute("UPDATE ledger SET status = 'failed' WHERE external_ref = '3'")
    again = plan_pipeline(state, "purchase_orders", m, changed_only=True)
    assert sorted(actions(again)) == ["2", "3"]
    assert next(i for i in again.items if i.record_key == "2").resume  # in flight: looked up in B1 first
