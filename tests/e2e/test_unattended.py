"""Exactly once when nobody is watching (issue 8): concurrent runs on one project, two projects on one
SAP B1 company, a crash followed by a source change, a lost state file. Real processes, real sockets.

After each scenario B1 holds every reference once, the ledger names the same B1 keys, and what B1 holds
equals what JAGGAER says.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.state import db, ledger
from tests.e2e.project_fixture import Stack, copy_project, po_lines, start_stack

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = {"purchase_orders": "PurchaseOrders", "invoices": "PurchaseInvoices"}


def start_run(stack: Stack, root: Path, wait: float) -> subprocess.Popen:
    env = {**os.environ, **stack.environ}
    return subprocess.Popen([sys.executable, "-m", "tests.e2e._run_child", str(root), str(wait)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen) -> dict:
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    return json.loads(out.strip().splitlines()[-1])


def assert_b1_agrees_with_ledger(stack: Stack, state: Path) -> None:
    """Each reference once in B1 (`b1_docs` asserts it), and the ledger's synced rows name those documents."""
    with db.connect(state, read_only=True) as conn:
        for pipeline, entity in DOCUMENTS.items():
            docs = stack.b1_docs(entity)
            rows = ledger.ledger_rows(conn, pipeline)
            synced = {ref: row.target_key for ref, row in rows.items() if row.status in ("synced", "not_applied")}
            assert synced, pipeline
            assert synced == {ref: str(doc["DocEntry"]) for ref, doc in docs.items()}, pipeline
            assert not [r for r, row in rows.items() if row.status in ("in_flight", "pending", "failed")], pipeline


def assert_b1_equals_source(stack: Stack) -> None:
    """Every open B1 purchase order carries JAGGAER's current line quantities and descriptions."""
    docs = stack.b1_docs("PurchaseOrders")
    compared = 0
    for po in stack.jag.purchase_orders():
        doc = docs.get(str(po["header"]["purchaseOrderId"]))
        if doc is None or doc.get("DocumentStatus") == "bost_Close":
            continue
        lines = [line for line in po_lines(po) if line.get("lineStatus") != "Cancelled"]
        assert [(ln["ItemDescription"], ln["Quantity"]) for ln in doc["DocumentLines"]] == [
            (line["item"]["description"], float(line["quantity"])) for line in lines], doc["U_JaggaerRef"]
        compared += 1
    assert compared


def change_quantities(stack: Stack, count: int) -> list[str]:
    """Add 7 to the first line's quantity of `count` completed orders in JAGGAER (not closed in B1: a closed
    order keeps its quantities, reported as not applied)."""
    closed = {ref for ref, doc in stack.b1_docs("PurchaseOrders").items() if doc.get("DocumentStatus") == "bost_Close"}
    changed = []
    for po in stack.jag.purchase_orders():
        header = po["header"]
        if header["workflowStatus"] != "Completed" or header["poStatus"] == "Cancelled" or len(changed) == count \
                or str(header["purchaseOrderId"]) in closed:
            continue
        line = po_lines(po)[0]
        stack.jag.change_purchase_order(header["purchaseOrderId"],
                                        lines=[{"lineNumber": line["lineNumber"], "quantity": float(line["quantity"]) + 7}])
        changed.append(str(header["purchaseOrderId"]))
    return changed


def test_two_concurrent_runs_of_one_project_write_each_reference_once(tmp_path):
    with start_stack(tmp_path, seed=200) as stack:
        first, second = start_run(stack, stack.root, wait=300), start_run(stack, stack.root, wait=300)
        results = [finish(first), finish(second)]
        assert sorted(r["writes"] > 0 for r in results) == [False, True], "the second run waited, then had nothing to send"
        assert_b1_agrees_with_ledger(stack, stack.state)


def test_a_second_run_without_waiting_is_refused_naming_the_holder(tmp_path):
    with start_stack(tmp_path, seed=120) as stack:
        first = start_run(stack, stack.root, wait=300)
        deadline = time.monotonic() + 60
        while stack.writes()["writes"] == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        second = start_run(stack, stack.root, wait=0)
        out, _ = second.communicate(timeout=120)
        assert second.returncode == 3, out
        message = json.loads(out.strip().splitlines()[-1])["locked"]
        assert f"held by process {first.pid}" in message and "_run_child" in message
        finish(first)
        assert_b1_agrees_with_ledger(stack, stack.state)


@pytest.mark.slow  # make test-long: ~16 s; the chaos scenario runs a second runner too
def test_two_projects_on_one_company_never_double_a_document(tmp_path):
    with start_stack(tmp_path, seed=200) as stack:
        other = copy_project(tmp_path / "second")
        first, second = start_run(stack, stack.root, wait=300), start_run(stack, other, wait=300)
        results = [finish(first), finish(second)]
        assert min(r["writes"] for r in results) == 0, "the later project found every record, identical, in B1"
        assert_b1_agrees_with_ledger(stack, stack.state)
        assert_b1_agrees_with_ledger(stack, other / "var" / "state.duckdb")


@pytest.mark.slow  # make test-long: ~15 s; the chaos scenario covers it
def test_a_crash_then_a_source_change_then_a_rerun_leaves_b1_equal_to_the_source(tmp_path):
    with start_stack(tmp_path, seed=200) as stack:
        stack.b1.set_knobs(write_latency_ms=5)
        proc = start_run(stack, stack.root, wait=0)
        deadline = time.monotonic() + 120
        while stack.writes().get("PurchaseOrders.POST", 0) < 40 and time.monotonic() < deadline:
            time.sleep(0.005)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        stack.b1.set_knobs(write_latency_ms=0)
        landed = set(stack.b1_docs("PurchaseOrders"))
        changed = change_quantities(stack, 60)
        assert landed & set(changed), "a changed order was already in B1 from the killed run"
        report = stack.run()
        assert report.aborted is None
        assert_b1_agrees_with_ledger(stack, stack.state)
        assert_b1_equals_source(stack)


def test_a_lost_state_file_then_a_source_change_sends_only_the_change(tmp_path):
    with start_stack(tmp_path, seed=60) as stack:
        assert stack.run().ok
        shutil.rmtree(stack.root / "var")  # the state file (and dlt's working files) lost
        [ref] = change_quantities(stack, 1)
        before = stack.writes()
        report = stack.run()
        after = stack.writes()
        assert report.aborted is None
        assert (after["POST"] - before["POST"], after["PATCH"] - before["PATCH"]) == (0, 1)
        assert after["PurchaseOrders.PATCH"] - before.get("PurchaseOrders.PATCH", 0) == 1
        assert_b1_agrees_with_ledger(stack, stack.state)
        assert_b1_equals_source(stack)
        with db.connect(stack.state, read_only=True) as conn:
            row = ledger.ledger_rows(conn, "purchase_orders", [ref])[ref]
        doc = stack.b1_docs("PurchaseOrders")[ref]
        assert row.payload["DocumentLines"][0]["Quantity"] == doc["DocumentLines"][0]["Quantity"], \
            "the ledger records what B1 holds"
