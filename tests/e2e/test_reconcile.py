"""Acceptance: `reconcile` compares the ledger with what SAP B1 holds, over real sockets.

After a clean sync it finds nothing and writes nothing. Then a B1 user edits a PO line's quantity, closes
a PO by hand, types our reference on a new PO, clears the reference of another (B1 has no DELETE on
documents) and edits a supplier's phone: each is found with its kind. `--fix` sends the quantity back
with one PATCH of that field (and creates the PO B1 lost after a lookup); a second reconcile is clean for
both. A record the ledger lost is adopted without a write.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from engine.locks import RunLocked, run_locks
from engine.project import load_project
from engine.reconcile import reconcile
from engine.state import db
from engine.state.drift import rows as drift_rows
from engine.state.staging import iter_staged
from tests.e2e.project_fixture import start_stack


@contextlib.contextmanager
def b1_session(stack) -> Iterator[httpx.Client]:
    """A B1 user's Service Layer session (what someone does by hand in the B1 client)."""
    with httpx.Client(base_url=stack.b1.service_root("v2") + "/", timeout=30) as client:
        client.post("Login", json=stack.b1.login_body()).raise_for_status()
        yield client
        client.post("Logout")


def open_orders(stack) -> list[dict[str, Any]]:
    """Synced POs open in B1 (every row open) whose JAGGAER order is open too."""
    source = dict(iter_staged(stack.state, "purchase_orders"))
    return [doc for ref, doc in sorted(stack.b1_docs("PurchaseOrders").items())
            if doc["DocumentStatus"] == "bost_Open" and all(ln["LineStatus"] == "bost_Open" for ln in doc["DocumentLines"])
            and source[ref]["header"]["poStatus"] not in ("Closed", "Cancelled")]


def kinds(result) -> dict[tuple[str, str], str]:
    return {(f.kind, f.ref): f.pipeline for f in result.findings}


def sql(stack, query: str, *params: Any) -> list[tuple]:
    with db.connect(stack.state, read_only=True) as conn:
        return conn.execute(query, list(params)).fetchall()


def cli(stack, monkeypatch, *argv: str) -> tuple[int, str]:
    for name, value in stack.environ.items():
        monkeypatch.setenv(name, value)
    return stack.cli("reconcile", *argv)


def test_a_clean_sync_reconciles_clean_with_one_read_per_entity_set_and_no_write(tmp_path, monkeypatch):
    with start_stack(tmp_path, seed=30) as stack:
        assert stack.run().ok
        docs = stack.b1_docs("PurchaseOrders")
        # orders fully invoiced are closed by B1 itself: not drift
        assert any(d["DocumentStatus"] == "bost_Close" for d in docs.values())
        before = stack.writes()

        result = reconcile(load_project(stack.root, environ=stack.environ))

        assert result.clean and result.findings == [] and result.fix is None
        checked = {c.name: (c.entity, c.b1_records, c.ledger_keys) for c in result.pipelines}
        assert checked == {
            "suppliers": ("BusinessPartners", len(stack.b1_docs("BusinessPartners")), len(stack.b1_docs("BusinessPartners"))),
            "purchase_orders": ("PurchaseOrders", len(docs), len(docs)),
            "invoices": ("PurchaseInvoices", len(stack.b1_docs("PurchaseInvoices")), len(stack.b1_docs("PurchaseInvoices"))),
        }
        assert result.requests == 3  # one paged query per entity set (each fits a page)
        assert stack.writes() == before
        assert drift_rows(stack.state) == []

        code, out = cli(stack, monkeypatch, "--json")
        doc = json.loads(out)
        assert code == 0 and doc["clean"] and doc["exit_code"] == 0 and doc["findings"] == []
        code, out = cli(stack, monkeypatch, "purchase_orders")
        assert code == 0 and "clean" in out and "purchase_orders (30 in SAP B1, 30 in the ledger)" in out

        with run_locks(stack.state):  # a run holds the project: reconcile does not race it
            with pytest.raises(RunLocked):
                reconcile(load_project(stack.root, environ=stack.environ))
            assert cli(stack, monkeypatch)[0] == 6


