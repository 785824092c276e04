"""Fingerprints, field-level diffs (PATCH semantics), plan actions, and mapping changes re-diffing only
the records whose output changed."""

from __future__ import annotations

import copy

from engine.mapping import Lookups, load_mapping
from engine.plan import diff, fingerprint, plan_records

MAPPING = """
target: PurchaseOrders
external_ref: {{field: U_JaggaerRef, value: record.id | string}}
crosswalk: {{type: purchase_orders, key: record.number}}
fields:
  CardCode: "'V10020'"
  NumAtCard: record.number
  Comments: record.note | default(none)
  DocumentLines:
    for_each: record.lines
    as: line
    key: line.n
    fields:
      ItemDescription: line.text
      Quantity: line.qty
      AccountCode: "{account}"
"""


def order(oid: int, *, qty2: float = 2.0, note: str | None = None, extra_line: bool = False, lines: int = 2):
    rec = {"id": oid, "number": f"PO{oid}", "lines": [
        {"n": 1, "text": "Brake pads", "qty": 10.0, "kind": "parts"},
        {"n": 2, "text": "Shaft seal", "qty": qty2, "kind": "consulting"},
    ][:lines]}
    if note:
        rec["note"] = note
    if extra_line:
        rec["lines"].append({"n": 3, "text": "Gloves", "qty": 5.0, "kind": "parts"})
    return rec


def mapping(project, account: str = "'612000'"):
    return load_mapping(project.mapping("po", MAPPING.format(account=account)))


def synced(result, key: str = "415", line_map=None):
    """A ledger row as the loader leaves it after a successful create."""
    payload = result.payload
    lines = {m["_key"]: i for i, m in enumerate(payload.get("DocumentLines") or [])}
    return {"status": "synced", "target_key": key, "fingerprint": fingerprint(payload), "attempt_fingerprint": fingerprint(payload),
            "payload": copy.deepcopy(payload), "line_map": line_map or lines, "mapping_version": result.mapping_version}


def test_fingerprint_is_canonical():
    assert fingerprint({"a": 1, "b": [1, {"c": 2, "d": 3}]}) == fingerprint({"b": [1, {"d": 3, "c": 2}], "a": 1})
    assert fingerprint({"a": 1}) != fingerprint({"a": 2})


def test_new_record_is_a_create_and_identical_is_skipped(project):
    m = mapping(project)
    plan = plan_records("purchase_orders", m, [("1", order(1))], {})
    (item,) = plan.items
    assert item.action == "create" and item.external_ref == "1" and item.crosswalk_key == "PO1"
    assert item.body["DocumentLines"][0] == {"ItemDescription": "Brake pads", "Quantity": 10.0, "AccountCode": "612000"}
    again = plan_records("purchase_orders", m, [("1", order(1))], {"1": synced(m.render(order(1), "1"))})
    assert [i.action for i in again.items] == ["skip"] and again.writes == 0


def test_changed_line_is_a_patch_with_only_that_field_and_its_line_num(project):
    m = mapping(project)
    ledger = {"1": synced(m.render(order(1), "1"), line_map={"1": 0, "2": 1})}
    (item,) = plan_records("purchase_orders", m, [("1", order(1, qty2=3.0))], ledger).items
    assert item.action == "update" and item.target_key == "415"
    assert item.patch == {"DocumentLines": [{"_key": "2", "LineNum": 1, "Quantity": 3.0}]}
    assert item.body == {"DocumentLines": [{"LineNum": 1, "Quantity": 3.0}]}
    assert [str(c) for c in item.changes] == ["DocumentLines[2].Quantity: 2.0 -> 3.0"]


def test_header_change_new_line_and_removed_line(project):
    m = mapping(project)
    ledger = {"1": synced(m.render(order(1), "1"))}
    (item,) = plan_records("purchase_orders", m, [("1", order(1, note="rush", extra_line=True))], ledger).items
    assert item.patch["Comments"] == "rush"
    assert item.patch["DocumentLines"] == [{"ItemDescription": "Gloves", "Quantity": 5.0, "AccountCode": "612000", "_key": "3"}]
    assert "LineNum" not in item.patch["DocumentLines"][0]  # appended by B1
    (fewer,) = plan_records("purchase_orders", m, [("1", order(1, lines=1))], ledger).items
    assert fewer.action == "skip"  # a line gone from the source is never deleted in B1
    assert any(c.path == "DocumentLines[2]" and "not deleted" in c.note for c in fewer.changes)


