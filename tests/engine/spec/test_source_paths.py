"""`validate` checks a J1P source's `records`, `primary_key` and `cursor.field` against its schemas,
so a typo is reported instead of extracting nothing."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from engine.cli import main
from engine.project import check_project
from engine.spec import list_schema_path

from .conftest import REPO, edit, line_of


@pytest.fixture
def schemas(project: Path) -> Path:
    """The project with the repository's real JAGGAER schemas (records, list items, list answers)."""
    target = project / "schemas" / "jaggaer"
    shutil.rmtree(target)
    shutil.copytree(REPO / "schemas" / "jaggaer", target)
    return project


def source_problems(project: Path, *names: str) -> list[str]:
    _, problems = check_project(project, names or None)
    return [str(p) for p in problems if p.field.startswith("source.")]


def test_the_shipped_pipelines_resolve(schemas: Path) -> None:
    assert source_problems(schemas) == []


def test_every_shipped_record_schema_has_its_list_answer_schema() -> None:
    for name in ("purchase-order", "invoice", "company-profile"):
        path = list_schema_path(REPO / "schemas" / "jaggaer" / f"{name}.schema.json")
        assert path.is_file(), path
        assert json.loads(path.read_text())["additionalProperties"] is False


def test_a_typo_in_records_is_reported_with_the_right_spelling(schemas: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = schemas / "pipelines" / "purchase_orders.yaml"
    edit(f, "records: jepurchaseorderList.", "records: jepurchaseorderLisst.")
    line = line_of(f, "records:")
    assert source_problems(schemas, "purchase_orders") == [
        f"pipelines/purchase_orders.yaml:{line}: source.records: 'jepurchaseorderLisst.jepurchaseorder' is not in "
        "schemas/jaggaer/purchase-order-list.schema.json (did you mean 'jepurchaseorderList.jepurchaseorder'?)"
    ]
    assert main(["validate", "--project", str(schemas)]) == 1
    err = capsys.readouterr().err
    assert "source.records: 'jepurchaseorderLisst.jepurchaseorder' is not in" in err and "Traceback" not in err


def test_records_must_name_a_list(schemas: Path) -> None:
    f = schemas / "pipelines" / "invoices.yaml"
    edit(f, "records: jiinvoiceList.jiinvoice", "records: jiinvoiceList")
    assert source_problems(schemas, "invoices") == [
        f"pipelines/invoices.yaml:{line_of(f, 'records:')}: source.records: 'jiinvoiceList' in "
        "schemas/jaggaer/invoice-list.schema.json is not a list"
    ]


def test_records_cannot_go_through_a_list(schemas: Path) -> None:
    f = schemas / "pipelines" / "suppliers.yaml"
    edit(f, "records: returnCompanyData ", "records: returnCompanyData.returnCompanyInfo ")
    assert source_problems(schemas, "suppliers") == [
        f"pipelines/suppliers.yaml:{line_of(f, 'records:')}: source.records: 'returnCompanyData.returnCompanyInfo' is not "
        "in schemas/jaggaer/company-profile-list.schema.json ('returnCompanyData' is a list, not a mapping)"
    ]


def test_primary_key_and_cursor_field_are_checked_in_the_list_item(schemas: Path) -> None:
    f = schemas / "pipelines" / "purchase_orders.yaml"
    edit(f, "primary_key: header.purchaseOrderId", "primary_key: header.purchaseOrderID")
    edit(f, "    field: header.lastUpdate", "    field: header.lastUpdated")
    assert source_problems(schemas, "purchase_orders") == [
        f"pipelines/purchase_orders.yaml:{line_of(f, 'primary_key:')}: source.primary_key: 'header.purchaseOrderID' is not "
        "in schemas/jaggaer/purchase-order-list-item.schema.json (did you mean 'header.purchaseOrderId'?)",
        f"pipelines/purchase_orders.yaml:{line_of(f, 'field: header')}: source.cursor.field: 'header.lastUpdated' is not "
        "in schemas/jaggaer/purchase-order-list-item.schema.json (did you mean 'header.lastUpdate'?)",
    ]


def test_a_key_must_be_a_value(schemas: Path) -> None:
    f = schemas / "pipelines" / "suppliers.yaml"
    edit(f, "primary_key: returnCompanyInfo.bravoId", "primary_key: returnCompanyInfo")
    assert source_problems(schemas, "suppliers") == [
        f"pipelines/suppliers.yaml:{line_of(f, 'primary_key:')}: source.primary_key: 'returnCompanyInfo' in "
        "schemas/jaggaer/company-profile.schema.json is a mapping, not a value"
    ]


def test_without_a_list_schema_the_record_schema_is_used(schemas: Path) -> None:
    (schemas / "schemas" / "jaggaer" / "company-profile-list.schema.json").unlink()
    f = schemas / "pipelines" / "suppliers.yaml"
    edit(f, "primary_key: returnCompanyInfo.bravoId", "primary_key: returnCompanyInfo.bravoid")
    edit(f, "records: returnCompanyData ", "records: returnCompanyDat ")  # cannot be checked: no list schema
    assert source_problems(schemas, "suppliers") == [
        f"pipelines/suppliers.yaml:{line_of(f, 'primary_key:')}: source.primary_key: 'returnCompanyInfo.bravoid' is not "
        "in schemas/jaggaer/company-profile.schema.json (did you mean 'returnCompanyInfo.bravoId'?)"
    ]


def test_refs_are_followed_within_the_file(schemas: Path) -> None:
    path = schemas / "schemas" / "jaggaer" / "purchase-order-list-item.schema.json"
    schema = json.loads(path.read_text())
    schema["$defs"]["header"] = schema["properties"]["header"]
    schema["properties"]["header"] = {"$ref": "#/$defs/header"}
    path.write_text(json.dumps(schema))
    f = schemas / "pipelines" / "purchase_orders.yaml"
    assert source_problems(schemas, "purchase_orders") == []
    edit(f, "primary_key: header.purchaseOrderId", "primary_key: header.supplier.idd")
    assert source_problems(schemas, "purchase_orders") == [
        f"pipelines/purchase_orders.yaml:{line_of(f, 'primary_key:')}: source.primary_key: 'header.supplier.idd' is not "
        "in schemas/jaggaer/purchase-order-list-item.schema.json (did you mean 'header.supplier.id'?)"
    ]


def test_an_open_schema_cannot_refute_a_name(project: Path) -> None:
    # the spec tests' stand-in record schemas are {"type": "object"}: nothing to check against
    f = project / "pipelines" / "purchase_orders.yaml"
    edit(f, "primary_key: header.purchaseOrderId", "primary_key: header.anything")
    assert source_problems(project, "purchase_orders") == []
