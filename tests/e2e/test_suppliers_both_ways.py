"""Suppliers both ways (issue: B1 -> JAGGAER write-back), over real sockets against both simulators.

A JAGGAER edit reaches SAP B1 and a SAP B1 edit reaches JAGGAER; the echoes of those writes come back
through the incremental reads and are not sent again (repeated runs write nothing either way); a field
changed on both sides is settled by the pipeline's policy and audited; a change of a field the other side
owns is reported, not propagated; a run killed at random points in either direction, re-run, leaves both
systems agreeing with nothing lost or doubled.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from engine.project import load_project
from engine.state import db, ledger
from tests.e2e.project_fixture import Stack, start_stack

ROOT = Path(__file__).resolve().parents[2]
PAIR = {"companyName": "CardName", "fiscalCode": "FederalTaxID", "bizEmail": "EmailAddress", "bizPhone": "Phone1",
        "webSite": "Website", "currency": "Currency"}
TERMS = {"Net 30": 2, "Net 45": 3, "2/10 Net 30": 4}  # mappings/rules/payment_terms.csv and b1_payment_terms.csv


@pytest.fixture
def stack(tmp_path):
    with start_stack(tmp_path, seed=40) as s:
        yield s


# -- helpers -----------------------------------------------------------------------------------------------


def patch_b1(stack: Stack, card_code: str, changes: dict[str, Any]) -> None:
    """What a user does in SAP B1: PATCH BusinessPartners('V…') straight to the Service Layer."""
    with httpx.Client(base_url=stack.b1.service_root("v2") + "/", timeout=30) as client:
        client.post("Login", json=stack.b1.login_body()).raise_for_status()
        response = client.patch(f"BusinessPartners('{card_code}')", json=changes)
        assert response.status_code == 204, response.text
        client.post("Logout")


def jaggaer_updates(stack: Stack) -> int:
    """UPDATEs JAGGAER answered (every attempt counted)."""
    return stack.jag.counters.get("companyprofiles.update", 0)


def b1_partner_writes(stack: Stack) -> int:
    return sum(stack.b1.counters["writes_by_entity"].get("BusinessPartners", {}).values())


def writes_both_ways(stack: Stack) -> tuple[int, int]:
    return b1_partner_writes(stack), jaggaer_updates(stack)


def sellers(stack: Stack) -> dict[str, dict[str, Any]]:
    return {str(s["returnCompanyInfo"]["bravoId"]): s["returnCompanyInfo"] for s in stack.jag.suppliers()}


def partner(stack: Stack, bravo_id: str) -> dict[str, Any]:
    return stack.b1_docs("BusinessPartners")[bravo_id]


def pick(stack: Stack, count: int = 1, terms: str | None = "Net 30") -> list[dict[str, Any]]:
    """Synced suppliers (with terms `terms` when given), in bravoId order."""
    in_b1 = stack.b1_docs("BusinessPartners")
    found = [info for bravo_id, info in sorted(sellers(stack).items(), key=lambda kv: int(kv[0]))
             if bravo_id in in_b1 and (terms is None or info.get("standardPaymentTermsCode") == terms)]
    assert len(found) >= count, f"the seed has {len(found)} synced suppliers with {terms}"
    return found[:count]


def assert_quiet(stack: Stack, runs: int = 2) -> None:
    """Repeated runs send nothing either way (no echo, no ping-pong) and report nothing."""
    for _ in range(runs):
        before = writes_both_ways(stack)
        report = stack.run()
        assert report.ok and report.problems == [], report.problems
        assert report.writes == 0
        assert writes_both_ways(stack) == before, "a run without changes writes nothing to SAP B1 or JAGGAER"


def assert_agree(stack: Stack) -> None:
    """Every supplier in both systems carries the same synced values (JAGGAER terms without a B1 group aside)."""
    in_b1 = stack.b1_docs("BusinessPartners")
    compared = 0
    for bravo_id, info in sellers(stack).items():
        bp = in_b1.get(bravo_id)
        if bp is None:
            continue
        for j_field, b_field in PAIR.items():
            assert (info.get(j_field) or None) == (bp.get(b_field) or None), (bravo_id, j_field, info.get(j_field),
                                                                              bp.get(b_field))
        terms = info.get("standardPaymentTermsCode")
        if terms in TERMS:
            assert bp["PayTermsGrpCode"] == TERMS[terms], (bravo_id, terms, bp["PayTermsGrpCode"])
        compared += 1
    assert compared


def settled(state: Path) -> None:
    """No record of either direction is left in flight, pending or failed."""
    with db.connect(state, read_only=True) as conn:
        for pipeline in ("suppliers", "suppliers_to_jaggaer"):
            rows = ledger.ledger_rows(conn, pipeline)
            assert rows, pipeline
            open_rows = {r: row.status for r, row in rows.items() if row.status in ("in_flight", "pending", "failed")}
            assert open_rows == {}, (pipeline, open_rows)


# -- both directions --------------------------------------------------------------------------------------


def test_a_jaggaer_edit_reaches_b1_and_a_b1_edit_reaches_jaggaer_without_echoes(stack):
    first = stack.run()
    assert first.ok and first.problems == [], first.problems
    back = next(p for p in first.pipelines if p.name == "suppliers_to_jaggaer")
    assert back.stats.writes == 0, "enabling the write-back sends nothing: SAP B1 agrees with JAGGAER"
    assert_quiet(stack)

    # payment terms edited in JAGGAER (JAGGAER owns them) -> SAP B1's payment terms group, one PATCH
    a, b = pick(stack, 2)
    stack.jag.change_supplier(a["bravoId"], standardPaymentTermsCode="Net 45")
    before = writes_both_ways(stack)
    report = stack.run()
    assert report.ok and report.problems == [], report.problems
    assert partner(stack, a["bravoId"])["PayTermsGrpCode"] == TERMS["Net 45"]
    assert writes_both_ways(stack) == (before[0] + 1, before[1]), "one PATCH to SAP B1, no UPDATE echoed to JAGGAER"
    assert_quiet(stack)

    # tax id edited in SAP B1 (SAP B1 owns it) -> JAGGAER's fiscalCode, one UPDATE
    card_code = partner(stack, b["bravoId"])["CardCode"]
    patch_b1(stack, card_code, {"FederalTaxID": "98-7654321"})
    before = writes_both_ways(stack)
    report = stack.run()
    assert report.ok and report.problems == [], report.problems
    assert sellers(stack)[b["bravoId"]]["fiscalCode"] == "98-7654321"
    assert writes_both_ways(stack) == (before[0], before[1] + 1), "one UPDATE to JAGGAER, no PATCH echoed to SAP B1"
    history = stack.audit("history", card_code)
    assert [(e["action"], e["outcome"]) for e in history] == [("update", "intent"), ("update", "synced")]
    assert json.loads(history[0]["payload"]) == {"company": {  # only what changed, the bravoId naming the company
        "operationCode": "UPDATE", "sendEMail": "0", "companyInfo": {"bravoId": b["bravoId"], "fiscalCode": "98-7654321"}}}
    assert_quiet(stack)
    assert_agree(stack)
    settled(stack.state)


@pytest.mark.slow  # make test-long: ~20 s
def test_a_conflicting_edit_is_settled_by_policy_and_audited(stack):
    assert stack.run().ok
    # e-mail: the pipeline's newest_wins; phone: jaggaer_wins for that field alone
    stack.edit("pipelines/suppliers_to_jaggaer.yaml", "conflicts: newest_wins",
               "conflicts: {default: newest_wins, fields: {bizPhone: jaggaer_wins}}")
    a = pick(stack, 1)[0]
    card_code = partner(stack, a["bravoId"])["CardCode"]
    stack.jag.change_supplier(a["bravoId"], bizEmail="buyer-desk@jaggaer.example", bizPhone="+1 200 555 0001")
    time.sleep(1.2)  # SAP B1 stamps whole seconds: its edit is the newer one
    patch_b1(stack, card_code, {"EmailAddress": "ap@b1.example", "Phone1": "+1 300 555 0002"})

    report = stack.run()
    assert report.ok, report.problems
    found = {(p.status, p.code): p for p in report.problems}
    assert set(found) == {("conflict", "bizEmail"), ("conflict", "bizPhone")}
    assert "newest_wins" in found[("conflict", "bizEmail")].message
    # both sides end with the winner's value: SAP B1's e-mail (newer), JAGGAER's phone (its field policy)
    bp, info = partner(stack, a["bravoId"]), sellers(stack)[a["bravoId"]]
    assert (bp["EmailAddress"], info["bizEmail"]) == ("ap@b1.example", "ap@b1.example")
    assert (bp["Phone1"], info["bizPhone"]) == ("+1 200 555 0001", "+1 200 555 0001")

    rows = {r["field"]: r for r in stack.audit("conflicts")}
    assert set(rows) == {"bizEmail", "bizPhone"}
    email, phone = rows["bizEmail"], rows["bizPhone"]
    assert (email["kind"], email["policy"], email["winner"], email["jaggaer_id"], email["b1_key"]) == (
        "conflict", "newest_wins", "b1", a["bravoId"], card_code)
    assert (email["jaggaer_value"], email["b1_value"]) == ('"buyer-desk@jaggaer.example"', '"ap@b1.example"')
    assert (phone["policy"], phone["winner"]) == ("jaggaer_wins", "jaggaer")
    assert email["jaggaer_stamp"] and email["b1_stamp"]
    assert_quiet(stack)
    assert len(stack.audit("conflicts")) == 2, "recorded once"
    assert_agree(stack)


@pytest.mark.slow  # make test-long: ~25 s
def test_an_owned_field_edited_on_the_wrong_side_is_reported_not_propagated(stack):
    assert stack.run().ok
    a, b = pick(stack, 2)
    tax_id = partner(stack, a["bravoId"])["FederalTaxID"]
    card_b = partner(stack, b["bravoId"])["CardCode"]
    stack.jag.change_supplier(a["bravoId"], fiscalCode="11-1111111", bizEmail="new@jaggaer.example")  # tax id: B1's
    patch_b1(stack, card_b, {"PayTermsGrpCode": TERMS["Net 45"], "Website": "https://b1.example"})  # terms: JAGGAER's

    report = stack.run()
    assert report.ok
    found = {(p.pipeline, p.ref, p.status, p.code): p.message for p in report.problems}
    assert set(found) == {("suppliers", a["bravoId"], "not_owner", "fiscalCode"),
                          ("suppliers_to_jaggaer", b["bravoId"], "not_owner", "standardPaymentTermsCode")}
    assert "owned by SAP B1" in found[("suppliers", a["bravoId"], "not_owner", "fiscalCode")]
    # not propagated; the rest of each change is
    assert partner(stack, a["bravoId"])["FederalTaxID"] == tax_id
    assert partner(stack, a["bravoId"])["EmailAddress"] == "new@jaggaer.example"
    assert sellers(stack)[b["bravoId"]]["standardPaymentTermsCode"] == "Net 30"
    assert sellers(stack)[b["bravoId"]]["webSite"] == "https://b1.example"

    rows = {(r["field"], r["changed_on"]): r for r in stack.audit("conflicts")}
    assert set(rows) == {("fiscalCode", "jaggaer"), ("standardPaymentTermsCode", "b1")}
    assert {r["kind"] for r in rows.values()} == {"not_owner"}
    assert (rows[("fiscalCode", "jaggaer")]["jaggaer_value"], rows[("fiscalCode", "jaggaer")]["b1_value"]) == (
        '"11-1111111"', f'"{tax_id}"')
    assert rows[("standardPaymentTermsCode", "b1")]["winner"] == "jaggaer"
    assert_quiet(stack)  # reported once, never sent

    # the owner's own change still goes through
    patch_b1(stack, partner(stack, a["bravoId"])["CardCode"], {"FederalTaxID": "22-2222222"})
    assert stack.run().ok
    assert sellers(stack)[a["bravoId"]]["fiscalCode"] == "22-2222222"
    assert_quiet(stack, runs=1)


@pytest.mark.slow  # make test-long: ~20 s
def test_an_update_jaggaer_refuses_fails_that_record_alone_for_replay(stack):
    """returnCode 2 (contract §4.6): that supplier fails with JAGGAER's message verbatim, is not re-sent by a plain
    run, `replay` sends it again; a fix in SAP B1 goes through. (A value the UPDATE schema refuses, such as an
    e-mail without @, never leaves: it is quarantined.)"""
    assert stack.run().ok
    a, b = pick(stack, 2)
    card_a, card_b = (partner(stack, x["bravoId"])["CardCode"] for x in (a, b))
    patch_b1(stack, card_a, {"U_JaggaerRef": "99999", "Website": "https://lost.example"})  # a bravoId JAGGAER lacks
    patch_b1(stack, card_b, {"Website": "https://fine.example", "EmailAddress": "no-at-sign.example"})
    report = stack.run()
    found = {(f.ref, f.status, f.code): f.message for f in report.problems}
    assert set(found) == {(card_a, "failed", "2"), (card_b, "quarantined", "mapping")}
    assert found[(card_a, "failed", "2")] == "Company not found: 99999"
    assert "bizEmail" in found[(card_b, "quarantined", "mapping")]
    assert [r["external_ref"] for r in stack.audit("failures")] == [card_a]

    before = jaggaer_updates(stack)
    again = stack.run()
    assert [f.ref for p in again.pipelines for f in p.still_failed] == [card_a]
    assert jaggaer_updates(stack) == before, "not re-sent by a plain run"
    replayed = stack.replay()
    assert replayed is not None and jaggaer_updates(stack) == before + 1
    assert [(f.ref, f.code) for f in replayed.problems] == [(card_a, "2")]

    patch_b1(stack, card_a, {"U_JaggaerRef": a["bravoId"]})
    patch_b1(stack, card_b, {"EmailAddress": "fixed@b1.example"})
    assert stack.run().ok
    assert sellers(stack)[a["bravoId"]]["webSite"] == "https://lost.example"
    assert (sellers(stack)[b["bravoId"]]["webSite"], sellers(stack)[b["bravoId"]]["bizEmail"]) == (
        "https://fine.example", "fixed@b1.example")
    assert stack.audit("failures") == [] and stack.audit("quarantine") == []
    assert_quiet(stack, runs=1)


@pytest.mark.slow  # make test-long: serve's webhook test covers the nudge
def test_a_webhook_nudge_pulls_b1_changes_to_jaggaer_alone(stack):
    """`serve` on a SAP B1 `BusinessPartners.Updated` notification: `pull_b1_changes` runs the write-back only."""
    from engine.runner import pull_b1_changes, write_back_pipelines

    assert stack.run().ok
    a = pick(stack, 1)[0]
    patch_b1(stack, partner(stack, a["bravoId"])["CardCode"], {"EmailAddress": "nudged@b1.example"})
    b1_before = stack.writes()
    assert write_back_pipelines(load_project(stack.root)) == ["suppliers_to_jaggaer"]
    report = pull_b1_changes(load_project(stack.root, environ=stack.environ))
    assert report.ok and [p.name for p in report.pipelines] == ["suppliers_to_jaggaer"]
    assert sellers(stack)[a["bravoId"]]["bizEmail"] == "nudged@b1.example"
    assert stack.writes() == b1_before, "nothing written to SAP B1"
    assert_quiet(stack, runs=1)


# -- crash safety ------------------------------------------------------------------------------------------


def killed_run(stack: Stack, side: str, after: int, delay: float) -> bool:
    """`ml-connector run` in its own process, SIGKILLed once `side` took `after` more writes (plus `delay`);
    whether the kill interrupted it."""
    count = b1_partner_writes if side == "b1" else jaggaer_updates
    start = count(stack)
    proc = subprocess.Popen([sys.executable, "-m", "tests.e2e._run_child", str(stack.root), "30"], cwd=ROOT,
                            env={**os.environ, **stack.environ}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while proc.poll() is None and count(stack) - start < after and time.monotonic() < deadline:
        time.sleep(0.005)
    time.sleep(delay)
    killed = proc.poll() is None
    if killed:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    return killed


def edit_both_sides(stack: Stack, rng: random.Random, round_: int) -> tuple[dict[str, str], dict[str, str]]:
    """JAGGAER edits e-mail and terms of some suppliers, SAP B1 tax id and phone of others: (J, B1) by bravoId."""
    synced = pick(stack, 6, terms=None)
    rng.shuffle(synced)
    j_edits, b_edits = {}, {}
    for info in synced[:3]:
        email = f"r{round_}-{info['bravoId']}@jaggaer.example"
        terms = "Net 45" if info.get("standardPaymentTermsCode") != "Net 45" else "Net 30"
        stack.jag.change_supplier(info["bravoId"], bizEmail=email, standardPaymentTermsCode=terms)
        j_edits[info["bravoId"]] = email
    for info in synced[3:6]:
        tax = f"{round_}{rng.randrange(10, 99)}-{info['bravoId']}"
        patch_b1(stack, partner(stack, info["bravoId"])["CardCode"], {"FederalTaxID": tax, "Phone1": f"+1 {tax}"})
        b_edits[info["bravoId"]] = tax
    return j_edits, b_edits


def faults(stack: Stack, on: bool) -> None:
    """Lost answers on both sides, JAGGAER's returnCode -998 and some latency (so a kill lands mid-run)."""
    stack.b1.set_knobs(write_latency_ms=40 if on else 0, drop_after_rate=0.1 if on else 0.0)
    stack.jag.set_knobs(latency_ms=40 if on else 0, drop_after_rate=0.15 if on else 0.0,
                        retryable_rate=0.1 if on else 0.0)