def test_mapping_change_rediffs_only_affected_records(project):
    old = mapping(project)
    records = [(str(i), order(i)) for i in (1, 2, 3)]
    records[1][1]["lines"][1]["kind"] = "parts"  # record 2 has no consulting line
    ledger = {key: synced(old.render(rec, key)) for key, rec in records}
    new = mapping(project, account="'650000' if line.kind == 'consulting' else '612000'")
    assert new.version != old.version
    plan = plan_records("purchase_orders", new, records, ledger)
    actions = {i.external_ref: i.action for i in plan.items}
    assert actions == {"1": "update", "2": "skip", "3": "update"}
    changed = next(i for i in plan.items if i.external_ref == "1")
    assert changed.body == {"DocumentLines": [{"LineNum": 1, "AccountCode": "650000"}]}
    assert changed.previous_mapping_version == old.version and changed.mapping_version == new.version


def test_wait_quarantine_failed_and_replay(project):
    path = project.mapping("po", MAPPING.format(account="'612000'").replace(
        "CardCode: \"'V10020'\"", "CardCode: crosswalk('suppliers', record.supplier)"))
    m = load_mapping(path)
    lookups = Lookups(crosswalk={"suppliers": {"S1": "V10020"}})
    bad = order(2)
    bad["lines"][0]["text"] = "x" * 300
    recs = [("1", dict(order(1), supplier="S9")), ("2", dict(bad, supplier="S1")), ("3", dict(order(3), supplier="S1"))]
    refused = m.render(recs[2][1], "3", lookups=lookups)
    ledger = {"3": {"status": "failed", "target_key": None, "attempt_fingerprint": fingerprint(refused.payload),
                    "last_error": "-5002 Enter valid code"}}
    plan = plan_records("purchase_orders", m, recs, ledger, lookups=lookups)
    got = {i.external_ref: (i.action, i.reason) for i in plan.items}
    assert got["1"][0] == "wait" and "suppliers 'S9'" in got["1"][1]
    assert got["2"][0] == "quarantine" and "longer than SAP B1's 200" in got["2"][1]
    assert got["3"][0] == "failed" and "-5002" in got["3"][1] and "replay" in got["3"][1]
    assert plan.counts()["failed"] == 1 and plan.writes == 0
    replayed = plan_records("purchase_orders", m, recs[2:], ledger, lookups=lookups, replay=True)
    assert [i.action for i in replayed.items] == ["create"]


def test_in_flight_intent_is_resumed(project):
    m = mapping(project)
    ledger = {"1": {"status": "in_flight", "target_key": None, "attempt_fingerprint": "x"}}
    (item,) = plan_records("purchase_orders", m, [("1", order(1))], ledger).items
    assert item.action == "create" and item.resume


def test_business_partner_address_patch_carries_identity():
    before = {"CardName": "A", "BPAddresses": [{"AddressName": "MAIN", "AddressType": "bo_BillTo", "City": "Dayton", "_key": "k"}]}
    after = {"CardName": "A", "BPAddresses": [{"AddressName": "MAIN", "AddressType": "bo_BillTo", "City": "Toledo", "_key": "k"}]}
    patch, changes = diff(before, after, line_map={"k": 0})
    assert patch == {"BPAddresses": [{"_key": "k", "RowNum": 0, "AddressName": "MAIN", "AddressType": "bo_BillTo", "City": "Toledo"}]}
    assert [str(c) for c in changes] == ["BPAddresses[k].City: 'Dayton' -> 'Toledo'"]


def test_company_profile_update_keeps_its_selector():
    before = {"company": {"operationCode": "UPDATE", "sendEMail": "0", "companyInfo": {"bravoId": "1", "bizEmail": "a@x", "city": "D"}}}
    after = copy.deepcopy(before)
    after["company"]["companyInfo"]["bizEmail"] = "b@x"
    patch, _ = diff(before, after)
    assert patch == {"company": {"operationCode": "UPDATE", "sendEMail": "0", "companyInfo": {"bravoId": "1", "bizEmail": "b@x"}}}
