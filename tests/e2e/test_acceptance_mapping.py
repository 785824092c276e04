"""Acceptance (issue 5): a mapping change in git updates exactly the records whose output changed."""

from __future__ import annotations

from tests.e2e.project_fixture import po_lines, start_stack

OLD_ROW = "2711*,,613000,hand tools -> tools and consumables"
NEW_ROW = "2711*,*,612000,hand tools -> repairs and maintenance (whatever the line's own account)"


def is_hand_tool(line: dict) -> bool:
    return str(line["item"].get("commodityCode", "")).startswith("2711")


def test_a_rule_table_change_patches_exactly_the_affected_orders(tmp_path):
    with start_stack(tmp_path, seed=20) as stack:
        assert stack.run().ok
        orders = {ref: po for ref, po in ((str(po["header"]["purchaseOrderId"]), po) for po in stack.jag.purchase_orders())
                  if ref in stack.b1_docs("PurchaseOrders")}
        affected = {ref for ref, po in orders.items() if any(is_hand_tool(line) for line in po_lines(po))}
        assert affected and set(orders) - affected, "the seed has orders with and without hand tools"
        before_docs = {entity: stack.b1_docs(entity) for entity in ("PurchaseOrders", "PurchaseInvoices", "BusinessPartners")}
        before = stack.writes()

        stack.edit("mappings/rules/gl_accounts.csv", OLD_ROW, NEW_ROW)
        report = stack.run()
        after = stack.writes()

        assert report.ok and report.problems == [], report.problems
        assert (after["writes"] - before["writes"], after["PATCH"] - before["PATCH"], after["POST"] - before["POST"]) == (
            len(affected), len(affected), 0)
        assert after.get("PurchaseOrders.PATCH", 0) - before.get("PurchaseOrders.PATCH", 0) == len(affected)
        updated = {p.name: p.stats.updated for p in report.pipelines}
        assert updated == {"suppliers": 0, "purchase_orders": len(affected), "invoices": 0}

        docs = stack.b1_docs("PurchaseOrders")
        for ref in affected:
            lines = [line for line in po_lines(orders[ref]) if line.get("lineStatus") != "Cancelled"]
            old = before_docs["PurchaseOrders"][ref]["DocumentLines"]
            assert [ln["AccountCode"] for ln in docs[ref]["DocumentLines"]] == [
                "612000" if is_hand_tool(line) else was["AccountCode"] for line, was in zip(lines, old, strict=True)]
            # only the account changed: same lines, quantities and cost centres
            assert [(ln["LineNum"], ln["Quantity"], ln["CostingCode"]) for ln in docs[ref]["DocumentLines"]] == [
                (ln["LineNum"], ln["Quantity"], ln["CostingCode"]) for ln in old]
        for entity, was in before_docs.items():
            now = stack.b1_docs(entity)
            untouched = set(was) - (affected if entity == "PurchaseOrders" else set())
            assert {ref: now[ref] for ref in untouched} == {ref: was[ref] for ref in untouched}, entity

        # the ledger names the new mapping version for the updated orders; a further run writes nothing
        versions = {row["external_ref"]: row["mapping_version"] for row in stack.audit(
            "SELECT external_ref, mapping_version FROM ledger WHERE pipeline = 'purchase_orders'")}
        assert len({versions[ref] for ref in affected}) == 1
        assert {versions[ref] for ref in affected} != {versions[ref] for ref in set(orders) - affected}
        assert stack.run().writes == 0
