"""Acceptance (issue 5): bad input is set aside with a clear message naming the record (and the
mapping file and field); everything else in the run lands.

The bad records come from the JAGGAER simulator: an account SAP B1 does not know (999999), a supplier
without an ERP vendor number and one whose vendor number is longer than B1's CardCode, an over-long
line description, and malformed dates (served by wrapping the simulator's renderer for one record, as
a tenant with a broken integration would send them).
"""

from __future__ import annotations

import io

import pytest

import simulators.jaggaer.render as jaggaer_render
from tests.e2e.project_fixture import start_stack

LONG = "Replacement parts kit as per quotation, " * 6  # 240 characters; B1's ItemDescription holds 200


@pytest.fixture
def stack(tmp_path):
    with start_stack(tmp_path, seed=20) as s:
        yield s


def serve_with(monkeypatch, name: str, record_id: int, change) -> None:
    """The simulator serves record `record_id` changed by `change(rendered)` (detail reads)."""
    original = getattr(jaggaer_render, name)

    def render(obj, *args):
        out = original(obj, *args)
        if obj.id == record_id:
            change(out)
        return out

    monkeypatch.setattr(jaggaer_render, name, render)


def summary_lines(report) -> list[str]:
    """What `ml-connector run` prints after a run (the summary table and the problems)."""
    from rich.console import Console

    from engine.cli.run import print_report

    out = io.StringIO()
    print_report(report, Console(file=out, width=250))
    return out.getvalue().splitlines()


def po_ref(po: dict) -> str:
    return str(po["header"]["purchaseOrderId"])


def inv_ref(inv: dict) -> str:
    return str(inv["header"]["invoiceId"])


