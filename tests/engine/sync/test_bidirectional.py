"""The both-ways rule (`engine.bidirectional`): which side changed a synced field, echoes of our own writes,
the first sight of a business partner, conflicts by policy, field ownership; and the pair settings."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from engine.bidirectional import Rules, Sides
from engine.errors import ConfigError
from engine.pairs import FieldPair, Pair, load_pairs
from engine.project import check_project, load_project

REPO = Path(__file__).resolve().parents[3]
EMAIL = FieldPair("bizEmail", "EmailAddress")
TERMS = FieldPair("standardPaymentTermsCode", "PayTermsGrpCode")
TAX = FieldPair("fiscalCode", "FederalTaxID")
J_EARLY, J_LATE = "2026-11-20T10:00:00.000Z", "2026-11-20T10:00:09.000Z"
B_MID = "2026-11-20T10:00:05"  # company-local = UTC in these tests


def rules(policy: str = "newest_wins", owners: dict[str, str] | None = None, **policies: str) -> Rules:
    return Rules(Pair("suppliers_to_jaggaer", "suppliers", (EMAIL, TERMS, TAX), policy, policies,
                      owners if owners is not None else {"fiscalCode": "b1", "standardPaymentTermsCode": "jaggaer"},
                      timezone="UTC"))


def email_sides(*, j: str, j_base: str | None, b: str, b_base: str | None, j_stamp: str = J_EARLY,
                b_stamp: str = B_MID, first_sight: bool = False) -> Sides:
    """One supplier: JAGGAER's e-mail `j` (its base `j_base`, what JAGGAER -> B1 last synced), B1's `b` (its base
    `b_base`, what B1 -> JAGGAER last synced). The mappings copy the e-mail as it is."""
    return Sides("20002", "V10000",
                 j_now={"bizEmail": j, "lastModTime": j_stamp}, j_rendered={"EmailAddress": j},
                 j_base=None if j_base is None else {"EmailAddress": j_base}, j_stamp=j_stamp,
                 b_now={"EmailAddress": b}, b_rendered={"bizEmail": b},
                 b_base=None if first_sight else {"bizEmail": b_base}, b_stamp=b_stamp)


def outcome(rules_: Rules, s: Sides, fp: FieldPair = EMAIL) -> tuple[bool, bool, bool, bool]:
    d = rules_.decide(s, fp)
    return d.j_changed, d.b_changed, d.to_b1, d.to_jaggaer


def test_a_change_on_one_side_goes_to_the_other() -> None:
    assert outcome(rules(), email_sides(j="new", j_base="a", b="a", b_base="a")) == (True, False, True, False)
    assert outcome(rules(), email_sides(j="a", j_base="a", b="new", b_base="a")) == (False, True, False, True)
    assert outcome(rules(), email_sides(j="a", j_base="a", b="a", b_base="a")) == (False, False, False, False)


def test_echoes_of_our_own_writes_are_no_change() -> None:
    # JAGGAER -> B1 wrote "j" (its base moved); B1's copy comes back with the B1 -> JAGGAER base still "a"
    assert outcome(rules(), email_sides(j="j", j_base="j", b="j", b_base="a")) == (False, False, False, False)
    # B1 -> JAGGAER sent "b" (its base moved); JAGGAER's copy comes back with the JAGGAER -> B1 base still "a"
    assert outcome(rules(), email_sides(j="b", j_base="a", b="b", b_base="b")) == (False, False, False, False)


def test_an_echo_read_after_a_crash_is_no_conflict_even_when_jaggaer_changed_again() -> None:
    """JAGGAER -> B1 wrote "j", the run died before the write-back read B1; JAGGAER meanwhile says "k". B1's "j" is
    our echo, not a B1 change: no conflict, "k" goes to B1 whatever the policy."""
    s = email_sides(j="k", j_base="j", b="j", b_base="a")
    assert outcome(rules("b1_wins"), s) == (True, False, True, False)
    assert rules("b1_wins").decide(s, EMAIL).finding is None


def test_the_same_change_on_both_sides_sends_nothing_and_is_no_conflict() -> None:
    d = rules("b1_wins").decide(email_sides(j="same", j_base="a", b="same", b_base="a"), EMAIL)
    assert (d.j_changed, d.b_changed, d.to_b1, d.to_jaggaer, d.finding) == (True, True, False, False, None)


def test_a_value_the_other_side_already_holds_is_not_sent() -> None:
    # JAGGAER now says what B1 held at the last sync, and B1 still does: nothing to send either way
    assert outcome(rules(), email_sides(j="x", j_base="a", b="x", b_base="x")) == (False, False, False, False)
    # B1 without a base yet (first sight) and JAGGAER's rendering lost in a crash: B1 holds it, not re-sent
    s = email_sides(j="x", j_base="a", b="x", b_base=None, first_sight=True)
    assert outcome(rules(), s) == (True, True, False, False)


@pytest.mark.parametrize(("policy", "j_stamp", "winner"), [
    ("newest_wins", J_EARLY, "b1"), ("newest_wins", J_LATE, "jaggaer"),
    ("jaggaer_wins", J_EARLY, "jaggaer"), ("b1_wins", J_LATE, "b1"),
])
def test_a_conflict_is_settled_by_the_policy(policy, j_stamp, winner) -> None:
    d = rules(policy).decide(email_sides(j="j", j_base="a", b="b", b_base="a", j_stamp=j_stamp), EMAIL)
    assert (d.j_changed, d.b_changed) == (True, True)
    assert (d.to_b1, d.to_jaggaer) == (winner == "jaggaer", winner == "b1")
    f = d.finding
    assert (f.kind, f.changed_on, f.policy, f.winner, f.jaggaer_value, f.b1_value) == (
        "conflict", "both", policy, winner, "j", "b")
    assert (f.jaggaer_id, f.b1_key, f.field, f.b1_field) == ("20002", "V10000", "bizEmail", "EmailAddress")
    assert policy in f.message and "'j'" in f.message and "'b'" in f.message


def test_a_field_policy_beats_the_pipelines_and_either_name_works() -> None:
    s = email_sides(j="j", j_base="a", b="b", b_base="a", j_stamp=J_EARLY)
    assert rules("newest_wins", bizEmail="jaggaer_wins").decide(s, EMAIL).to_b1
    assert rules("newest_wins", EmailAddress="jaggaer_wins").decide(s, EMAIL).to_b1


def test_newest_wins_reads_b1_stamps_in_the_company_time_zone() -> None:
    """B1 stamps 05:00:05 in New York = 10:00:05 UTC: newer than JAGGAER's 10:00:00Z, older than 10:00:09Z."""
    pair = Pair("suppliers_to_jaggaer", "suppliers", (EMAIL,), "newest_wins", timezone="America/New_York")
    for j_stamp, winner in ((J_EARLY, "b1"), (J_LATE, "jaggaer")):
        s = email_sides(j="j", j_base="a", b="b", b_base="a", j_stamp=j_stamp, b_stamp="2026-11-20T05:00:05")
        assert Rules(pair).decide(s, EMAIL).finding.winner == winner
    with pytest.raises(ConfigError, match="Mars/Olympus"):
        Pair("x", "y", (EMAIL,), timezone="Mars/Olympus").tzinfo()


