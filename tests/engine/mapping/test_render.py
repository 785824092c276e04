"""Rendering: native types, for-each lines, filters, strict undefined, lengths, schema errors, lookups."""

from __future__ import annotations

import pytest

from engine.errors import ConfigError
from engine.mapping import Lookups, load_mapping, strip_reserved

PO = """
target: PurchaseOrders
on_overflow: {overflow}
external_ref: {{field: U_JaggaerRef, value: h.purchaseOrderId | string}}
crosswalk: {{type: purchase_orders, key: h.poNumber}}
wait_unless:
  "h.workflowStatus == 'Completed'": "not approved yet"
let:
  h: record.header
fields:
  CardCode: crosswalk('suppliers', h.supplier.id)
  NumAtCard: h.poNumber
  DocType: "'dDocument_Service'"
  DocDate: h.orderDate | b1_date
  Series: 7
  Comments: h | dig('note')
  DocumentLines:
    for_each: record.lines
    as: line
    key: line.lineNumber
    fields:
      ItemDescription: line.description
      Quantity: line.quantity | decimal
      UnitPrice: line.unitPrice
      AccountCode: line.account | default('650000')
"""


def record(**header):
    h = {"purchaseOrderId": 3120457, "poNumber": "0000000412", "workflowStatus": "Completed",
         "orderDate": "2024-05-02T00:00:00.000Z", "supplier": {"id": 20417}}
    h.update(header)
    return {"header": h, "lines": [
        {"lineNumber": 1, "description": "Brake pad set", "quantity": 10, "unitPrice": 12.4, "account": "612000"},
        {"lineNumber": 2, "description": "Shaft seal", "quantity": "40", "unitPrice": 0.85},
    ]}


LOOKUPS = Lookups(crosswalk={"suppliers": {"20417": "V10020"}})


@pytest.fixture
def po(project):
    return load_mapping(project.mapping("purchase_order", PO.format(overflow="fail")))


def test_renders_native_types_lines_and_reserved_keys(po):
    result = po.render(record(), "3120457", lookups=LOOKUPS)
    assert result.status == "ok", result.reason
    p = result.payload
    assert p["CardCode"] == "V10020" and p["DocDate"] == "2024-05-02T00:00:00Z"
    assert p["Series"] == 7 and "Comments" not in p  # constants kept, None left out
    assert p["U_JaggaerRef"] == "3120457" and result.external_ref == "3120457"
    assert result.crosswalk_key == "0000000412"
    first, second = p["DocumentLines"]
    assert first == {"ItemDescription": "Brake pad set", "Quantity": 10.0, "UnitPrice": 12.4,
                     "AccountCode": "612000", "_key": "1"}
    assert second["Quantity"] == 40.0 and isinstance(second["Quantity"], float)  # numeric string -> number
    assert second["AccountCode"] == "650000"  # explicit default for an optional source field
    assert "_key" not in strip_reserved(p)["DocumentLines"][0]
    assert result.mapping_version == po.version and len(po.version) == 12


def test_v1_dates(project):
    m = load_mapping(project.mapping("purchase_order", PO.format(overflow="fail")), api_version="v1")
    assert m.render(record(), "1", lookups=LOOKUPS).payload["DocDate"] == "2024-05-02"


def test_missing_source_field_quarantines_naming_file_line_field_and_record(po):
    rec = record()
    del rec["lines"][1]["description"]
    result = po.render(rec, "3120457", lookups=LOOKUPS)
    assert result.status == "quarantine"
    assert result.reason.startswith("purchase_order.yaml:21: DocumentLines[line 2].ItemDescription: record 3120457:")
    assert "description" in result.reason and "default" in result.reason


def test_missing_intermediate_object_is_located(po):
    rec = record()
    del rec["header"]["supplier"]
    result = po.render(rec, "9", lookups=LOOKUPS)
    assert result.status == "quarantine"
    assert "CardCode: record 9:" in result.reason and "supplier" in result.reason


def test_malformed_date_quarantines(po):
    result = po.render(record(orderDate="02/05/2024"), "5", lookups=LOOKUPS)
    assert result.status == "quarantine"
    assert "DocDate: record 5: '02/05/2024' is not a date" in result.reason


def test_non_numeric_quantity_quarantines(po):
    rec = record()
    rec["lines"][0]["quantity"] = "ten"
    result = po.render(rec, "5", lookups=LOOKUPS)
    assert result.status == "quarantine" and "DocumentLines[line 1].Quantity" in result.reason
    assert "'ten' is not a number" in result.reason


def test_supplier_not_synced_waits_and_condition_waits(po):
    assert po.render(record(supplier={"id": 1}), "5", lookups=LOOKUPS).status == "wait"
    result = po.render(record(supplier={"id": 1}), "5", lookups=LOOKUPS)
    assert "suppliers '1'" in result.reason
    pending = po.render(record(workflowStatus="Pending"), "5", lookups=LOOKUPS)
    assert (pending.status, pending.reason) == ("wait", "not approved yet")


