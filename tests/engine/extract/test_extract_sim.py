"""Acceptance: extraction over real sockets against the JAGGAER simulator (contract §3, §4.5, §4.6, §9)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from engine.extract import ExtractResult, extract_pipelines
from engine.project import Project, load_project
from engine.state.staging import iter_staged, staged_count

from .conftest import PO_SCHEMA

simulator = pytest.importorskip("simulators.jaggaer")

REPO = Path(__file__).resolve().parents[3]
SOURCES = ("suppliers", "purchase_orders", "invoices")
SCHEMA_FILES = {"suppliers": "company-profile", "purchase_orders": "purchase-order", "invoices": "invoice"}


def make_project(root: Path, *, commit_every: int = 1000, attempts: int = 6, po_schema: dict | None = None) -> Project:
    """The repo's shipped pipelines and project file, with fast retries; record schemas from the repo
    (or a minimal stand-in while the simulator's schemas are not there yet)."""
    (root / "pipelines").mkdir(parents=True)
    for name in SOURCES:
        shutil.copy(REPO / "pipelines" / f"{name}.yaml", root / "pipelines")
    (root / "mappings").mkdir()
    for name in ("supplier", "purchase_order", "invoice"):
        (root / "mappings" / f"{name}.yaml").write_text("fields: {}\n")
    (root / "schemas" / "jaggaer").mkdir(parents=True)
    for name, file in SCHEMA_FILES.items():
        target = root / "schemas" / "jaggaer" / f"{file}.schema.json"
        repo_schema = REPO / "schemas" / "jaggaer" / f"{file}.schema.json"
        if name == "purchase_orders" and po_schema is not None:
            target.write_text(json.dumps(po_schema))
        elif repo_schema.is_file():
            shutil.copy(repo_schema, target)
        else:
            target.write_text(json.dumps(PO_SCHEMA if name == "purchase_orders" else {"type": "object"}))
    text = (REPO / "ml-connector.yaml").read_text()
    text = text.replace("commit_every: 10000", f"commit_every: {commit_every}")
    text = text.replace("    max_concurrency: 8\n  sapb1:",
                        f"    max_concurrency: 4\n    retry: {{attempts: {attempts}, backoff_initial: 0.05, backoff_max: 0.5}}\n  sapb1:")
    (root / "ml-connector.yaml").write_text(text)
    return load_project(root)


@pytest.fixture
def sim(monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    with simulator.start_simulator(seed=60, random_seed=7, history_days=30, page_size=20) as running:
        monkeypatch.setenv("JAGGAER_BASE_URL", running.base_url)
        monkeypatch.setenv("JAGGAER_CLIENT_ID", running.client_id)
        monkeypatch.setenv("JAGGAER_CLIENT_SECRET", running.client_secret)
        yield running


def run(project: Project, *names: str) -> dict[str, ExtractResult]:
    return {r.pipeline: r for r in extract_pipelines(project, list(names) or list(SOURCES))}


def completed(records: list[dict]) -> set[str]:
    return {str(r["header"]["purchaseOrderId"] if "purchaseOrderId" in r["header"] else r["header"]["invoiceId"])
            for r in records if r["header"]["workflowStatus"] == "Completed"}


def staged_keys(project: Project, pipeline: str) -> list[str]:
    return [k for k, _ in iter_staged(project.state_path, pipeline)]


def test_first_pull_everything_second_pull_exactly_the_changes(sim, tmp_path: Path) -> None:  # noqa: ANN001
    project = make_project(tmp_path)
    first = run(project)
    assert all(r.ok for r in first.values()), [r.summary() for r in first.values()]
    assert set(staged_keys(project, "purchase_orders")) == completed(sim.purchase_orders())
    assert set(staged_keys(project, "invoices")) == completed(sim.invoices())
    assert set(staged_keys(project, "suppliers")) == {s["returnCompanyInfo"]["bravoId"] for s in sim.suppliers()}
    assert first["purchase_orders"].new == len(completed(sim.purchase_orders()))
    po = dict(iter_staged(project.state_path, "purchase_orders", keys=["1"])) or dict(iter_staged(project.state_path, "purchase_orders"))
    assert all("lineList" in rec for rec in po.values())  # lines come from the detail reads

    quiet = run(project)
    assert all((r.new, r.changed, r.quarantined) == (0, 0, 0) for r in quiet.values())

    pos = sorted(completed(sim.purchase_orders()), key=int)
    sim.change_purchase_order(int(pos[0]), lines=[{"lineNumber": 1, "quantity": 99}])
    sim.cancel_purchase_order(int(pos[1]))
    created = sim.create_purchase_order()
    supplier = sim.suppliers()[0]["returnCompanyInfo"]["bravoId"]
    sim.change_supplier(supplier, bizPhone="+1 937 555 0199")
    after = run(project)
    assert (after["purchase_orders"].new, after["purchase_orders"].changed) == (1, 2)
    assert (after["suppliers"].new, after["suppliers"].changed) == (0, 1)
    assert (after["invoices"].new, after["invoices"].changed) == (0, 0)
    staged = dict(iter_staged(project.state_path, "purchase_orders",
                              keys=[pos[0], pos[1], str(created["header"]["purchaseOrderId"])]))
    assert staged[pos[1]]["header"]["poStatus"] == "Cancelled"
    assert staged_count(project.state_path, "purchase_orders") == len(completed(sim.purchase_orders()))


def test_crash_between_pages_then_rerun_stages_every_record_once(sim, tmp_path: Path) -> None:  # noqa: ANN001
    sim.create_purchase_order()  # 61 orders: several commits of 20 to kill between
    project = make_project(tmp_path, commit_every=20)
    sim.set_knobs(latency_ms=15)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    child = subprocess.Popen([sys.executable, "-m", "tests.engine.extract._crash_child", str(tmp_path), "purchase_orders"],
                             cwd=REPO, env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        for line in child.stdout:
            if line.startswith("read ") and int(line.split()[1]) >= 40:
                break
        child.send_signal(signal.SIGKILL)
    finally:
        child.wait(timeout=10)
    assert child.returncode == -signal.SIGKILL
    sim.set_knobs(latency_ms=0)
    partial = staged_count(project.state_path, "purchase_orders")
    expected = completed(sim.purchase_orders())
    assert 0 < partial < len(expected)  # the kill landed mid-pull, after at least one commit
    result = run(project, "purchase_orders")["purchase_orders"]
    assert result.ok and result.new == len(expected) - partial
    with duckdb.connect(str(project.state_path)) as conn:
        total, distinct = conn.execute("SELECT count(*), count(DISTINCT id) FROM staging.purchase_orders").fetchone()
    assert total == distinct == len(expected)
    assert set(staged_keys(project, "purchase_orders")) == expected


def test_token_expiry_mid_pull(sim, tmp_path: Path) -> None:  # noqa: ANN001
    project = make_project(tmp_path)
    sim.set_knobs(token_lifetime=1, latency_ms=60)  # the pull outlives several tokens
    result = run(project, "purchase_orders")["purchase_orders"]
    assert result.ok, result.summary()
    assert set(staged_keys(project, "purchase_orders")) == completed(sim.purchase_orders())
    assert sim.counters["token"] >= 2


def test_429_storm_is_ridden_out(sim, tmp_path: Path) -> None:  # noqa: ANN001
    project = make_project(tmp_path, attempts=10)
    sim.set_knobs(rate_limit=40, retry_after=1)
    started = time.monotonic()
    result = run(project, "purchase_orders")["purchase_orders"]
    assert result.ok, result.summary()
    assert result.retries > 0
    assert set(staged_keys(project, "purchase_orders")) == completed(sim.purchase_orders())
    assert time.monotonic() - started < 30


def test_transient_returncodes_5xx_and_drops_are_retried(sim, tmp_path: Path) -> None:  # noqa: ANN001
    project = make_project(tmp_path, attempts=8)
    sim.set_knobs(retryable_rate=0.15, error_rate=0.1, drop_before_rate=0.05, returncode_type="mixed")
    results = run(project)
    assert all(r.ok for r in results.values()), [r.summary() for r in results.values()]
    assert sum(r.retries for r in results.values()) > 0
    assert set(staged_keys(project, "purchase_orders")) == completed(sim.purchase_orders())
    assert set(staged_keys(project, "invoices")) == completed(sim.invoices())


def test_list_returncode_error_fails_only_that_source(sim, tmp_path: Path) -> None:  # noqa: ANN001
    project = make_project(tmp_path)
    spec = tmp_path / "pipelines" / "invoices.yaml"
    spec.write_text(spec.read_text().replace("filter: workflowStatus==Completed", "filter: workflowState==Completed"))
    project = load_project(tmp_path)  # the project is loaded once per command: load the edited one
    results = run(project)
    assert not results["invoices"].ok
    assert "returnCode 2: Invalid filter field: workflowState" in results["invoices"].error
    assert results["purchase_orders"].ok and results["suppliers"].ok
    assert staged_count(project.state_path, "invoices") == 0
    with duckdb.connect(str(project.state_path)) as conn:
        assert conn.execute("SELECT count(*) FROM extract_state WHERE pipeline = 'invoices'").fetchone()[0] == 0


def test_records_that_do_not_fit_the_schema_are_quarantined(sim, tmp_path: Path) -> None:  # noqa: ANN001
    strict = json.loads(json.dumps(PO_SCHEMA))
    strict["properties"]["header"]["properties"]["total"] = {
        "type": "object", "properties": {"value": {"type": "number", "minimum": 500}}}
    project = make_project(tmp_path, po_schema=strict)
    small = {str(p["header"]["purchaseOrderId"]) for p in sim.purchase_orders()
             if p["header"]["workflowStatus"] == "Completed" and p["header"]["total"]["value"] < 500}
    assert small  # the seed has some
    result = run(project, "purchase_orders")["purchase_orders"]
    assert result.ok and result.quarantined == len(small)
    assert set(staged_keys(project, "purchase_orders")) == completed(sim.purchase_orders()) - small
    with duckdb.connect(str(project.state_path)) as conn:
        rows = conn.execute("SELECT record_key, stage, reason FROM quarantine WHERE resolved_at IS NULL").fetchall()
    assert {r[0] for r in rows} == small
    assert all(r[1] == "validate" and "header.total.value: " in r[2] and "less than the minimum of 500" in r[2] for r in rows)


def test_ties_on_equal_last_modified(sim, tmp_path: Path) -> None:  # noqa: ANN001
    project = make_project(tmp_path)
    run(project, "purchase_orders")
    older = sorted(completed(sim.purchase_orders()), key=int)[0]
    sim.clock.freeze()
    burst = [sim.create_purchase_order()["header"]["purchaseOrderId"] for _ in range(45)]  # > 2 pages, one stamp
    stamps = {p["header"]["lastUpdate"] for p in sim.purchase_orders() if p["header"]["purchaseOrderId"] in burst}
    assert len(stamps) == 1
    result = run(project, "purchase_orders")["purchase_orders"]
    assert result.new == 45
    late = sim.create_purchase_order()["header"]["purchaseOrderId"]  # same frozen stamp, after the read
    # an older record changed now takes the cursor's own stamp, behind (T, X): the overlap finds it
    sim.change_purchase_order(int(older), lines=[{"lineNumber": 1, "quantity": 7}])
    result = run(project, "purchase_orders")["purchase_orders"]
    assert (result.new, result.changed) == (1, 1)
    assert str(late) in staged_keys(project, "purchase_orders")


def test_cli_extract_prints_one_summary_line_per_source(sim, tmp_path: Path, capsys: pytest.CaptureFixture[str],  # noqa: ANN001
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from engine.cli import main

    make_project(tmp_path)
    monkeypatch.setattr("engine.spec._mapping_problems", lambda path, target_entity: [])
    assert main(["extract", "--project", str(tmp_path), "purchase_orders", "suppliers"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    n = len(completed(sim.purchase_orders()))
    assert len(lines) == 2
    assert lines[0].startswith("suppliers: 6 new, 0 changed, 0 quarantined (")
    assert lines[1].startswith(f"purchase_orders: {n} new, 0 changed, 0 quarantined (")
    assert "pages" in lines[1] and "requests" in lines[1]

    monkeypatch.setenv("JAGGAER_CLIENT_SECRET", "not-the-secret")
    assert main(["extract", "--project", str(tmp_path), "purchase_orders"]) == 1
    out = capsys.readouterr()
    assert "refused the client credentials" in out.out and "not-the-secret" not in out.out + out.err