def test_each_kind_of_drift_is_found_and_fix_patches_the_changed_quantity_back(tmp_path, monkeypatch):
    with start_stack(tmp_path, seed=30) as stack:
        assert stack.run().ok
        edited, closed, unref = open_orders(stack)[:3]
        line = edited["DocumentLines"][0]
        with b1_session(stack) as b1:
            assert b1.patch(f"PurchaseOrders({edited['DocEntry']})", json={
                "DocumentLines": [{"LineNum": line["LineNum"], "Quantity": line["Quantity"] + 5}]}).status_code == 204
            assert b1.post(f"PurchaseOrders({closed['DocEntry']})/Close").status_code == 204
            assert b1.patch(f"PurchaseOrders({unref['DocEntry']})", json={"U_JaggaerRef": ""}).status_code == 204
            typed = b1.post("PurchaseOrders", json={
                "CardCode": edited["CardCode"], "DocType": "dDocument_Service", "DocDate": "2026-01-05",
                "DocDueDate": "2026-02-05", "U_JaggaerRef": "TYPED-BY-HAND-1",
                "DocumentLines": [{"ItemDescription": "gloves", "Quantity": 2, "UnitPrice": 3.5, "AccountCode": "510000"}]})
            assert typed.status_code == 201, typed.text
            supplier = stack.b1_docs("BusinessPartners")[next(iter(sorted(stack.b1_docs("BusinessPartners"))))]
            assert b1.patch(f"BusinessPartners('{supplier['CardCode']}')", json={"Phone1": "+1 555 0100"}).status_code == 204
        typed_entry = str(typed.json()["DocEntry"])
        refs = {name: doc["U_JaggaerRef"] for name, doc in (("edited", edited), ("closed", closed), ("unref", unref))}
        before = stack.writes()

        result = reconcile(load_project(stack.root, environ=stack.environ))

        assert stack.writes() == before  # reads only
        assert kinds(result) == {("changed_in_b1", refs["edited"]): "purchase_orders",
                                 ("changed_in_b1", supplier["U_JaggaerRef"]): "suppliers",
                                 ("closed_in_b1", refs["closed"]): "purchase_orders",
                                 ("missing_in_b1", refs["unref"]): "purchase_orders",
                                 ("unknown_to_ledger", "TYPED-BY-HAND-1"): "purchase_orders"}
        found = {f.kind: f for f in result.findings if f.pipeline == "purchase_orders"}
        phone = next(f for f in result.findings if f.pipeline == "suppliers")
        assert [(f["path"], f["b1"]) for f in phone.details["fields"]] == [("Phone1", "+1 555 0100")]
        changed = found["changed_in_b1"]
        assert changed.target_key == str(edited["DocEntry"])
        assert [(f["ours"], f["b1"]) for f in changed.details["fields"]] == [(line["Quantity"], line["Quantity"] + 5)]
        assert changed.details["fields"][0]["path"].endswith("].Quantity")
        amounts = changed.details["amounts"]
        assert amounts["b1"] - amounts["ours"] == pytest.approx(5 * line["UnitPrice"], abs=0.01)
        assert found["closed_in_b1"].details["state"] == "closed" and found["closed_in_b1"].details["source_status"] == "Open"
        assert found["missing_in_b1"].details["exists"] and found["missing_in_b1"].target_key == str(unref["DocEntry"])
        assert found["unknown_to_ledger"].target_key == typed_entry
        assert not found["unknown_to_ledger"].details["adoptable"]  # no staged record has that reference
        stored = {(r["kind"], r["external_ref"]) for r in drift_rows(stack.state)}
        assert stored == set(kinds(result)) and {r["run_id"] for r in drift_rows(stack.state)} == {result.run_id}

        code, out = cli(stack, monkeypatch, "--json")
        assert code == 1 and json.loads(out)["counts"] == {
            "changed_in_b1": 2, "closed_in_b1": 1, "missing_in_b1": 1, "unknown_to_ledger": 1}
        code, out = cli(stack, monkeypatch)
        assert code == 1 and all(kind in out for kind in ("changed_in_b1 (2)", "closed_in_b1 (1)", "missing_in_b1 (1)",
                                                          "unknown_to_ledger (1)"))

        fixed = reconcile(load_project(stack.root, environ=stack.environ), fix=True)
        after = stack.writes()

        assert {(f.kind, f.pipeline): f.fix for f in fixed.findings} == {
            ("changed_in_b1", "purchase_orders"): "patched", ("missing_in_b1", "purchase_orders"): "recreated",
            ("closed_in_b1", "purchase_orders"): "reported", ("unknown_to_ledger", "purchase_orders"): "reported",
            ("changed_in_b1", "suppliers"): "reported"}  # suppliers sync both ways: a B1 change is not undone
        assert fixed.fix.run is not None and fixed.fix.run.ok and fixed.fix.writes == 2
        assert after["PurchaseOrders.PATCH"] - before["PurchaseOrders.PATCH"] == 1  # the quantity, sent back
        assert after["PurchaseOrders.POST"] - before["PurchaseOrders.POST"] == 1  # the lost PO, created again
        assert after.get("PurchaseOrders.Reopen", 0) == 0  # closed_in_b1 is never reopened
        assert after.get("BusinessPartners.PATCH", 0) == before.get("BusinessPartners.PATCH", 0)
        patch = sql(stack, "SELECT payload FROM events WHERE external_ref = ? AND action = 'update' "
                    "AND outcome = 'intent'", refs["edited"])
        assert [json.loads(p) for (p,) in patch] == [
            {"DocumentLines": [{"LineNum": line["LineNum"], "Quantity": line["Quantity"]}]}]
        docs = stack.b1_docs("PurchaseOrders")
        assert docs[refs["edited"]]["DocumentLines"][0]["Quantity"] == line["Quantity"]
        assert docs[refs["unref"]]["DocEntry"] != unref["DocEntry"]  # created again, after a lookup
        history = stack.audit("history", refs["edited"])
        assert any(e["action"] == "reconcile" and e["outcome"] == "rebased" for e in history)

        again = reconcile(load_project(stack.root, environ=stack.environ))
        assert kinds(again) == {("closed_in_b1", refs["closed"]): "purchase_orders",
                                ("unknown_to_ledger", "TYPED-BY-HAND-1"): "purchase_orders",
                                ("changed_in_b1", supplier["U_JaggaerRef"]): "suppliers"}
        assert stack.run(extract=False).writes == 0  # the ledger agrees with B1 again: nothing more to send


