"""Control characters in rendered strings: stripped by default, or the record quarantined
(`control_characters: refuse`); TAB, LF and CR are kept."""

from __future__ import annotations

import pytest

from engine.errors import ConfigError
from engine.mapping import Lookups, load_mapping
from engine.mapping import functions as fn

PO = """
target: PurchaseOrders
{option}
external_ref: {{field: U_JaggaerRef, value: "'PO-' ~ record.header.poNumber"}}
fields:
  CardCode: "'V10020'"
  NumAtCard: record.header.poNumber
  Comments: record.header.note
  DocumentLines:
    for_each: record.lines
    as: line
    key: line.lineNumber
    fields:
      ItemDescription: line.description
      Quantity: line.quantity
"""


def record(description: str = "Bolt M8", note: str = "ok", po_number: str = "0000000412") -> dict:
    return {"header": {"poNumber": po_number, "note": note},
            "lines": [{"lineNumber": 1, "description": "Washer", "quantity": 1},
                      {"lineNumber": 2, "description": description, "quantity": 2}]}


@pytest.fixture
def mapping(project):
    def make(option: str = ""):
        return load_mapping(project.mapping("purchase_order", PO.format(option=option)))
    return make


def render(m, rec):
    return m.render(rec, "3120457", lookups=Lookups())


def test_control_characters_are_stripped_by_default(mapping):
    rec = record(description="Bolt\x1b[31m M8\x00", note="C1\x85 and DEL\x7f gone")
    result = render(mapping(), rec)
    assert result.status == "ok", result.reason
    assert result.payload["DocumentLines"][1]["ItemDescription"] == "Bolt[31m M8"
    assert result.payload["Comments"] == "C1 and DEL gone"
    assert rec["lines"][1]["description"] == "Bolt\x1b[31m M8\x00"  # the staged record is not touched


def test_tab_newline_and_carriage_return_are_kept(mapping):
    text = "line one\r\nline\ttwo — Grüße"
    result = render(mapping(), record(note=text, description="a\tb"))
    assert result.status == "ok", result.reason
    assert result.payload["Comments"] == text and result.payload["DocumentLines"][1]["ItemDescription"] == "a\tb"


def test_a_clean_payload_is_returned_as_rendered(mapping):
    m = mapping()
    result = render(m, record(note="C:\\build\\files"))  # a backslash-b/-f only looks like an escape in JSON
    assert result.status == "ok" and result.payload["Comments"] == "C:\\build\\files"


def test_external_reference_is_cleaned_like_the_payload(mapping):
    result = render(mapping(), record(po_number="0000\x00412"))
    assert result.external_ref == "PO-0000412" and result.payload["U_JaggaerRef"] == "PO-0000412"


def test_refuse_quarantines_naming_file_field_record_and_character(mapping):
    result = render(mapping("control_characters: refuse"), record(description="Bolt\x1b[31m M8\x00"))
    assert result.status == "quarantine"
    reason = result.reason
    assert reason.startswith("purchase_order.yaml:"), reason
    assert "DocumentLines[2].ItemDescription" in reason and "record 3120457" in reason
    assert "U+001B at position 5" in reason and "control_characters: strip" in reason


def test_refuse_names_the_external_reference(mapping):
    result = render(mapping("control_characters: refuse"), record(po_number="04\x0712"))
    assert result.status == "quarantine"
    assert "external_ref.value" in result.reason and "U+0007 at position 6" in result.reason


def test_refuse_lets_clean_records_and_kept_whitespace_through(mapping):
    result = render(mapping("control_characters: refuse"), record(note="a\tb\r\nc"))
    assert result.status == "ok" and result.payload["Comments"] == "a\tb\r\nc"


def test_an_unknown_option_value_is_a_mapping_problem(mapping):
    with pytest.raises(ConfigError, match="control_characters"):
        mapping("control_characters: maybe")


@pytest.mark.parametrize("code", range(0x00, 0xA1))
def test_the_payload_precheck_never_misses_a_control_character(code):
    char = chr(code)
    if fn.CONTROL_CHARACTERS.search(char):
        assert fn.may_hold_control_characters({"a": [{"b": f"x{char}y"}]})
        assert fn.strip_control_characters(f"x{char}y") == "xy"
    elif char not in "\\":
        assert not fn.may_hold_control_characters({"a": [{"b": f"x{char}y"}]})