def tax_sides(*, j: str, b: str, base: str = "11-1", b_base: str | None = None) -> Sides:
    return Sides("20002", "V10000", j_now={"fiscalCode": j}, j_rendered={"FederalTaxID": j},
                 j_base={"FederalTaxID": base}, b_now={"FederalTaxID": b}, b_rendered={"fiscalCode": b},
                 b_base={"fiscalCode": b_base or base})


def test_a_change_of_an_owned_field_on_the_wrong_side_is_refused_and_reported() -> None:
    d = rules().decide(tax_sides(j="99-9", b="11-1"), TAX)  # tax id is B1's: JAGGAER's change is refused
    assert (d.j_changed, d.to_b1, d.to_jaggaer) == (True, False, False)
    f = d.finding
    assert (f.kind, f.changed_on, f.winner, f.policy, f.jaggaer_value, f.b1_value) == (
        "not_owner", "jaggaer", "b1", "owned_by:b1", "99-9", "11-1")
    assert "owned by SAP B1" in f.message and "'99-9'" in f.message
    d = rules().decide(tax_sides(j="11-1", b="22-2"), TAX)  # the owner's change goes through
    assert (d.b_changed, d.to_jaggaer, d.finding) == (True, True, None)
    d = rules().decide(tax_sides(j="99-9", b="22-2"), TAX)  # both: the owner wins, no policy asked
    assert (d.to_b1, d.to_jaggaer, d.finding.kind, d.finding.changed_on) == (False, True, "not_owner", "both")


def test_terms_owned_by_jaggaer_b1_changes_are_refused() -> None:
    s = Sides("20002", "V10000", j_now={"standardPaymentTermsCode": "Net 30"},
              j_rendered={"PayTermsGrpCode": 2}, j_base={"PayTermsGrpCode": 2}, b_now={"PayTermsGrpCode": 3},
              b_rendered={"standardPaymentTermsCode": "Net 45"}, b_base={"standardPaymentTermsCode": "Net 30"})
    d = rules().decide(s, TERMS)
    assert (d.b_changed, d.to_jaggaer, d.finding.kind, d.finding.winner) == (True, False, "not_owner", "jaggaer")
    assert (d.finding.jaggaer_value, d.finding.b1_value) == ("Net 30", 3)


