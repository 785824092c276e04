"""Data changes (Python API and `/_sim` HTTP), counters, state file and CLI flags."""

from __future__ import annotations

import argparse

import httpx
import pytest

from simulators.jaggaer import build_app, ops
from simulators.jaggaer.cli import KNOB_FLAGS, add_arguments
from simulators.jaggaer.state import load_state, save_state
from tests.simulators.jaggaer.conftest import PO_PATH, api_for


def test_change_order_makes_a_revision_and_moves_the_stamp(fresh):
    po = fresh.purchase_orders()[0]
    po_id = po["header"]["purchaseOrderId"]
    fresh.clock.advance(10)
    changed = fresh.change_purchase_order(po_id, lines=[{"lineNumber": 1, "quantity": 999, "cost_center": "QA"}],
                                          add_lines=[{"commodityCode": "44121600", "quantity": 3, "unitPrice": 9.5}])
    header = changed["header"]
    assert header["revisionNumber"] == po["header"]["revisionNumber"] + 1
    assert header["lastUpdate"] > po["header"]["lastUpdate"]
    lines = changed["lineList"]["purchaseOrderLine"]
    assert lines[0]["quantity"] == 999 and lines[-1]["lineNumber"] == len(po["lineList"]["purchaseOrderLine"]) + 1
    assert lines[-1]["extendedPrice"] == 28.5
    assert {seg["value"] for seg in lines[0]["splittableFieldSetGroupList"]["splittableFieldSetGroup"][0][
        "splittableFieldIndexSet"][0]["splittableFieldIndexList"]["splittableFieldIndex"][0]["customFieldValueList"][
        "customFieldValue"] if seg["internalName"] == "CostCenter"} == {"QA"}
    approved = fresh.change_purchase_order(po_id, workflow_status="Completed")
    assert approved["header"]["revisionNumber"] == header["revisionNumber"]
    with pytest.raises(ops.InvalidField):
        fresh.change_purchase_order(po_id, colour="red")
    with pytest.raises(ops.NotFound):
        fresh.change_purchase_order(1)


def test_close_and_cancel(fresh):
    ids = [po["header"]["purchaseOrderId"] for po in fresh.purchase_orders() if po["header"]["poStatus"] == "Open"]
    cancelled = fresh.cancel_purchase_order(ids[0])
    assert cancelled["header"]["poStatus"] == "Cancelled"
    assert {line["lineStatus"] for line in cancelled["lineList"]["purchaseOrderLine"]} == {"Cancelled"}
    assert cancelled["header"]["total"]["value"] == cancelled["header"]["shippingCharge"]
    closed = fresh.close_purchase_order(ids[1])
    assert closed["header"]["poStatus"] == "Closed"
    assert fresh.close_purchase_order(ids[1])["header"]["lastUpdate"] == closed["header"]["lastUpdate"]


def test_invoices_against_orders_and_without(fresh):
    po = fresh.create_purchase_order(lines=[{"commodityCode": "31160000", "quantity": 10, "unitPrice": 2.5},
                                            {"commodityCode": "27110000", "quantity": 4, "unitPrice": 100}])
    po_id, number = po["header"]["purchaseOrderId"], po["header"]["poNumber"]
    partial = fresh.create_invoice(po_id=po_id, lines=[{"poLineNumber": 1, "quantity": 4}])
    assert [(line["poNumber"], line["poLineNumber"], line["quantity"]) for line in partial["lineList"]["invoiceLine"]] == [(number, "1", 4)]
    rest = fresh.create_invoice(po_id=po_id)  # the uninvoiced remainder
    assert [(line["poLineNumber"], line["quantity"]) for line in rest["lineList"]["invoiceLine"]] == [("1", 6), ("2", 4)]
    variance = fresh.create_invoice(po_id=po_id, lines=[{"poLineNumber": 2, "quantity": 1, "unitPrice": 110}])
    assert variance["header"]["matchStatus"] == "Unmatched"
    credit = fresh.create_invoice(po_id=po_id, invoice_type="Credit memo", lines=[{"poLineNumber": 1, "quantity": 2}])
    assert credit["header"]["total"]["value"] < 0
    non_po = fresh.create_invoice(supplier_id=po["header"]["supplier"]["id"], lines=[{"quantity": 2, "unitPrice": 50}])
    assert non_po["header"]["invoiceLineType"] == "Non-PO" and non_po["header"]["nonPOInvoice"] == "true"
    changed = fresh.change_invoice(non_po["header"]["invoiceId"], workflow_status="Pending", payment_status="InProcess")
    assert changed["header"]["workflowStatus"] == "Pending"
    assert changed["header"]["lastUpdate"] >= non_po["header"]["lastUpdate"]


