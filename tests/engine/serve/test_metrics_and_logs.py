"""A run's report as serve counts and logs it: `summarize` (RunReport -> RunResult), the Prometheus
registry updated from it, and structured log lines that never carry a secret."""

from __future__ import annotations

import io
import json
import logging
from datetime import UTC, datetime

import pytest
from prometheus_client.parser import text_string_to_metric_families

from engine import secrets
from engine.load import LoadStats
from engine.runner import Failure, PipelineReport, RunReport
from engine.serve.child import RunResult, summarize
from engine.serve.logs import configure, event
from engine.serve.metrics import ServeMetrics, declare_pipeline, record_run


def report(aborted: str | None = None) -> RunReport:
    suppliers = PipelineReport("suppliers", "BusinessPartners", planned={"create": 3, "skip": 2},
                               stats=LoadStats(created=3, writes=3), seconds=1.5)
    orders = PipelineReport("purchase_orders", "PurchaseOrders", planned={"create": 4, "wait": 2},
                            stats=LoadStats(created=3, failed=1, writes=4), seconds=2.5)
    orders.problems = [Failure("purchase_orders", "PO-7", "failed", "-5002", "Bad account; password=hunter2-secret"),
                       Failure("purchase_orders", "PO-8", "waiting", "waiting", "supplier S1 not in SAP B1 yet"),
                       Failure("purchase_orders", "PO-9", "waiting", "waiting", "supplier S1 not in SAP B1 yet")]
    return RunReport("20240502T120000Z-abc123", datetime(2024, 5, 2, 12, tzinfo=UTC), [suppliers, orders],
                     aborted=aborted, seconds=4.25)


@pytest.fixture(autouse=True)
def clean_secrets():
    secrets.reset()
    yield
    secrets.reset()


def samples(metrics: ServeMetrics) -> dict[tuple[str, tuple], float]:
    text = metrics.exposition().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_summarize_counts_every_record_and_lists_the_failed_ones_redacted():
    secrets.register("hunter2-secret")
    result = summarize(report(), ["suppliers", "purchase_orders"])
    assert (result.outcome, result.exit_code, result.writes) == ("failed_records", 3, 7)
    assert result.records["suppliers"]["created"] == 3 and result.records["suppliers"]["unchanged"] == 2
    assert result.records["purchase_orders"] == {"created": 3, "updated": 0, "found": 0, "unchanged": 0, "waiting": 2,
                                                 "quarantined": 0, "ignored": 0, "not_applied": 0, "failed": 1}
    assert result.failures == [{"pipeline": "purchase_orders", "ref": "PO-7", "status": "failed", "code": "-5002",
                                "message": "Bad account; password=***"}]
    assert summarize(report(aborted="terminated (SIGTERM)")).outcome == "aborted"


def test_metrics_of_a_finished_run():
    metrics = ServeMetrics()
    declare_pipeline(metrics, "acme", "invoices")
    result = summarize(report(), ["suppliers", "purchase_orders"])
    result.latencies = {"POST": [0.02, 0.3], "GET": [0.004]}
    record_run(metrics, "acme", result, finished_at=1714651200.0, failures={"suppliers": 0, "purchase_orders": 0})
    got = samples(metrics)
    assert got[("ml_connector_runs_total", (("customer", "acme"), ("outcome", "failed_records")))] == 1
    created = ("ml_connector_records_total", (("customer", "acme"), ("outcome", "created"), ("pipeline", "suppliers")))
    assert got[created] == 3
    assert got[("ml_connector_records_waiting", (("customer", "acme"), ("pipeline", "purchase_orders")))] == 2
    assert got[("ml_connector_records_failed", (("customer", "acme"), ("pipeline", "purchase_orders")))] == 1
    assert got[("ml_connector_records_waiting", (("customer", "acme"), ("pipeline", "invoices")))] == 0
    assert got[("ml_connector_last_success_timestamp_seconds", (("customer", "acme"), ("pipeline", "suppliers")))] == 1714651200
    assert got[("ml_connector_run_duration_seconds_count", (("customer", "acme"),))] == 1
    assert got[("ml_connector_run_duration_seconds_sum", (("customer", "acme"),))] == 4.25
    assert got[("ml_connector_sapb1_request_duration_seconds_count", (("customer", "acme"), ("method", "POST")))] == 2
    assert got[("ml_connector_pipeline_duration_seconds_sum", (("customer", "acme"), ("pipeline", "purchase_orders")))] == 2.5
    record_run(metrics, "acme", result, finished_at=1714651260.0)
    assert samples(metrics)[created] == 6  # counters add up run after run


def test_a_failed_or_skipped_run_counts_its_outcome_but_no_success():
    metrics = ServeMetrics()
    record_run(metrics, "acme", RunResult("error", ["suppliers"], 1, message="unreachable", seconds=20.0),
               finished_at=1.0, failures={"suppliers": 2})
    record_run(metrics, "acme", RunResult("busy", ["suppliers"], 6), finished_at=2.0)
    got = samples(metrics)
    assert got[("ml_connector_runs_total", (("customer", "acme"), ("outcome", "error")))] == 1
    assert got[("ml_connector_runs_total", (("customer", "acme"), ("outcome", "busy")))] == 1
    assert got[("ml_connector_consecutive_failures", (("customer", "acme"), ("pipeline", "suppliers")))] == 2
    assert got[("ml_connector_run_duration_seconds_count", (("customer", "acme"),))] == 1  # busy: no run happened
    assert not any(name == "ml_connector_last_success_timestamp_seconds" for name, _ in got)


@pytest.mark.parametrize("fmt", ["json", "text"])
def test_log_lines_are_one_per_event_and_redacted(fmt):
    secrets.register("s3cr3t-password-value")
    out = io.StringIO()
    log = configure(fmt, out)
    try:
        event(log, "record", logging.WARNING, customer="acme", ref="PO-7",
              message="B1 said: login s3cr3t-password-value refused", code=None)
        event(log, "run", customer="acme", records={"created": 3}, pipelines=["a", "b"])
    finally:
        logging.getLogger().handlers.clear()
    lines = out.getvalue().splitlines()
    assert len(lines) == 2 and "s3cr3t-password-value" not in out.getvalue()
    if fmt == "json":
        first = json.loads(lines[0])
        assert (first["level"], first["event"], first["ref"]) == ("warning", "record", "PO-7")
        assert first["message"] == "B1 said: login *** refused" and first["ts"].endswith("Z")
        assert json.loads(lines[1])["records"] == {"created": 3}
    else:
        assert "WARNING record customer=acme ref=PO-7 message=\"B1 said: login *** refused\"" in lines[0]
        assert 'records={"created": 3} pipelines=["a", "b"]' in lines[1]