def test_first_sight_from_b1_is_the_baseline_except_where_b1_differs_from_what_jaggaer_gave_it() -> None:
    r = rules(owners={})
    # B1 holds what JAGGAER -> B1 wrote: nothing to send
    assert outcome(r, email_sides(j="a", j_base="a", b="a", b_base=None, first_sight=True))[1] is False
    # a value JAGGAER never gave (its rendering had none, e.g. terms without a B1 group): B1's own, the baseline
    s = Sides("20002", "V10000", j_now={"standardPaymentTermsCode": "Net 60"}, j_rendered={}, j_base={},
              b_now={"PayTermsGrpCode": 2}, b_rendered={"standardPaymentTermsCode": "Net 30"}, b_base=None)
    assert r.decide(s, TERMS).b_changed is False
    # B1 changed a value JAGGAER gave before the first read: sent
    assert outcome(r, email_sides(j="a", j_base="a", b="edited", b_base=None, first_sight=True)) == (
        False, True, False, True)


def test_an_unknown_side_is_no_change_and_blank_is_none() -> None:
    s = Sides("20002", None, j_now={"bizEmail": "j"}, j_rendered={"EmailAddress": "j"}, j_base={"EmailAddress": ""})
    assert outcome(rules(), s) == (True, False, True, False)  # B1 record not read yet: JAGGAER's change goes
    assert outcome(rules(), email_sides(j="", j_base=None, b="", b_base="")) == (False, False, False, False)


# -- the settings --------------------------------------------------------------------------------------------


def shipped_project(tmp_path: Path) -> Path:
    for folder in ("pipelines", "mappings", "schemas"):
        shutil.copytree(REPO / folder, tmp_path / folder)
    shutil.copy(REPO / "ml-connector.yaml", tmp_path / "ml-connector.yaml")
    return tmp_path


def test_the_shipped_pair() -> None:
    pairs = load_pairs(load_project(REPO).pipelines)
    pair = pairs["suppliers"]
    assert pairs["suppliers_to_jaggaer"] is pair
    assert (pair.name, pair.jaggaer_pipeline, pair.default_policy) == ("suppliers_to_jaggaer", "suppliers", "newest_wins")
    assert pair.by_jaggaer("fiscalCode") == FieldPair("fiscalCode", "FederalTaxID")
    assert (pair.owner("fiscalCode"), pair.owner("FederalTaxID"), pair.owner("PayTermsGrpCode")) == ("b1", "b1", "jaggaer")
    assert pair.owner("BPBankAccounts") == "b1" and pair.owner("bizEmail") is None
    assert (pair.b1_mapping, pair.jaggaer_mapping) == ("mappings/supplier_to_jaggaer.yaml", "mappings/supplier.yaml")


@pytest.mark.parametrize(("old", "new", "message"), [
    ("with: suppliers", "with: vendors", "pair.with: no pipeline 'vendors'"),
    ("    bizFax: Fax", "    bizFaks: Fax", "pair.fields.bizFaks: not a JAGGAER company profile field"),
    ("    bizFax: Fax", "    bizFax: FaxNumber", "'FaxNumber' is not a SAP B1 field"),
    ("conflicts: newest_wins", "conflicts: {default: b1_wins, fields: {Phone: jaggaer_wins}}",
     "conflicts.fields.Phone: not a field of pair.fields"),
    ("fiscalCode: b1 ", "fiscalCode: sap ", "owned_by.fiscalCode: 'sap' must be one of 'jaggaer', 'b1'"),
    ("BPBankAccounts: b1", "BankAccounts: b1", "owned_by.BankAccounts: not a JAGGAER company profile or SAP B1 field"),
])
def test_bad_settings_are_named(tmp_path: Path, old: str, new: str, message: str) -> None:
    root = shipped_project(tmp_path)
    path = root / "pipelines" / "suppliers_to_jaggaer.yaml"
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    _, problems = check_project(root)  # `validate` names them, with the line
    found = [str(p) for p in problems]
    assert len(found) == 1 and found[0].startswith("pipelines/suppliers_to_jaggaer.yaml:") and message in found[0]
    with pytest.raises(ConfigError, match="suppliers_to_jaggaer.yaml"):  # and a run refuses the project
        load_project(root)