def test_overlong_string_fails_or_truncates_per_mapping(project):
    long_text = "x" * 150
    fail = load_mapping(project.mapping("po_fail", PO.format(overflow="fail")))
    result = fail.render(record(poNumber=long_text), "5", lookups=LOOKUPS)
    assert result.status == "quarantine"
    assert "NumAtCard: record 5: value is 150 characters, longer than SAP B1's 100" in result.reason
    cut = load_mapping(project.mapping("po_cut", PO.format(overflow="truncate")))
    assert cut.render(record(poNumber=long_text), "5", lookups=LOOKUPS).payload["NumAtCard"] == "x" * 100


def test_schema_violation_names_field(project):
    path = project.mapping("bp", """
        target: BusinessPartners
        fields:
          CardCode: "'V1'"
          CardType: "'supplier'"
    """)
    result = load_mapping(path).render({}, "k1")
    assert result.status == "quarantine"
    assert result.reason.startswith("bp.yaml:4: CardType: record k1:") and "must be one of" in result.reason


def test_skip_and_explicit_reject(project):
    path = project.mapping("bp", """
        target: BusinessPartners
        skip_unless:
          "record.kind == 'SELLER'": "not a supplier"
        fields:
          CardCode: "record.code if record.code else reject('no vendor number')"
    """)
    m = load_mapping(path)
    assert m.render({"kind": "BUYER"}, "1").status == "skip"
    rejected = m.render({"kind": "SELLER", "code": ""}, "2")
    assert rejected.status == "quarantine" and "CardCode: record 2: no vendor number" in rejected.reason


def test_sandbox_blocks_unsafe_access(project):
    path = project.mapping("bp", """
        target: BusinessPartners
        fields:
          CardCode: record.__class__.__mro__
    """)
    result = load_mapping(path).render({}, "1")
    assert result.status == "quarantine"


def test_invalid_mapping_raises_config_error_with_location(project):
    path = project.mapping("bad", """
        target: PurchaseOrders
        fields:
          CardCod: record.x
    """)
    with pytest.raises(ConfigError, match=r"bad.yaml:3: CardCod: 'CardCod' is not a writable property"):
        load_mapping(path)


def test_accounting_split_helpers(project):
    project.rules("co", """
        split,cost_center,CostingCode
        PLANT1:60|PLANT2:40,*,PLANTS
        *,*,{cost_center}
    """)
    path = project.mapping("po", """
        target: PurchaseOrders
        fields:
          DocumentLines:
            for_each: record.lines
            as: line
            let:
              split: line | primary_split
            fields:
              ItemDescription: "'x'"
              AccountCode: split.Account
              CostingCode: rule('co', split=line | cost_split, cost_center=split.CostCenter).CostingCode
              TaxCode: line | custom_field('TaxCode')
    """)

    def segs(account, cc):
        return {"customFieldValueList": {"customFieldValue": [
            {"internalName": "Account", "value": account}, {"internalName": "CostCenter", "value": cc}]}}

    split_line = {"splittableFieldSetGroupList": {"splittableFieldSetGroup": [{"splittableFieldIndexSet": [{
        "splittableFieldIndexList": {"splittableFieldIndex": [
            {"splitIndex": 0, "distributionValue": 40, **segs("612000", "PLANT2")},
            {"splitIndex": 1, "distributionValue": 60, **segs("612000", "PLANT1")}]}}]}]},
        "customFieldValueSetList": {"customFieldValueSet": [
            {"name": "TaxCode", "customFieldValueList": {"customFieldValue": [{"value": "EX"}]}}]}}
    single = {"splittableFieldSetGroupList": {"splittableFieldSetGroup": [{"splittableFieldIndexSet": [{
        "splittableFieldIndexList": {"splittableFieldIndex": [segs("510000", "QA")]}}]}]}}
    lines = load_mapping(path).render({"lines": [split_line, single]}, "1").payload["DocumentLines"]
    assert lines[0] == {"ItemDescription": "x", "AccountCode": "612000", "CostingCode": "PLANTS", "TaxCode": "EX"}
    assert lines[1] == {"ItemDescription": "x", "AccountCode": "510000", "CostingCode": "QA"}


def test_base_document_waits_for_the_po_then_links(project):
    path = project.mapping("inv", """
        target: PurchaseInvoices
        fields:
          DocumentLines:
            for_each: record.lines
            as: line
            key: line.lineNumber
            fields:
              _base: base_document(line.poNumber, line.poLineNumber)
              Quantity: line.quantity
    """)
    m = load_mapping(path)
    rec = {"lines": [{"lineNumber": 1, "poNumber": "0000000412", "poLineNumber": "2", "quantity": 3}]}
    waiting = m.render(rec, "1", lookups=Lookups())
    assert waiting.status == "wait" and "purchase order 0000000412" in waiting.reason
    linked = m.render(rec, "1", lookups=Lookups(crosswalk={"purchase_orders": {
        "0000000412": {"b1_key": "415", "line_map": {"1": 0, "2": 1}}}}))
    assert linked.payload["DocumentLines"][0]["_base"] == {
        "po_number": "0000000412", "line_number": "2", "line_num": 1, "doc_entry": 415}
    assert strip_reserved(linked.payload) == {"DocumentLines": [{"Quantity": 3}]}