def test_bad_records_are_set_aside_with_a_clear_message_and_the_rest_lands(stack, monkeypatch):
    jag = stack.jag
    good_supplier = jag.suppliers()[0]["returnCompanyInfo"]["bravoId"]
    seed_orders = [po_ref(po) for po in jag.purchase_orders() if po["header"]["workflowStatus"] == "Completed"]
    seed_invoices = [inv_ref(inv) for inv in jag.invoices() if inv["header"]["invoiceType"] == "Invoice"]

    unknown_account = jag.create_purchase_order(supplier_id=good_supplier, lines=[{"quantity": 2}, {"quantity": 3, "account": "999999"}])
    unknown_account_invoice = jag.create_invoice(supplier_id=good_supplier, lines=[{"account": "999999"}])
    long_text = jag.create_purchase_order(supplier_id=good_supplier, lines=[{"quantity": 1, "description": LONG}])
    bad_day = jag.create_purchase_order(supplier_id=good_supplier, lines=[{"quantity": 1}])
    serve_with(monkeypatch, "purchase_order", bad_day["header"]["purchaseOrderId"],
               lambda po: po["lineList"]["purchaseOrderLine"][0].update(requestedDeliveryDate="2026-02-30T00:00:00.000Z"))
    bad_format = jag.create_invoice(supplier_id=good_supplier)
    serve_with(monkeypatch, "invoice", bad_format["header"]["invoiceId"],
               lambda inv: inv["header"].update(invoiceDate="11/07/2026"))
    no_vendor_number = jag.create_supplier(company_name="Ad-hoc Welding Ltd")
    legacy_number = jag.create_supplier(company_name="Legacy Castings", ext_code="V10990-LEGACY-0099")
    orphans = [jag.create_purchase_order(supplier_id=s["returnCompanyInfo"]["bravoId"], lines=[{"quantity": 1}])
               for s in (no_vendor_number, legacy_number)]
    invoice_of_bad_order = jag.create_invoice(po_id=unknown_account["header"]["purchaseOrderId"])
    unknown_supplier = jag.create_purchase_order(supplier_id=good_supplier, lines=[{"quantity": 1}])
    serve_with(monkeypatch, "purchase_order", unknown_supplier["header"]["purchaseOrderId"],
               lambda po: po["header"]["supplier"].update(id=99999, supplierNumber="V99999"))

    report = stack.run()
    assert report.aborted is None
    problems = {(p.pipeline, p.ref): p for p in report.problems}

    # everything else landed, and nothing failed in B1
    assert report.ok and stack.audit("failures") == []
    assert set(stack.b1_docs("PurchaseOrders")) == set(seed_orders)
    assert set(stack.b1_docs("PurchaseInvoices")) == set(seed_invoices)

    def reason(pipeline: str, ref: str) -> str:
        problem = problems[(pipeline, ref)]
        assert problem.status == "quarantined", (problem.status, problem.message)
        return problem.message

    # an account SAP B1 does not have: the rule table, the value, the mapping file and line, the record
    for pipeline, mapping, ref in (("purchase_orders", "purchase_order.yaml:", po_ref(unknown_account)),
                                   ("invoices", "invoice.yaml:", inv_ref(unknown_account_invoice))):
        message = reason(pipeline, ref)
        assert all(part in message for part in (mapping, "gl_accounts", "'999999'", f"record {ref}", "ChartOfAccounts")), message
    # an over-long string (the mapping says on_overflow: fail)
    message = reason("purchase_orders", po_ref(long_text))
    assert all(part in message for part in ("purchase_order.yaml:", "ItemDescription", f"record {po_ref(long_text)}",
                                            "240 characters", "200", "on_overflow")), message
    message = reason("suppliers", str(legacy_number["returnCompanyInfo"]["bravoId"]))
    assert all(part in message for part in ("supplier.yaml:", "CardCode", "V10990-LEGACY-0099", "15")), message
    # a date that is no calendar date (mapping stage), and one in the wrong format (schema check at extraction)
    message = reason("purchase_orders", po_ref(bad_day))
    assert all(part in message for part in ("purchase_order.yaml:", f"record {po_ref(bad_day)}", "2026-02-30",
                                            "not a valid calendar date")), message
    [extract_entry] = [q for q in stack.audit("quarantine") if q["stage"] == "validate"]
    assert (extract_entry["pipeline"], extract_entry["record_key"]) == ("invoices", inv_ref(bad_format))
    assert "header.invoiceDate" in extract_entry["reason"] and "11/07/2026" in extract_entry["reason"]
    # ... and the run report names it too, counted per pipeline, as does `ml-connector run`'s summary
    message = reason("invoices", inv_ref(bad_format))
    assert problems[("invoices", inv_ref(bad_format))].code == "validate" and message == extract_entry["reason"]
    assert report.extract_quarantined == {"invoices": 1}
    summary = summary_lines(report)
    assert any(line.startswith("│ invoices ") and line.split("│")[3].strip() == "1" for line in summary), summary
    assert any(f"quarantined invoices {inv_ref(bad_format)} [validate]: " in line for line in summary), summary
    # orders naming a supplier that is not in SAP B1 and is not coming: quarantined, naming the supplier and why
    for order, supplier, why in ((orphans[0], no_vendor_number, "no ERP vendor number"),
                                 (orphans[1], legacy_number, "longer than SAP B1's 15")):
        message = reason("purchase_orders", po_ref(order))
        assert f"suppliers '{supplier['returnCompanyInfo']['bravoId']}'" in message and why in message, message

    # an invoice of an order that was quarantined: quarantined too, naming the order and why
    message = reason("invoices", inv_ref(invoice_of_bad_order))
    assert f"purchase_orders '{unknown_account['header']['poNumber']}'" in message and "'999999'" in message, message
    # an order naming a supplier JAGGAER does not list (yet): it waits, named in the report and `audit waiting`
    waiting = problems[("purchase_orders", po_ref(unknown_supplier))]
    assert waiting.status == "waiting" and "suppliers '99999'" in waiting.message
    assert [(w["pipeline"], w["external_ref"]) for w in stack.audit("waiting")] == [("purchase_orders", po_ref(unknown_supplier))]

    # `ml-connector audit quarantine` lists exactly the bad records
    assert {(q["pipeline"], q["record_key"]) for q in stack.audit("quarantine")} == {
        ("purchase_orders", po_ref(po)) for po in (unknown_account, long_text, bad_day, *orphans)} | {
        ("invoices", inv_ref(unknown_account_invoice)), ("invoices", inv_ref(bad_format)),
        ("invoices", inv_ref(invoice_of_bad_order)), ("suppliers", str(legacy_number["returnCompanyInfo"]["bravoId"]))}

    # fix causes: the supplier gets its vendor number; the mapping chooses to truncate over-long text
    jag.change_supplier(no_vendor_number["returnCompanyInfo"]["bravoId"], ext_code="V10980")
    stack.edit("mappings/purchase_order.yaml", "on_overflow: fail", "on_overflow: truncate")
    again = stack.run()
    assert again.ok
    orders = stack.b1_docs("PurchaseOrders")
    assert orders[po_ref(orphans[0])]["CardCode"] == "V10980"
    assert orders[po_ref(long_text)]["DocumentLines"][0]["ItemDescription"] == LONG[:200]
    assert po_ref(orphans[1]) not in orders and po_ref(unknown_account) not in orders
    still = {(q["pipeline"], q["record_key"]) for q in stack.audit("quarantine")}
    assert ("purchase_orders", po_ref(long_text)) not in still and ("purchase_orders", po_ref(orphans[0])) not in still
    assert ("purchase_orders", po_ref(orphans[1])) in still


