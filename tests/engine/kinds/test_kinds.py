"""The registry of connection kinds (`engine.kinds`): a `source:`/`target:` block is typed by its marker key,
every registered adapter resolves, and the pipeline schema knows every kind the registry does."""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import pytest

from engine.kinds import (
    CONNECTION_KINDS,
    SOURCE_KINDS,
    TARGET_KINDS,
    JaggaerCursor,
    JaggaerSource,
    JaggaerTarget,
    SapB1Source,
    SapB1Target,
    parse_source,
    parse_target,
)

REPO = Path(__file__).resolve().parents[3]


def test_a_source_is_typed_by_its_marker() -> None:
    j1p = parse_source({"connection": "jaggaer", "list": "/j1p/api/public/je/v1/purchaseorders",
                        "records": "a.b", "primary_key": "header.id", "schema": "schemas/x.json",
                        "cursor": {"filter_key": "lastUpdate", "field": "header.lastUpdate", "tiebreak_key": "id"}})
    assert isinstance(j1p, JaggaerSource) and j1p.kind == "jaggaer"
    assert j1p.cursor == JaggaerCursor("lastUpdate", "header.lastUpdate", "id") and j1p.detail is None
    b1 = parse_source({"connection": "b1", "entity": "BusinessPartners", "primary_key": "CardCode",
                       "cursor": {"date_field": "UpdateDate", "time_field": "UpdateTime"}, "select": ["Phone1"]})
    assert isinstance(b1, SapB1Source) and b1.kind == "sapb1"
    assert (b1.select, b1.overlap_seconds, b1.schema) == (("Phone1",), 60.0, None)


def test_a_target_is_typed_by_its_marker() -> None:
    assert parse_target({"connection": "b1", "entity": "PurchaseOrders", "external_ref": "U_Ref"}) == \
        SapB1Target("b1", "PurchaseOrders", "U_Ref")
    assert parse_target({"connection": "jaggaer", "resource": "companyprofiles"}) == \
        JaggaerTarget("jaggaer", "companyprofiles")


@pytest.mark.parametrize("kind", [*SOURCE_KINDS.values()], ids=list(SOURCE_KINDS))
def test_every_source_adapter_takes_the_kind_wide_arguments(kind) -> None:  # noqa: ANN001
    parameters = inspect.signature(kind.extractor()).parameters
    assert list(parameters)[:2] == ["project", "spec"]
    assert {"progress", "run_id", "transport"} <= set(parameters)


@pytest.mark.parametrize("kind", [*TARGET_KINDS.values()], ids=list(TARGET_KINDS))
def test_every_target_adapter_takes_the_kind_wide_arguments(kind) -> None:  # noqa: ANN001
    load = kind.loader()
    assert inspect.iscoroutinefunction(load)
    assert list(inspect.signature(load).parameters)[:8] == [
        "project", "specs", "report", "refs", "notify", "concurrency", "two_ways", "versions"]


def test_every_connection_kind_has_a_check_and_is_allowed_by_the_project_schema() -> None:
    schema = json.loads((REPO / "schemas" / "project.schema.json").read_text())
    allowed = set(json.dumps(schema).split('"kind": {"enum": [')[1].split("]")[0].replace('"', "").split(", "))
    assert allowed == set(CONNECTION_KINDS) >= set(SOURCE_KINDS) | set(TARGET_KINDS)
    for kind in CONNECTION_KINDS.values():
        assert {"pipelines", "root", "transport"} <= set(inspect.signature(kind.checker()).parameters)


def test_the_pipeline_schema_tells_the_kinds_by_the_registry_markers() -> None:
    schema = json.loads((REPO / "schemas" / "pipeline.schema.json").read_text())
    source, target = schema["properties"]["source"], schema["properties"]["target"]
    assert source["if"]["required"] == [SOURCE_KINDS["sapb1"].marker]
    assert target["if"]["required"] == [TARGET_KINDS["jaggaer"].marker]
    defs = schema["$defs"]
    assert SOURCE_KINDS["jaggaer"].marker in defs["jaggaer_source"]["required"]
    assert TARGET_KINDS["sapb1"].marker in defs["sapb1_target"]["required"]