@pytest.mark.slow  # about a minute: `make test-long` (with the seeded trials below)
@pytest.mark.timeout(300)
def test_killed_at_random_points_in_either_direction_both_systems_agree(tmp_path):
    crash_rounds(tmp_path, seed=3)


@pytest.mark.slow
@pytest.mark.timeout(1200)
@pytest.mark.parametrize("seed", range(4, 10))
def test_killed_at_random_points_more_trials(tmp_path, seed):
    crash_rounds(tmp_path, seed)


def crash_rounds(tmp_path: Path, seed: int) -> None:
    """Four rounds of edits on both sides, each run SIGKILLed after a random number of writes to SAP B1 or to
    JAGGAER (alternately), with lost answers on both and -998s from JAGGAER; then a run to completion."""
    rng = random.Random(seed)
    with start_stack(tmp_path, seed=40) as stack:
        assert stack.run().ok
        interrupted = []
        for round_, side in enumerate(["b1", "jaggaer", "b1", "jaggaer"]):
            j_edits, b_edits = edit_both_sides(stack, rng, round_)
            faults(stack, on=True)
            interrupted.append(killed_run(stack, side, rng.randint(1, 2), rng.uniform(0, 0.06)))
            faults(stack, on=False)
            report = stack.run()
            assert report.ok and report.aborted is None, report.problems
            # nothing lost: every edit is on both sides; nothing doubled: `b1_docs` asserts no partner twice
            j_now, in_b1 = sellers(stack), stack.b1_docs("BusinessPartners")
            for bravo_id, email in j_edits.items():
                assert (j_now[bravo_id]["bizEmail"], in_b1[bravo_id]["EmailAddress"]) == (email, email)
                assert in_b1[bravo_id]["PayTermsGrpCode"] == TERMS[j_now[bravo_id]["standardPaymentTermsCode"]]
            for bravo_id, tax in b_edits.items():
                assert (j_now[bravo_id]["fiscalCode"], in_b1[bravo_id]["FederalTaxID"]) == (tax, tax)
            assert_agree(stack)
            settled(stack.state)
        assert all(interrupted), "every kill landed in the middle of a run (else the trial proves nothing)"
        assert_quiet(stack)
        assert stack.audit("conflicts") == [], "edits on different suppliers never conflict"
