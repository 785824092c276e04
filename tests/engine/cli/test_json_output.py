"""`--json` of `check`, `plan` and `run`: one JSON document on stdout and nothing else there, and the
exit codes of `engine.exitcodes` (run: 0 settled, 4 quarantined, 3 failed; check: 1 on a failure)."""

from __future__ import annotations

import json

import pytest

from engine.cli import main
from engine.mapping import Lookups, load_mapping
from engine.plan import fingerprint
from engine.state import db, ledger
from tests.e2e.project_fixture import start_stack
from tests.engine.plan.test_plan_cli import ROOT, fixture_record, stage


def cli(capsys, *argv: str) -> tuple[int, dict]:
    """Run `ml-connector ARGV...`: (exit code, the one JSON document it printed on stdout)."""
    code = main(list(argv))
    return code, json.loads(capsys.readouterr().out)


# -- plan ------------------------------------------------------------------------------------------


@pytest.fixture
def plan_state(tmp_path):
    """A staged supplier and purchase order; the order is in the ledger, and one of its lines changed since."""
    path = tmp_path / "state.duckdb"
    supplier, po = fixture_record("supplier/basic"), fixture_record("purchase_order/two_lines")
    key = str(po["header"]["purchaseOrderId"])
    crosswalk = {str(po["header"]["supplier"]["id"]): po["header"]["supplier"]["supplierNumber"]}
    rendered = load_mapping(ROOT / "mappings" / "purchase_order.yaml").render(
        po, key, lookups=Lookups(crosswalk={"suppliers": crosswalk}))
    with db.connect(path) as conn:
        stage(conn, "suppliers", {supplier["returnCompanyInfo"]["bravoId"]: supplier})
        po["lineList"]["purchaseOrderLine"][1]["quantity"] = 999
        stage(conn, "purchase_orders", {key: po})
        ledger.upsert_crosswalk(conn, [ledger.CrosswalkRow("suppliers", k, v) for k, v in crosswalk.items()])
        ledger.record_result(conn, "r1", [ledger.Result(
            "purchase_orders", key, "create", "synced", target_key="415", fingerprint=fingerprint(rendered.payload),
            payload=rendered.payload, line_map={"1": 0, "2": 1}, mapping_version=rendered.mapping_version)])
    return path, key


def test_plan_json_is_one_document_with_counts_and_changed_fields(plan_state, capsys):
    state, key = plan_state
    code, doc = cli(capsys, "plan", "suppliers", "purchase_orders", "--project", str(ROOT), "--state", str(state),
                    "--json", "--limit", "0")
    assert code == 0
    assert doc["writes"] == 2 and doc["counts"]["create"] == 1 and doc["counts"]["update"] == 1
    pipelines = {p["name"]: p for p in doc["pipelines"]}
    assert list(pipelines) == ["suppliers", "purchase_orders"]
    assert pipelines["suppliers"]["counts"]["create"] == 1 and pipelines["suppliers"]["mapping_version"]
    [supplier] = pipelines["suppliers"]["items"]
    assert supplier["action"] == "create" and supplier["body"]["CardCode"]
    [order] = pipelines["purchase_orders"]["items"]
    assert (order["action"], order["ref"], order["target_key"]) == ("update", key, "415")
    assert {"path": "DocumentLines[2].Quantity", "after": 999.0} in [
        {k: c[k] for k in ("path", "after")} for c in order["changes"]]
    assert order["body"]["DocumentLines"]


# -- check and run, against both simulators ---------------------------------------------------------------


@pytest.fixture
def stack(tmp_path, monkeypatch):
    """Both simulators, a copy of the repo's project, its environment set (the CLI reads os.environ)."""
    monkeypatch.setenv("ML_CONNECTOR_LOCK_DIR", str(tmp_path / "locks"))
    with start_stack(tmp_path, seed=4) as s:
        for name, value in s.environ.items():
            monkeypatch.setenv(name, value)
        yield s


def test_check_json_names_every_connection_and_exits_1_on_a_failure(stack, capsys, monkeypatch):
    code, doc = cli(capsys, "check", "--project", str(stack.root), "--json")
    assert code == 0 and doc["ok"] is True
    assert {(c["name"], c["kind"], c["ok"]) for c in doc["connections"]} == {("jaggaer", "jaggaer", True),
                                                                             ("sapb1", "sapb1", True)}
    assert all(c["detail"] for c in doc["connections"])
    monkeypatch.setenv("SAPB1_PASSWORD", "wrong")
    code = main(["check", "--project", str(stack.root), "--json"])
    captured = capsys.readouterr()
    doc = json.loads(captured.out)
    assert code == 1 and doc["ok"] is False and captured.err == ""
    assert {c["name"]: c["ok"] for c in doc["connections"]} == {"jaggaer": True, "sapb1": False}


def run_json(capsys, stack, *argv: str) -> tuple[int, dict]:
    code, doc = cli(capsys, "run", "--project", str(stack.root), "--json", *argv)
    assert doc["exit_code"] == code
    return code, doc


@pytest.mark.slow  # make test-long: ~15 s; exit_code_for is unit-tested in test_exit_codes.py
def test_run_json_and_exit_codes_settled_quarantined_failed(stack, capsys):
    code, doc = run_json(capsys, stack)
    assert code == 0, doc["problems"]
    assert doc["aborted"] is None and doc["problems"] == [] and doc["run_id"] and doc["seconds"] > 0
    pipelines = {p["name"]: p for p in doc["pipelines"]}
    assert {"suppliers", "purchase_orders", "invoices"} <= set(pipelines)
    orders = pipelines["purchase_orders"]
    assert orders["outcomes"]["created"] > 0 and orders["writes"] >= orders["outcomes"]["created"]
    assert doc["writes"] == sum(p["writes"] for p in doc["pipelines"])

    # an order charged to an account SAP B1 lacks: quarantined, exit 4
    supplier = stack.jag.suppliers()[0]["returnCompanyInfo"]["bravoId"]
    bad = stack.jag.create_purchase_order(supplier_id=supplier, lines=[{"quantity": 1, "account": "999999"}])
    bad_ref = str(bad["header"]["purchaseOrderId"])
    code, doc = run_json(capsys, stack)
    assert code == 4
    [problem] = doc["problems"]
    assert (problem["pipeline"], problem["ref"], problem["status"]) == ("purchase_orders", bad_ref, "quarantined")
    assert "999999" in problem["message"] and set(problem) == {"pipeline", "ref", "status", "code", "message"}

    # SAP B1 refuses a new order (-5002) while the quarantined one is still there: failed wins, exit 3
    new = stack.jag.create_purchase_order(supplier_id=supplier, lines=[{"quantity": 2}])
    stack.b1.set_knobs(internal_error_rate=1.0)
    code, doc = run_json(capsys, stack)
    assert code == 3
    statuses = {(p["ref"], p["status"]) for p in doc["problems"]}
    assert (str(new["header"]["purchaseOrderId"]), "failed") in statuses
    assert (bad_ref, "quarantined") in statuses

    # the cause gone, `replay --all` lands the refused order: exit 0
    stack.b1.set_knobs(internal_error_rate=0.0)
    code, doc = cli(capsys, "replay", "--all", "--project", str(stack.root), "--json")
    assert (code, doc["exit_code"], doc["problems"]) == (0, 0, [])
    assert sum(p["outcomes"]["created"] for p in doc["pipelines"]) == 1
