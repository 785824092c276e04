"""Rule tables (first match, wildcards, default, passthrough, code checks) and static mapping checks."""

from __future__ import annotations

import pytest

from engine.errors import ConfigError
from engine.mapping import Lookups, check_mapping_file, check_rule_codes, load_mapping, load_rule_tables
from engine.rules import InvalidCode, RuleMiss, load_rule_table

GL = """
# comment line
commodity,account,AccountCode,note
2517*,,612000,brakes
*,,650000,no account
*,*,{account},own account
"""


def test_first_match_prefix_empty_and_passthrough(project):
    table = load_rule_table(project.rules("gl", GL))
    assert table.inputs == ("commodity", "account") and table.outputs == ("AccountCode",)
    assert table.apply(commodity="25174100", account=None) == {"AccountCode": "612000"}
    assert table.apply(commodity="25174100", account="") == {"AccountCode": "612000"}
    assert table.apply(commodity="31160000") == {"AccountCode": "650000"}
    # first match wins: a line with its own account never reaches the commodity rows
    assert table.apply(commodity="25174100", account="510000") == {"AccountCode": "510000"}
    assert table.apply(commodity=25174100.0, account=510000) == {"AccountCode": "510000"}  # numbers as text


def test_no_matching_row_and_unknown_input(project):
    table = load_rule_table(project.rules("terms", "terms,PayTermsGrpCode\nNet 30,2\n"))
    with pytest.raises(RuleMiss, match=r"rule table terms has no row for terms='Net 60'"):
        table.apply(terms="Net 60")
    with pytest.raises(ConfigError, match="no input column days"):
        table.apply(days=30)


def test_invalid_code_names_table_value_and_row(project):
    table = load_rule_table(project.rules("gl", GL))
    refs = {"accounts": {"612000", "650000", "510000"}}
    assert table.apply(refs, commodity="2517", account="510000") == {"AccountCode": "510000"}
    with pytest.raises(InvalidCode, match=r"rule table gl \(gl.csv:5\) gives AccountCode '999999' .*account='999999'"):
        table.apply(refs, commodity="x", account="999999")


def test_invalid_code_at_render_quarantines_naming_rule_table_value_and_record(project):
    project.rules("gl", GL)
    path = project.mapping("po", """
        target: PurchaseOrders
        fields:
          DocumentLines:
            for_each: record.lines
            as: line
            fields:
              ItemDescription: "'x'"
              AccountCode: rule('gl', commodity=line.commodity, account=line.account).AccountCode
    """)
    m = load_mapping(path)
    lk = Lookups(reference_codes={"accounts": {"612000", "650000"}})
    result = m.render({"lines": [{"commodity": "1", "account": "999999"}]}, "PO-7", lookups=lk)
    assert result.status == "quarantine"
    assert "record PO-7" in result.reason and "rule table gl" in result.reason and "'999999'" in result.reason
    assert m.render({"lines": [{"commodity": "2517", "account": None}]}, "PO-8", lookups=lk).ok


def test_check_rule_codes_reports_literal_codes_and_missing_default(project):
    project.rules("gl", GL)
    project.rules("co", "cost_center,CostingCode,CostingCode2,ProjectCode\nPLANT1,PLANT1,PROD,P-OLD\nQA,QA,,\n")
    tables = load_rule_tables(project.root / "mappings" / "rules")
    refs = {"accounts": {"650000"}, "costing1": {"PLANT1", "QA"}, "costing2": {"SALES"}, "projects": {"P-2024-01"}}
    problems = [str(p) for p in check_rule_codes(tables, refs)]
    assert any(p.endswith("gl.csv:3: AccountCode: rule table gl: '612000' is not an active account in SAP B1's ChartOfAccounts")
               for p in problems), problems
    assert any("co.csv:2: CostingCode2: rule table co: 'PROD' is not an active distribution rule of dimension 2" in p for p in problems)
    assert any("co.csv:2: ProjectCode" in p and "'P-OLD'" in p for p in problems)
    assert any("rule table co has no default row" in p for p in problems)
    assert not any("{account}" in p for p in problems)  # passthrough values are checked at render time


def test_malformed_rule_table(project):
    with pytest.raises(ConfigError, match=r"bad.csv:3: 4 cells but the header has 2"):
        load_rule_table(project.rules("bad", "a,B\n1,2\n1,2,3,4\n"))
    with pytest.raises(ConfigError, match="names no input column"):
        load_rule_table(project.rules("bad2", "a,B\n*,{nope}\n"))


def test_check_mapping_file_reports_problems_with_lines(project):
    project.rules("gl", GL)
    path = project.mapping("po", """
        target: PurchaseOrders
        on_overflow: sometimes
        fields:
          CardCod: record.x
    """)
    problems = [str(p) for p in check_mapping_file(path)]
    assert any("po.yaml:2: on_overflow:" in p for p in problems), problems
    path = project.mapping("po", """
        target: PurchaseOrders
        fields:
          CardCod: record.x
          CardCode: cSupplier
          NumAtCard: record.x | no_such_filter
          DocDate: "record.x +"
          DocumentLines:
            for_each: record.lines
            as: line
            let: {my-split: line.x}
            fields:
              AccountCode: rule('gl', commodity=line.c, colour=line.x).AccountCode
              CostingCode: rule('missing', a=1).CostingCode
              ItemDescription: item.description
    """)
    problems = [str(p) for p in check_mapping_file(path, target_entity="PurchaseInvoices")]
    expected = [
        "po.yaml:1: target: is 'PurchaseOrders', but the pipeline writes 'PurchaseInvoices'",
        "po.yaml:3: CardCod: 'CardCod' is not a writable property of PurchaseOrders",
        "po.yaml:4: CardCode: unknown name 'cSupplier'",
        "po.yaml:5: NumAtCard: unknown filter 'no_such_filter'",
        "po.yaml:6: DocDate: invalid expression",
        "po.yaml:10: DocumentLines.let.my-split: let name 'my-split' must be a name",
        "po.yaml:12: DocumentLines.AccountCode: rule table 'gl' has no input column 'colour'",
        "po.yaml:13: DocumentLines.CostingCode: rule table 'missing' not found",
        "po.yaml:14: DocumentLines.ItemDescription: unknown name 'item'",
    ]
    for text in expected:
        assert any(p.startswith(str(path)) and text in p for p in problems), (text, problems)
    assert any("needs quotes" in p for p in problems)


def test_check_mapping_file_yaml_error(project):
    path = project.mapping("broken", "target: [unclosed\n")
    (problem,) = check_mapping_file(path)
    assert "invalid YAML" in problem.message


def test_mapping_version_follows_used_rule_tables_only(project):
    project.rules("gl", GL)
    project.rules("other", "a,B\n*,1\n")
    text = """
        target: PurchaseOrders
        fields:
          Comments: rule('gl', commodity='1').AccountCode
    """
    v1 = load_mapping(project.mapping("po", text)).version
    project.rules("other", "a,B\n*,2\n")
    assert load_mapping(project.mapping("po", text)).version == v1
    project.rules("gl", GL.replace("650000", "650001"))
    v2 = load_mapping(project.mapping("po", text)).version
    assert v2 != v1
    assert load_mapping(project.mapping("po", text + "      NumAtCard: \"'x'\"\n")).version != v2
