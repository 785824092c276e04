"""Prometheus metrics of `ml-connector serve`, in a registry of their own (`/metrics`).

    metrics = ServeMetrics()
    record_run(metrics, "acme", result, finished_at=time.time())   # counts of one run (engine.serve.child.RunResult)
    metrics.exposition()                                           # the text format, for /metrics

Every series is labelled with the customer (`customer`: its directory name) and, where it applies, the
pipeline. Updating is pure bookkeeping on the registry: no I/O, no printing.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

RUN_BUCKETS = (0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200)
REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
CONTENT_TYPE = CONTENT_TYPE_LATEST


CUSTOMER = ("customer",)
PIPELINE = ("customer", "pipeline")


class ServeMetrics:
    def __init__(self) -> None:
        self.registry = r = CollectorRegistry(auto_describe=True)

        def counter(name: str, help: str, labels: tuple[str, ...]) -> Counter:
            return Counter(name, help, labels, registry=r)

        def gauge(name: str, help: str, labels: tuple[str, ...]) -> Gauge:
            return Gauge(name, help, labels, registry=r)

        def histogram(name: str, help: str, labels: tuple[str, ...], buckets: tuple[float, ...]) -> Histogram:
            return Histogram(name, help, labels, buckets=buckets, registry=r)

        self.runs = counter("ml_connector_runs", "Runs by outcome: ok, failed_records, quarantined, waiting, "
                            "error, crashed, aborted (cancelled by SIGTERM), busy (another run held the lock: skipped)",
                            (*CUSTOMER, "outcome"))
        self.records = counter("ml_connector_records", "Records planned by a run, by where they ended: created, "
                               "updated, found, unchanged, waiting, quarantined, ignored, not_applied, failed",
                               (*PIPELINE, "outcome"))
        self.run_seconds = histogram("ml_connector_run_duration_seconds", "Duration of a run (extract, plan, load)",
                                     CUSTOMER, RUN_BUCKETS)
        self.pipeline_seconds = histogram("ml_connector_pipeline_duration_seconds",
                                          "Duration of one pipeline's plan and load in a run", PIPELINE, RUN_BUCKETS)
        self.request_seconds = histogram("ml_connector_sapb1_request_duration_seconds",
                                         "Latency of SAP B1 Service Layer requests made by runs",
                                         (*CUSTOMER, "method"), REQUEST_BUCKETS)
        self.last_success = gauge("ml_connector_last_success_timestamp_seconds",
                                  "When a run including this pipeline last finished (Unix time)", PIPELINE)
        self.waiting = gauge("ml_connector_records_waiting",
                             "Records waiting for a dependency after the pipeline's last finished run", PIPELINE)
        self.failed = gauge("ml_connector_records_failed",
                            "Records SAP B1 refused and not re-sent, after the pipeline's last finished run", PIPELINE)
        self.consecutive_failures = gauge("ml_connector_consecutive_failures",
                                          "Runs in a row that did not finish (retried with back-off)", PIPELINE)
        self.in_progress = gauge("ml_connector_runs_in_progress", "Runs in progress", CUSTOMER)
        self.webhooks = counter("ml_connector_webhook_notifications",
                                "SAP B1 webhook notifications received, by result: accepted, duplicate, "
                                "rejected (authentication), invalid, ignored (no pipeline reads or writes it)",
                                (*CUSTOMER, "result"))
        self.customers = gauge("ml_connector_customers", "Customers by state: served, invalid", ("state",))

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


def declare_pipeline(metrics: ServeMetrics, customer: str, pipeline: str) -> None:
    """Create a pipeline's series at zero so they are scraped before its first run."""
    metrics.waiting.labels(customer, pipeline)
    metrics.failed.labels(customer, pipeline)
    metrics.consecutive_failures.labels(customer, pipeline).set(0)


def record_run(metrics: ServeMetrics, customer: str, result: Any, *, finished_at: float,
               failures: dict[str, int] | None = None) -> None:
    """Count one run's `RunResult`: its outcome; for a finished run, its records per outcome, durations,
    B1 request latencies, records waiting and failed, and the time of success of each pipeline it ran.
    `failures`: consecutive failures per pipeline after this run (the scheduler's)."""
    metrics.runs.labels(customer, result.outcome).inc()
    for name, count in (failures or {}).items():
        metrics.consecutive_failures.labels(customer, name).set(count)
    if result.outcome == "busy":
        return
    metrics.run_seconds.labels(customer).observe(max(0.0, float(result.seconds)))
    for method, values in (result.latencies or {}).items():
        histogram = metrics.request_seconds.labels(customer, method)
        for value in values:
            histogram.observe(value)
    if not result.finished:
        return
    for pipeline, outcomes in result.records.items():
        for outcome, count in outcomes.items():
            if count:
                metrics.records.labels(customer, pipeline, outcome).inc(count)
        metrics.waiting.labels(customer, pipeline).set(outcomes.get("waiting", 0))
        metrics.failed.labels(customer, pipeline).set(outcomes.get("failed", 0))
    for pipeline, seconds in result.pipeline_seconds.items():
        metrics.pipeline_seconds.labels(customer, pipeline).observe(seconds)
    for pipeline in result.requested or result.pipelines:
        metrics.last_success.labels(customer, pipeline).set(finished_at)
