"""Workspace discovery (which customers a serve runs) and what it schedules for each."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from engine.serve.scheduler import Schedule
from engine.serve.workspace import (
    Customer,
    WorkspaceError,
    discover,
    entity_pipelines,
    load_customer,
)

REPO = Path(__file__).resolve().parents[3]


def project(path: Path) -> Path:
    """A copy of the repository's project (pipelines, mappings, schemas, ml-connector.yaml)."""
    path.mkdir(parents=True)
    for folder in ("pipelines", "mappings", "schemas"):
        shutil.copytree(REPO / folder, path / folder)
    shutil.copy(REPO / "ml-connector.yaml", path / "ml-connector.yaml")
    return path


def marker(path: Path) -> Path:
    path.mkdir(parents=True)
    (path / "ml-connector.yaml").write_text("project: x\n")
    return path


def test_a_workspace_is_its_subdirectories_holding_a_project(tmp_path):
    marker(tmp_path / "ws" / "globex")
    marker(tmp_path / "ws" / "acme")
    marker(tmp_path / "ws" / ".hidden")
    (tmp_path / "ws" / "notes").mkdir()  # no project file: not a customer
    (tmp_path / "ws" / "README.md").write_text("x")
    marker(tmp_path / "ws" / "acme" / "nested")  # not searched below the first level
    customers = discover(tmp_path / "ws")
    assert [(c.id, c.root) for c in customers] == [
        ("acme", (tmp_path / "ws" / "acme").resolve()), ("globex", (tmp_path / "ws" / "globex").resolve())]


def test_explicit_projects_add_to_the_workspace_once_each_with_unique_ids(tmp_path):
    marker(tmp_path / "ws" / "acme")
    other = marker(tmp_path / "elsewhere" / "acme")
    third = marker(tmp_path / "x" / "Initech Corp")
    customers = discover(tmp_path / "ws", [tmp_path / "ws" / "acme", other, third, other])
    assert [c.id for c in customers] == ["acme", "acme-2", "Initech-Corp"]
    assert customers[1] == Customer("acme-2", other.resolve())


def test_projects_without_a_workspace(tmp_path):
    one = marker(tmp_path / "one")
    assert discover(None, [one]) == [Customer("one", one.resolve())]


@pytest.mark.parametrize("case", ["empty", "missing", "not_a_project", "nothing"])
def test_nothing_to_serve_is_an_error(tmp_path, case):
    (tmp_path / "ws").mkdir()
    (tmp_path / "plain").mkdir()
    with pytest.raises(WorkspaceError):
        if case == "empty":
            discover(tmp_path / "ws")
        elif case == "missing":
            discover(tmp_path / "nope")
        elif case == "not_a_project":
            discover(None, [tmp_path / "plain"])
        else:
            discover(None, [])


def test_the_demo_project_schedules_every_pipeline(tmp_path):
    root = project(tmp_path / "acme")
    plan = load_customer(Customer("acme", root), default_every=900)
    assert plan.ok and plan.problems == []
    schedules = {p.name: p.schedule for p in plan.pipelines}
    assert {k: schedules[k] for k in ("suppliers", "purchase_orders", "invoices")} == {
        "suppliers": Schedule(every=300.0), "purchase_orders": Schedule(every=300.0),
        "invoices": Schedule(cron="*/15 * * * *", timezone="UTC")}
    assert "suppliers_to_jaggaer" in schedules  # SAP B1 -> JAGGAER: `run_pipelines` decides what it runs
    assert plan.sapb1_connection == "sapb1"
    assert entity_pipelines(plan.pipelines) == {
        "BusinessPartners": ["suppliers", "suppliers_to_jaggaer"], "PurchaseOrders": ["purchase_orders"],
        "PurchaseInvoices": ["invoices"]}


def test_a_pipeline_without_a_schedule_runs_at_the_default(tmp_path):
    root = project(tmp_path / "acme")
    path = root / "pipelines" / "suppliers.yaml"
    path.write_text(re.sub(r"schedule:.*\n(  .*\n)+", "", path.read_text()))
    plan = load_customer(Customer("acme", root), default_every=120)
    assert {p.name: p.schedule for p in plan.pipelines}["suppliers"] == Schedule(every=120.0)


def test_an_invalid_schedule_or_spec_is_a_problem_of_that_customer(tmp_path):
    root = project(tmp_path / "acme")
    path = root / "pipelines" / "invoices.yaml"
    path.write_text(path.read_text().replace('cron: "*/15 * * * *"', 'cron: "99 * * * *"'))
    plan = load_customer(Customer("acme", root), default_every=900)
    assert not plan.ok
    assert any("schedule.cron" in p and "99" in p for p in plan.problems), plan.problems

    broken = project(tmp_path / "globex")
    path = broken / "pipelines" / "suppliers.yaml"
    path.write_text(path.read_text().replace("every: 5m", "every: soon"))
    plan = load_customer(Customer("globex", broken), default_every=900)
    assert not plan.ok and any("schedule.every" in p for p in plan.problems), plan.problems


def test_a_broken_mapping_does_not_stop_scheduling(tmp_path):
    """Mappings are not checked when scheduling: the runs of that pipeline fail (and are retried), alone."""
    root = project(tmp_path / "acme")
    (root / "mappings" / "purchase_order.yaml").write_text("this: [is not a mapping\n")
    plan = load_customer(Customer("acme", root), default_every=900)
    assert plan.ok and len(plan.pipelines) == 4