def test_admin_http_endpoints(fresh):
    base = fresh.base_url
    assert httpx.patch(f"{base}/_sim/knobs", json={"page_size": 7}).json()["page_size"] == 7
    assert httpx.patch(f"{base}/_sim/knobs", json={"nope": 1}).status_code == 400
    assert httpx.patch(f"{base}/_sim/knobs", json={"returncode_type": "x"}).status_code == 400
    api = api_for(fresh)
    assert api.get(PO_PATH).json()["returnedRecords"] == 7
    frozen = httpx.post(f"{base}/_sim/clock", json={"action": "freeze", "at": "2030-01-01T00:00:00Z"}).json()
    assert frozen == {"now": "2030-01-01T00:00:00.000Z", "frozen": True, "offsetMs": 0}
    assert httpx.post(f"{base}/_sim/clock", json={"action": "advance", "seconds": 90}).json()["now"] == "2030-01-01T00:01:30.000Z"
    created = httpx.post(f"{base}/_sim/purchaseorders", json={"n_lines": 2, "workflowStatus": "Pending"})
    assert created.status_code == 201 and created.json()["header"]["lastUpdate"] == "2030-01-01T00:01:30.000Z"
    po_id = created.json()["header"]["purchaseOrderId"]
    patched = httpx.patch(f"{base}/_sim/purchaseorders/{po_id}", json={"workflowStatus": "Completed"}).json()
    assert patched["header"]["workflowStatus"] == "Completed"
    assert httpx.post(f"{base}/_sim/purchaseorders/{po_id}/cancel").json()["header"]["poStatus"] == "Cancelled"
    invoice = httpx.post(f"{base}/_sim/invoices", json={"poId": po_id}).json()
    assert invoice["lineList"]["invoiceLine"][0]["poNumber"] == patched["header"]["poNumber"]
    bravo_id = fresh.suppliers()[0]["returnCompanyInfo"]["bravoId"]
    supplier = httpx.patch(f"{base}/_sim/companyprofiles/{bravo_id}", json={"status": "INACTIVE"}).json()
    assert supplier["returnCompanyInfo"]["status"] == "INACTIVE"
    assert httpx.patch(f"{base}/_sim/purchaseorders/1", json={}).status_code == 404
    assert httpx.patch(f"{base}/_sim/companyprofiles/{bravo_id}", json={"isoCountry": "x"}).status_code == 400
    tenant = httpx.post(f"{base}/_sim/tenants", json={"name": "beta", "client_id": "b", "client_secret": "s", "seed": 3})
    assert tenant.status_code == 201
    assert len(httpx.post(f"{base}/_sim/tenants/beta/purchaseorders", json={}).json()["lineList"]["purchaseOrderLine"]) >= 1
    counters = httpx.get(f"{base}/_sim/counters").json()
    assert counters["purchaseorders.list"] == 1 and counters["token"] >= 1
    fresh.clock.unfreeze()
    api.close()


def test_state_file_round_trip(tmp_path):
    app = build_app(seed=12, random_seed=4)
    app.add_tenant("other", "o", "s", seed=2)
    path = tmp_path / "jaggaer.state"
    save_state(app, path)
    loaded = build_app(seed=0)
    assert load_state(loaded, path)
    assert len(loaded.tenant().store.orders) == 12 and len(loaded.tenant("other").store.orders) == 2
    assert loaded.tenant().store.clock is loaded.clock
    assert not load_state(loaded, tmp_path / "missing")


def test_cli_flags_map_onto_knobs():
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args([
        "--port", "0", "--seed", "5", "--rate-limit", "10", "--retry-after", "0",
        "--returncode-type", "mixed", "--history-days", "2", "--page-size", "25", "--error-rate", "0.1",
    ])
    assert args.seed == 5 and args.random_seed == 7
    app = build_app(args.seed, args.random_seed, args.history_days, args.tenant, args.client_id, args.client_secret,
                    **{name: getattr(args, name) for name in KNOB_FLAGS})
    assert (app.knobs.rate_limit, app.knobs.retry_after, app.knobs.returncode_type) == (10, 0, "mixed")
    assert app.knobs.page_size == 25 and app.knobs.error_rate == 0.1
