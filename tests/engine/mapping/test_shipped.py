"""The mappings and rule tables shipped in mappings/: clean checks, and only codes the demo company has."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from engine.mapping import check_mapping_file, check_rule_codes, load_mapping, load_rule_tables

ROOT = Path(__file__).resolve().parents[3]
TARGETS = {"supplier": "BusinessPartners", "purchase_order": "PurchaseOrders", "invoice": "PurchaseInvoices",
           "supplier_to_jaggaer": "jaggaer:CompanyProfileUpdate"}


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_shipped_mapping_checks_clean(name):
    path = ROOT / "mappings" / f"{name}.yaml"
    assert check_mapping_file(path, target_entity=TARGETS[name]) == []
    assert load_mapping(path).target == TARGETS[name]


def test_shipped_rule_tables_only_produce_codes_of_the_demo_company():
    codes = yaml.safe_load((ROOT / "mappings" / "fixtures" / "reference_codes.yaml").read_text())
    codes = {k: {str(v) for v in values} for k, values in codes.items()}
    assert check_rule_codes(load_rule_tables(ROOT / "mappings" / "rules"), codes) == []
    problems = load_mapping(ROOT / "mappings" / "purchase_order.yaml").check_codes(dict(codes, accounts={"510000"}))
    assert problems and all("gl_accounts.csv" in p.file for p in problems)
