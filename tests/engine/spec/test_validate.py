"""`ml-connector validate`: every kind of problem, each named by file, line and field."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest

from engine.cli import main
from engine.kinds import JaggaerTarget, SapB1Source
from engine.problems import Problem
from engine.project import check_project, load_project, order_by_dependencies

from .conftest import edit, line_of


def problems_of(project: Path, *names: str) -> list[str]:
    _, problems = check_project(project, names or None)
    return [str(p) for p in problems]


def test_shipped_project_is_valid(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", "--project", str(project)]) == 0
    out = capsys.readouterr().out
    assert "4 pipeline(s) valid" in out
    specs = load_project(project).pipelines
    names = [s.name for s in specs]
    assert names.index("suppliers") < names.index("purchase_orders") < names.index("invoices")


def test_wrong_entity_suggests_the_right_one(project: Path) -> None:
    f = project / "pipelines" / "invoices.yaml"
    edit(f, "entity: PurchaseInvoices", "entity: PurchaseInvoice")
    line = line_of(f, "entity: PurchaseInvoice")
    assert problems_of(project) == [
        f"pipelines/invoices.yaml:{line}: target.entity: 'PurchaseInvoice' is not a Service Layer entity "
        "(did you mean 'PurchaseInvoices'?)"
    ]


def test_unknown_field_with_suggestion(project: Path) -> None:
    f = project / "pipelines" / "purchase_orders.yaml"
    edit(f, "  primary_key: header.purchaseOrderId", "  primary_keys: header.purchaseOrderId")
    line = line_of(f, "primary_keys")
    problems = problems_of(project, "purchase_orders")
    assert f"pipelines/purchase_orders.yaml:{line}: source.primary_keys: unknown field 'primary_keys' (did you mean 'primary_key'?)" in problems
    assert any("source.primary_key: required field is missing" in p for p in problems)


def test_missing_required_field_points_at_parent(project: Path) -> None:
    f = project / "pipelines" / "suppliers.yaml"
    edit(f, "  external_ref: U_JaggaerRef\n", "")
    line = line_of(f, "target:")
    assert problems_of(project, "suppliers") == [
        f"pipelines/suppliers.yaml:{line}: target.external_ref: required field is missing"
    ]


def test_wrong_type(project: Path) -> None:
    f = project / "pipelines" / "suppliers.yaml"
    edit(f, "overlap_seconds: 60", "overlap_seconds: soon")
    line = line_of(f, "overlap_seconds")
    assert problems_of(project, "suppliers") == [
        f"pipelines/suppliers.yaml:{line}: source.cursor.overlap_seconds: expected a number, got the string 'soon'"
    ]


def test_invalid_yaml_names_line(project: Path) -> None:
    f = project / "pipelines" / "suppliers.yaml"
    edit(f, "  list: /j1p/api/public/ja/v1/companyprofiles", "  list: [unclosed")
    problems = problems_of(project, "suppliers")
    assert len(problems) == 1
    assert problems[0].startswith("pipelines/suppliers.yaml:")
    assert "invalid YAML" in problems[0]


def test_duplicate_key(project: Path) -> None:
    f = project / "pipelines" / "suppliers.yaml"
    edit(f, "mapping: mappings/supplier.yaml\n", "mapping: mappings/supplier.yaml\nmapping: mappings/other.yaml\n")
    line = line_of(f, "mapping: mappings/other.yaml")
    problems = problems_of(project, "suppliers")
    assert f"pipelines/suppliers.yaml:{line}: mapping: duplicate key (the later value would silently win)" in problems


def test_depends_on_unknown_pipeline(project: Path) -> None:
    f = project / "pipelines" / "invoices.yaml"
    edit(f, "depends_on: [purchase_orders, suppliers]", "depends_on: [purchase_order, suppliers]")
    line = line_of(f, "depends_on")
    assert problems_of(project, "invoices") == [
        f"pipelines/invoices.yaml:{line}: depends_on[0]: no pipeline 'purchase_order' (did you mean 'purchase_orders'?)"
    ]


def test_dependency_cycle(project: Path) -> None:
    f = project / "pipelines" / "suppliers.yaml"
    edit(f, "mapping: mappings/supplier.yaml\n", "mapping: mappings/supplier.yaml\ndepends_on: [invoices]\n")
    problems = problems_of(project)
    cycles = [p for p in problems if "dependency cycle" in p]
    assert len(cycles) == 1
    assert ":" in cycles[0].split(" ")[0] and "depends_on[" in cycles[0]
    assert "invoices" in cycles[0] and "suppliers" in cycles[0]


def test_connection_missing_and_wrong_kind(project: Path) -> None:
    f = project / "pipelines" / "purchase_orders.yaml"
    edit(f, "  connection: jaggaer\n", "  connection: jagger\n")
    edit(f, "  connection: sapb1\n", "  connection: jaggaer\n")
    src, tgt = line_of(f, "connection: jagger"), line_of(f, "  connection: jaggaer")
    assert sorted(problems_of(project, "purchase_orders")) == sorted([
        f"pipelines/purchase_orders.yaml:{src}: source.connection: no connection 'jagger' in ml-connector.yaml (did you mean 'jaggaer'?)",
        f"pipelines/purchase_orders.yaml:{tgt}: target.connection: connection 'jaggaer' is of kind 'jaggaer', this target needs a 'sapb1' connection",
    ])


def test_mapping_and_schema_files_must_exist(project: Path) -> None:
    (project / "mappings" / "invoice.yaml").unlink()
    (project / "schemas" / "jaggaer" / "invoice.schema.json").write_text("{not json")
    f = project / "pipelines" / "invoices.yaml"
    problems = problems_of(project, "invoices")
    assert f"pipelines/invoices.yaml:{line_of(f, 'mapping:')}: mapping: file mappings/invoice.yaml does not exist" in problems
    schema_line = line_of(f, "schema:")
    assert any(p.startswith(f"pipelines/invoices.yaml:{schema_line}: source.schema: schemas/jaggaer/invoice.schema.json is not a usable JSON Schema")
               for p in problems)


def test_name_must_match_file(project: Path) -> None:
    f = project / "pipelines" / "suppliers.yaml"
    edit(f, "name: suppliers", "name: supplier")
    assert problems_of(project, "suppliers") == ["pipelines/suppliers.yaml:2: name: 'supplier' must equal the file name 'suppliers'"]


def test_unknown_pipeline_name_on_command_line(project: Path) -> None:
    assert problems_of(project, "invoice") == ["pipelines/: no pipeline 'invoice' (did you mean 'invoices'?)"]


def test_mapping_checker_is_called_with_target_entity(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def check_mapping_file(path: Path, *, target_entity: str | None) -> list[Problem]:
        calls.append((path.name, target_entity))
        return [Problem(f"mappings/{path.name}", 3, "fields.CardCode", "unknown filter 'uper'")]

    monkeypatch.undo()  # drop the conftest stub of _mapping_problems, keep a fake engine.mapping
    fake = types.ModuleType("engine.mapping")
    fake.check_mapping_file = check_mapping_file  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "engine.mapping", fake)
    problems = problems_of(project, "suppliers")
    # a run of `suppliers` loads its pair's other half too: its mapping (to a J1P resource) is checked as well
    assert calls == [("supplier.yaml", "BusinessPartners"), ("supplier_to_jaggaer.yaml", None)]
    assert problems == ["mappings/supplier.yaml:3: fields.CardCode: unknown filter 'uper'",
                        "mappings/supplier_to_jaggaer.yaml:3: fields.CardCode: unknown filter 'uper'"]


def test_all_problems_reported_at_once_and_exit_code(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    edit(project / "pipelines" / "invoices.yaml", "entity: PurchaseInvoices", "entity: PurchaseInvoice")
    edit(project / "pipelines" / "suppliers.yaml", "  records:", "  record:")
    (project / "mappings" / "purchase_order.yaml").unlink()
    assert main(["validate", "--project", str(project)]) == 1
    err = capsys.readouterr().err
    assert "pipelines/invoices.yaml:" in err and "PurchaseInvoice" in err
    assert "pipelines/suppliers.yaml:" in err and "unknown field 'record' (did you mean 'records'?)" in err
    assert "pipelines/purchase_orders.yaml:" in err and "mappings/purchase_order.yaml does not exist" in err


def test_writeback_spec_polls_b1(project: Path) -> None:
    spec = load_project(project).pipeline("suppliers_to_jaggaer")
    assert isinstance(spec.source, SapB1Source) and spec.source.kind == "sapb1"
    assert (spec.source.date_field, spec.source.time_field, spec.source.overlap_seconds) == ("UpdateDate", "UpdateTime", 60)
    assert spec.target == JaggaerTarget(connection="jaggaer", resource="companyprofiles")
    assert spec.pair is not None and spec.pair.with_pipeline == "suppliers"


def test_order_by_dependencies() -> None:
    from engine.kinds import SapB1Target
    from engine.spec import Pipeline

    def s(name: str, *deps: str) -> Pipeline:
        source = SapB1Source("b1", "BusinessPartners", "CardCode")
        return Pipeline(name, Path(name), source, "", SapB1Target("b1", "BusinessPartners", "U_Ref"), deps)

    ordered = [x.name for x in order_by_dependencies([s("c", "b"), s("a"), s("b", "a")])]
    assert ordered == ["a", "b", "c"]


@pytest.mark.parametrize(("schedule", "field", "message"), [
    ('  cron: "0 25 * * *"', "schedule.cron", "the last value (25) is higher than the maximum value (23)"),
    ("  every: 0.1s", "schedule.every", "a cadence of '0.1s' is too short"),
    ("  every: 5m\n  timezone: Mars/Olympus", "schedule.timezone", "unknown time zone 'Mars/Olympus'"),
])
def test_a_schedule_serve_would_refuse_is_reported_by_validate(project: Path, schedule: str, field: str,
                                                               message: str) -> None:
    f = project / "pipelines" / "purchase_orders.yaml"
    edit(f, "  every: 5m", schedule)
    [problem] = problems_of(project, "purchase_orders")
    assert problem.startswith("pipelines/purchase_orders.yaml:") and f": {field}: " in problem and message in problem


def test_named_pipelines_bring_their_pair_partner_and_no_file_is_read_twice(
        project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The other pipeline files are looked at for a `pair.with` naming a loaded one; a partner found that way
    is checked with the rest and not read a second time."""
    import engine.spec

    reads: list[str] = []
    real = engine.spec.load_yaml

    def counting(path, **kwargs):  # noqa: ANN001, ANN003, ANN202
        reads.append(Path(path).name)
        return real(path, **kwargs)

    monkeypatch.setattr(engine.spec, "load_yaml", counting)
    loaded, problems = check_project(project, ["suppliers"])
    assert problems == [] and loaded is not None
    assert [p.name for p in loaded.pipelines] == ["suppliers", "suppliers_to_jaggaer"]
    assert len(reads) == len(set(reads)) and "suppliers_to_jaggaer.yaml" in reads
