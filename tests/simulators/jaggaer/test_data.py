"""Generated data: validates against the JSON Schemas, keeps the §8 relations, uses the shared code lists."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import jsonschema
import pytest

from simulators.jaggaer import JaggaerApp, SimClock, start_simulator
from simulators.jaggaer.catalog import ACCOUNTS, COMMODITIES, COST_CENTRES, UNKNOWN_ACCOUNT
from tests.simulators.jaggaer.conftest import COMPANY_PATH, INVOICE_PATH, PO_PATH

SCHEMAS = Path(__file__).resolve().parents[3] / "schemas" / "jaggaer"


def validator(name: str) -> jsonschema.Draft202012Validator:
    schema = json.loads((SCHEMAS / name).read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def assert_valid(name: str, records: list[dict]) -> None:
    check = validator(name)
    assert records
    for record in records:
        errors = sorted(check.iter_errors(record), key=lambda e: list(e.absolute_path))
        assert not errors, f"{name}: {[(list(e.absolute_path), e.message) for e in errors[:3]]}"


def test_every_record_validates_against_its_schema(sim, api):
    assert_valid("purchase-order.schema.json", sim.purchase_orders())
    assert_valid("invoice.schema.json", sim.invoices())
    assert_valid("purchase-order-list-item.schema.json", api.walk(PO_PATH, ("jepurchaseorderList", "jepurchaseorder"))[0])
    assert_valid("invoice-list-item.schema.json", api.walk(INVOICE_PATH, ("jiinvoiceList", "jiinvoice"))[0])
    for comp in ("", "USER", "USER;SSO_CODE"):
        assert_valid("company-profile.schema.json", api.walk(COMPANY_PATH, ("returnCompanyData",), comp=comp)[0])


def test_schemas_refuse_keys_beyond_the_reference(sim):
    record = sim.invoices()[0]
    record["header"]["surprise"] = 1
    assert list(validator("invoice.schema.json").iter_errors(record))
    po = sim.purchase_orders()[0]
    del po["header"]["poNumber"]
    assert list(validator("purchase-order.schema.json").iter_errors(po))


def test_data_covers_the_shapes_the_engine_must_handle(sim):
    invoices = [inv["header"] for inv in sim.invoices()]
    lines = [line for inv in sim.invoices() for line in inv["lineList"]["invoiceLine"]]
    assert {h["invoiceType"] for h in invoices} == {"Invoice", "Credit memo"}
    assert {h["invoiceLineType"] for h in invoices} == {"PO", "Non-PO"}
    assert any(line.get("poNumber") is None for line in lines) and any(line.get("poNumber") for line in lines)
    assert any(line["toleranceStatus"] != "Exact" for line in lines)  # price variances
    assert any(line.get("poMatchStatus") == "Partially Matched" for line in lines)  # partial quantities
    po_lines = [line for po in sim.purchase_orders() for line in po["lineList"]["purchaseOrderLine"]]
    split = [line for line in po_lines
             if len(line["splittableFieldSetGroupList"]["splittableFieldSetGroup"][0]["splittableFieldIndexSet"][0][
                 "splittableFieldIndexList"]["splittableFieldIndex"]) > 1]
    assert split, "some lines split their accounting"
    assert {po["header"]["poStatus"] for po in sim.purchase_orders()} >= {"Open", "Closed"}


def _segments(line: dict) -> list[dict]:
    out = []
    for group in line["splittableFieldSetGroupList"]["splittableFieldSetGroup"]:
        for index_set in group["splittableFieldIndexSet"]:
            for index in index_set["splittableFieldIndexList"]["splittableFieldIndex"]:
                out.append({v["internalName"]: v.get("value") for v in index["customFieldValueList"]["customFieldValue"]})
    return out


def test_relations_and_code_lists(sim):
    suppliers = {int(s["returnCompanyInfo"]["bravoId"]): s["returnCompanyInfo"] for s in sim.suppliers()}
    orders = {po["header"]["poNumber"]: po for po in sim.purchase_orders()}
    for po in orders.values():
        header = po["header"]
        assert suppliers[header["supplier"]["id"]]["extCode"] == header["supplier"]["supplierNumber"]
        assert len(header["supplier"]["supplierNumber"]) <= 15
        lines = po["lineList"]["purchaseOrderLine"]
        assert round(sum(line["extendedPrice"] for line in lines if line["lineStatus"] != "Cancelled"), 2) == header["subtotal"]["value"]
        for line in lines:
            account = COMMODITIES[line["item"]["commodityCode"]].account
            for seg in _segments(line):
                assert seg["Account"] == account and seg["CostCenter"] in COST_CENTRES
    invoiced: dict[tuple[str, str], float] = defaultdict(float)
    for inv in sim.invoices():
        header = inv["header"]
        assert suppliers[header["supplier"]["id"]]["extCode"] == header["supplier"]["supplierNumber"]
        credit = header["invoiceType"] == "Credit memo"
        for line in inv["lineList"]["invoiceLine"]:
            assert (line["quantity"] < 0) == credit
            assert all(seg["Account"] in ACCOUNTS for seg in _segments(line))
            if "poNumber" not in line:
                assert "poLineNumber" not in line
                continue
            po = orders[line["poNumber"]]
            assert header["invoiceCreateDate"] >= po["header"]["orderDate"]
            if "total" in header:
                assert header["total"]["currency"] == po["header"]["currency"]
            po_line = next(pl for pl in po["lineList"]["purchaseOrderLine"] if str(pl["lineNumber"]) == line["poLineNumber"])
            if not credit:
                invoiced[(line["poNumber"], line["poLineNumber"])] += line["quantity"]
                assert invoiced[(line["poNumber"], line["poLineNumber"])] <= po_line["quantity"] + 1e-9
                assert (line["unitPrice"] == po_line["unitPrice"]) == (line["toleranceStatus"] == "Exact")


def test_same_random_seed_same_data():
    def build() -> JaggaerApp:
        clock = SimClock()
        clock.freeze()
        clock._frozen_ms = 1_716_000_000_000  # a fixed instant
        app = JaggaerApp(clock=clock)
        app.add_tenant("demo", "id", "secret", seed=40, random_seed=99)
        return app

    from simulators.jaggaer import render

    first, second = build(), build()
    render_all = lambda app: [render.purchase_order(po) for po in app.tenant().store.orders.ordered] + [  # noqa: E731
        render.invoice(inv, "demo") for inv in app.tenant().store.invoices.ordered]
    assert render_all(first) == render_all(second)


@pytest.mark.parametrize("rate", [0.5])
def test_dirty_data_knob_adds_warts_that_still_fit_the_schemas(rate):
    with start_simulator(seed=200, random_seed=5, dirty_data_rate=rate) as sim:
        orders, invoices = sim.purchase_orders(), sim.invoices()
        assert_valid("purchase-order.schema.json", orders)
        assert_valid("invoice.schema.json", invoices)
        lines = [line for po in orders for line in po["lineList"]["purchaseOrderLine"]]
        assert any(seg["Account"] == UNKNOWN_ACCOUNT[0] for line in lines for seg in _segments(line))
        assert any(len(line["item"]["description"]) > 200 for line in lines)
        assert any(len(s["returnCompanyInfo"]["extCode"]) > 15 for s in sim.suppliers())
    with start_simulator(seed=80, random_seed=5) as clean:
        lines = [line for po in clean.purchase_orders() for line in po["lineList"]["purchaseOrderLine"]]
        assert all(seg["Account"] in ACCOUNTS for line in lines for seg in _segments(line))
