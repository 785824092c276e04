"""Acceptance (issue 5): a mapping change in git updates exactly the records whose output changed."""

from __future__ import annotations

import json

from tests.e2e.project_fixture import po_lines, start_stack

OLD_ROW = "2711*,,613000,hand tools -> tools and consumables"
NEW_ROW = "2711*,*,612000,hand tools -> repairs and maintenance (whatever the line's own account)"


def is_hand_tool(line: dict) -> bool:
    return str(line["item"].get("commodityCode", "")).startswith("2711")


def test_a_rule_table_change_patches_exactly_the_affected_orders(tmp_path):
    """Orders still open in B1 take the new account in one PATCH each; an order B1 has closed (fully
    invoiced) keeps its posted account: the change is reported as not applied, not failed, not re-sent."""
    with start_stack(tmp_path, seed=20) as stack:
        assert stack.run().ok
        orders = {ref: po for ref, po in ((str(po["header"]["purchaseOrderId"]), po) for po in stack.jag.purchase_orders())
                  if ref in stack.b1_docs("PurchaseOrders")}
        affected = {ref for ref, po in orders.items() if any(is_hand_tool(line) for line in po_lines(po))}
        assert affected and set(orders) - affected, "the seed has orders with and without hand tools"
        before_docs = {entity: stack.b1_docs(entity) for entity in ("PurchaseOrders", "PurchaseInvoices", "BusinessPartners")}
        # where a hand-tool line sits in B1: on an open row of an open order (B1 takes the change) or on
        # closed ground (a closed order, or a row fully invoiced: B1 keeps it)
        patched, closed = set(), set()
        for ref in affected:
            doc = before_docs["PurchaseOrders"][ref]
            for line, row in zip(open_lines(orders[ref]), doc["DocumentLines"], strict=True):
                if is_hand_tool(line):
                    done = doc["DocumentStatus"] != "bost_Open" or row["LineStatus"] != "bost_Open"
                    (closed if done else patched).add(ref)
        assert patched and closed, "the seed has affected orders both open and closed in B1"
        before = stack.writes()

        stack.edit("mappings/rules/gl_accounts.csv", OLD_ROW, NEW_ROW)
        report = stack.run()
        after = stack.writes()

        assert report.ok, report.problems
        assert {(p.pipeline, p.ref, p.status, p.code) for p in report.problems} == {
            ("purchase_orders", ref, "not_applied", "-10") for ref in closed}
        assert all("closed in SAP B1; change not applied" in p.message for p in report.problems)
        assert (after["writes"] - before["writes"], after["PATCH"] - before["PATCH"], after["POST"] - before["POST"]) == (
            len(patched), len(patched), 0)
        assert after.get("PurchaseOrders.PATCH", 0) - before.get("PurchaseOrders.PATCH", 0) == len(patched)
        updated = {p.name: (p.stats.updated, p.stats.not_applied) for p in report.pipelines}
        assert updated == {"suppliers": (0, 0), "purchase_orders": (len(patched - closed), len(closed)), "invoices": (0, 0),
                           "suppliers_to_jaggaer": (0, 0)}  # the supplier write-back: nothing changed in B1

        docs = stack.b1_docs("PurchaseOrders")
        for ref in patched:
            old = before_docs["PurchaseOrders"][ref]["DocumentLines"]
            assert [ln["AccountCode"] for ln in docs[ref]["DocumentLines"]] == [
                "612000" if is_hand_tool(line) and was["LineStatus"] == "bost_Open" else was["AccountCode"]
                for line, was in zip(open_lines(orders[ref]), old, strict=True)]
            # only the account changed: same lines, quantities and cost centres
            assert [(ln["LineNum"], ln["Quantity"], ln["CostingCode"]) for ln in docs[ref]["DocumentLines"]] == [
                (ln["LineNum"], ln["Quantity"], ln["CostingCode"]) for ln in old]
        for entity, was in before_docs.items():
            now = stack.b1_docs(entity)
            untouched = set(was) - (patched if entity == "PurchaseOrders" else set())
            assert {ref: now[ref] for ref in untouched} == {ref: was[ref] for ref in untouched}, entity

        # the ledger names the new mapping version for the updated orders, and keeps what B1 holds for the
        # closed ones (their posted account), marked not applied with B1's answer
        rows = {row["external_ref"]: row for row in stack.audit(
            "SELECT external_ref, mapping_version, status, payload FROM ledger WHERE pipeline = 'purchase_orders'")}
        versions = {ref: row["mapping_version"] for ref, row in rows.items()}
        assert len({versions[ref] for ref in patched}) == 1
        assert {versions[ref] for ref in patched} != {versions[ref] for ref in set(orders) - patched}
        assert {ref for ref, row in rows.items() if row["status"] == "not_applied"} == closed
        for ref in closed:
            held = json.loads(rows[ref]["payload"])["DocumentLines"]
            assert [line["AccountCode"] for line in held] == [
                ln["AccountCode"] for ln in before_docs["PurchaseOrders"][ref]["DocumentLines"]]
        assert {row["external_ref"] for row in stack.audit("not-applied")} == closed
        events = stack.audit("SELECT external_ref, http_status, b1_code FROM events WHERE outcome = 'not_applied'")
        assert sorted((e["external_ref"], e["http_status"], e["b1_code"]) for e in events) == sorted(
            (ref, 400, "-10") for ref in closed)

        # a further run writes nothing and reports nothing: the refused change is not re-sent
        again = stack.run()
        assert again.writes == 0 and again.problems == []


def open_lines(po: dict) -> list[dict]:
    """The J1P lines sent to B1 (cancelled lines are not), in B1's line order."""
    return [line for line in po_lines(po) if line.get("lineStatus") != "Cancelled"]