def test_a_dirty_tenant_lands_every_clean_record_and_names_every_bad_one(tmp_path):
    """JAGGAER's data-quality warts (accounts B1 lacks, legacy vendor numbers, long descriptions) on a
    fifth of the generated lines and suppliers: nothing fails in B1, every record lands or is reported."""
    with start_stack(tmp_path, seed=30, dirty_data_rate=0.2) as stack:
        report = stack.run()
        assert report.ok and stack.audit("failures") == []
        problems = {(p.pipeline, p.ref): p for p in report.problems}
        assert {p.status for p in problems.values()} == {"quarantined"}
        for (_, ref), problem in problems.items():
            assert f"record {ref}:" in problem.message, problem.message
        messages = " ".join(p.message for p in problems.values())
        assert all(wart in messages for wart in ("'999999'", "-LEGACY-", "ItemDescription")), "every kind of wart was met"

        landed = {"purchase_orders": stack.b1_docs("PurchaseOrders"), "invoices": stack.b1_docs("PurchaseInvoices")}
        sources = {"purchase_orders": {po_ref(po) for po in stack.jag.purchase_orders()
                                       if po["header"]["workflowStatus"] == "Completed" and po["header"]["poStatus"] != "Cancelled"},
                   "invoices": {inv_ref(inv) for inv in stack.jag.invoices() if inv["header"]["invoiceType"] == "Invoice"}}
        for pipeline, refs in sources.items():
            held = {ref for (p, ref) in problems if p == pipeline}
            assert landed[pipeline].keys() | held == refs and not landed[pipeline].keys() & held, pipeline


def test_a_bad_change_to_a_synced_order_is_held_back_then_lands_as_one_patch_once_fixed(stack):
    jag = stack.jag
    assert stack.run().ok
    po = next(po for po in jag.purchase_orders() if po["header"]["workflowStatus"] == "Completed")
    ref, line = po_ref(po), po["lineList"]["purchaseOrderLine"][0]
    in_b1 = stack.b1_docs("PurchaseOrders")[ref]
    jag.change_purchase_order(int(ref), lines=[{"lineNumber": line["lineNumber"], "account": "999999",
                                                "quantity": float(line["quantity"]) + 1}])
    before = stack.writes()
    report = stack.run()
    [problem] = report.problems
    assert (problem.ref, problem.status) == (ref, "quarantined") and "'999999'" in problem.message
    assert stack.writes() == before and stack.b1_docs("PurchaseOrders")[ref] == in_b1  # B1 keeps the last good version
    assert [q["record_key"] for q in stack.audit("quarantine")] == [ref]

    jag.change_purchase_order(int(ref), lines=[{"lineNumber": line["lineNumber"], "account": "612000"}])
    report = stack.run()
    after = stack.writes()
    assert report.ok and report.problems == []
    assert (after["writes"] - before["writes"], after["PurchaseOrders.PATCH"] - before.get("PurchaseOrders.PATCH", 0)) == (1, 1)
    fixed = stack.b1_docs("PurchaseOrders")[ref]["DocumentLines"][0]
    assert (fixed["Quantity"], fixed["AccountCode"]) == (float(line["quantity"]) + 1, "612000")
    assert stack.audit("quarantine") == []