def test_fix_adopts_a_record_the_ledger_lost_without_writing(tmp_path):
    with start_stack(tmp_path, seed=20) as stack:
        assert stack.run().ok
        ref, doc = sorted(stack.b1_docs("PurchaseOrders").items())[0]
        with db.connect(stack.state) as conn:  # a ledger row lost (e.g. a state file restored from an old backup)
            conn.execute("DELETE FROM ledger WHERE pipeline = 'purchase_orders' AND external_ref = ?", [ref])

        result = reconcile(load_project(stack.root, environ=stack.environ), ["purchase_orders"])
        assert kinds(result) == {("unknown_to_ledger", ref): "purchase_orders"}
        assert result.findings[0].details["adoptable"] and result.findings[0].target_key == str(doc["DocEntry"])

        before = stack.writes()
        fixed = reconcile(load_project(stack.root, environ=stack.environ), ["purchase_orders"], fix=True)
        assert [f.fix for f in fixed.findings] == ["adopted"]
        assert fixed.fix.writes == 0 and stack.writes() == before
        assert sum(p.stats.adopted for p in fixed.fix.run.pipelines) == 1
        row = sql(stack, "SELECT status, target_key FROM ledger WHERE pipeline = 'purchase_orders' "
                  "AND external_ref = ?", ref)
        assert row == [("synced", str(doc["DocEntry"]))]
        assert reconcile(load_project(stack.root, environ=stack.environ)).clean


def test_compare_names_the_fields_lines_and_amounts_b1_holds_differently():
    from engine.reconcile import compare

    ours = {"CardCode": "V1", "DocDate": "2026-01-05T00:00:00Z", "U_JaggaerRef": "7", "DocumentLines": [
        {"_key": "1", "Quantity": 2.0, "UnitPrice": 10.0}, {"_key": "2", "Quantity": 1.0, "UnitPrice": 5.0}]}
    b1 = {"DocEntry": 9, "CardCode": "V1", "DocDate": "2026-01-05T00:00:00Z", "U_JaggaerRef": "7", "DocumentLines": [
        {"LineNum": 0, "Quantity": 2, "UnitPrice": 10.0}, {"LineNum": 1, "Quantity": 1.0, "UnitPrice": 5.0}]}
    line_map = {"1": 0, "2": 1}
    assert compare("PurchaseOrders", ours, b1, line_map) == {}  # 2 for 2.0: the same value

    edited = {**b1, "CardCode": "V2", "DocumentLines": [{"LineNum": 0, "Quantity": 3.0, "UnitPrice": 10.0},
                                                          {"LineNum": 5, "Quantity": 1.0, "UnitPrice": 1.0}]}
    details = compare("PurchaseOrders", ours, edited, line_map)
    assert [(f["path"], f["ours"], f["b1"]) for f in details["fields"]] == [
        ("CardCode", "V1", "V2"), ("DocumentLines[1].Quantity", 2.0, 3.0),
        ("DocumentLines[2]", {"Quantity": 1.0, "UnitPrice": 5.0}, None),
        ("DocumentLines[LineNum 5]", None, {"LineNum": 5, "Quantity": 1.0, "UnitPrice": 1.0})]
    assert details["amounts"] == {"ours": 25.0, "b1": 31.0} and "lines" not in details  # 2 lines each
    # what B1 holds, in our shape: the next plan's diff against it is the PATCH sending ours back
    assert details["b1_holds"] == {**ours, "CardCode": "V2",
                                   "DocumentLines": [{"_key": "1", "Quantity": 3.0, "UnitPrice": 10.0}]}
    # invoice lines are derived (copies of PO lines): compared by amount, not line by line
    assert compare("PurchaseInvoices", ours, {**b1, "DocumentLines": [
        {"LineNum": 0, "Quantity": 1.0, "UnitPrice": 10.0}, {"LineNum": 1, "Quantity": 1.0, "UnitPrice": 10.0},
        {"LineNum": 2, "Quantity": 1.0, "UnitPrice": 5.0}]}, line_map) == {}
