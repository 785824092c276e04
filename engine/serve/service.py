"""`ml-connector serve` at work: customers' pipelines on their cadences, each run in a child process.

    serve = Serve(plans, ServeOptions(port=9464), log)
    serve.start()            # HTTP endpoint, scheduler, one worker thread per customer, webhooks
    serve.wait()             # until stop() (SIGTERM/SIGINT handlers call it)
    serve.shutdown()         # runs in flight end (SIGTERM forwarded), subscriptions removed

Threads and processes:
- APScheduler (a background scheduler) keeps time: one job per customer and cadence marks that
  cadence's pipelines due (`engine.serve.scheduler`); a job does nothing else.
- One worker thread per customer runs what is due, one run at a time, each in a child process started
  by a multiprocessing fork server that has the engine imported. `--max-parallel` bounds the runs of
  all customers together. A customer's crash, hang or failure stays in its own process and thread.
- Exclusion is the engine's own (`engine.locks`): a child's `run_pipelines(wait=0)` meets a project or
  company lock held by anyone else (a person's `ml-connector run`, another serve) and returns busy; the
  tick is skipped and logged, not counted as a failure.
- Shutdown: the scheduler stops, each child gets SIGTERM — in its main thread `run_pipelines` cancels
  the load as Ctrl-C does, in-flight writes stay journalled as intents for the next run, the run is
  recorded aborted — and serve waits for it (`--grace` seconds, then SIGKILL, which is crash-safe too).
  A SIGKILLed serve leaves its child to finish its run; the flock dies with whichever holds it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any

from engine.serve import child as child_module
from engine.serve.child import RunResult
from engine.serve.health import HttpEndpoint
from engine.serve.logs import event
from engine.serve.metrics import ServeMetrics, declare_pipeline, record_run
from engine.serve.scheduler import (
    SKIPPED,
    PipelineState,
    RetryPolicy,
    Schedule,
    apply_outcome,
    make_trigger,
    mark_due,
    next_wakeup,
    pick_batch,
    take,
)
from engine.serve.webhooks import PATH_PREFIX, Endpoint, Receiver, WebhookAuth, webhook_id
from engine.serve.workspace import CustomerPlan, entity_pipelines, register_secrets

PRELOAD = ["engine.runner", "engine.extract", "engine.serve.child"]
SETTLE = 0.05  # seconds a worker waits after a wake-up, so ticks of one instant go in one run


@dataclass
class ServeOptions:
    port: int = 9464
    max_parallel: int = 4
    grace: float = 30.0  # seconds a run may take to stop after SIGTERM before it is killed
    run_timeout: float | None = None  # a run still going after this long is stopped like at shutdown
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    webhooks: bool = False
    webhook_url: str | None = None  # what B1 is told to call (default: this endpoint's loopback URL)
    webhook_key: str | None = None  # the HMAC key (default: a fresh random one per start)
    verify_certificate: bool = True


class CustomerWorker:
    """One customer: its pipelines' states and the thread that runs what is due."""

    def __init__(self, serve: Serve, plan: CustomerPlan) -> None:
        self.serve, self.plan = serve, plan
        self.customer = plan.customer
        self.states = {p.name: PipelineState(p.name, p.schedule) for p in plan.pipelines}
        self.cond = threading.Condition()
        self.thread = threading.Thread(target=self._loop, name=f"customer-{self.customer.id}", daemon=True)
        self.process: multiprocessing.process.BaseProcess | None = None
        self.last: dict[str, Any] = {}
        self.runs = 0

    # -- called from other threads ----------------------------------------------------------------

    def nudge(self, names: Iterable[str], reason: str) -> None:
        with self.cond:
            if mark_due(self.states, names, reason):
                self.cond.notify_all()

    def wake(self) -> None:
        with self.cond:
            self.cond.notify_all()

    def status(self) -> dict[str, Any]:
        with self.cond:
            now = time.monotonic()
            pipelines = {s.name: {"schedule": s.schedule.describe(), "due": s.due, "failures": s.failures,
                                  **({"retry_in": round(s.not_before - now, 1)} if s.not_before > now else {})}
                         for s in self.states.values()}
        state = "running" if self.process is not None else (
            "backoff" if any(p["failures"] for p in pipelines.values()) else "idle")
        return {"state": state, "root": str(self.customer.root), "runs": self.runs, "pipelines": pipelines,
                "last_run": self.last}

    # -- the worker thread ------------------------------------------------------------------------

    def _next_batch(self) -> list[str] | None:
        """Block until pipelines are due (and out of back-off) or serve stops (None)."""
        settled = False
        with self.cond:
            while not self.serve.stopping.is_set():
                now = time.monotonic()
                batch = pick_batch(self.states, now)
                if batch and settled:
                    return batch
                if batch:
                    settled = True
                    self.cond.wait(SETTLE)
                    continue
                self.cond.wait(next_wakeup(self.states, now))
        return None

    def _loop(self) -> None:
        serve = self.serve
        while True:
            if self._next_batch() is None:
                return
            if not serve.acquire_slot():
                return
            try:
                with self.cond:
                    batch = pick_batch(self.states, time.monotonic())
                    reasons = take(self.states, batch)
                if batch:
                    self._run(batch, reasons)
            except Exception as exc:  # a bug here must not end this customer's service
                event(serve.log, "worker_error", logging.ERROR, customer=self.customer.id, error=repr(exc))
                serve.stopping.wait(1.0)
            finally:
                serve.release_slot()

    def _run(self, batch: list[str], reasons: dict[str, set[str]]) -> None:
        serve, cid = self.serve, self.customer.id
        why = sorted({r for rs in reasons.values() for r in rs})
        event(serve.log, "run_start", logging.DEBUG, customer=cid, pipelines=batch, reason=why)
        serve.metrics.in_progress.labels(cid).inc()
        try:
            result = serve.execute(self, batch)
        finally:
            serve.metrics.in_progress.labels(cid).dec()
        finished_at = time.time()
        with self.cond:
            delay = apply_outcome(self.states, batch, result.outcome, time.monotonic(), serve.options.retry)
            failures = {name: self.states[name].failures for name in batch}
        self.runs += 1
        self.last = {"outcome": result.outcome, "run_id": result.run_id, "pipelines": batch,
                     "at": datetime.fromtimestamp(finished_at, UTC).isoformat(timespec="seconds")}
        record_run(serve.metrics, cid, result, finished_at=finished_at, failures=failures)
        serve.log_run(cid, batch, why, result, delay)


class Serve:
    def __init__(self, plans: list[CustomerPlan], options: ServeOptions, log: logging.Logger) -> None:
        self.plans, self.options, self.log = plans, options, log
        self.metrics = ServeMetrics()
        self.stopping = threading.Event()
        self.stopped = threading.Event()
        self.workers = {p.customer.id: CustomerWorker(self, p) for p in plans if p.ok}
        self._slots = threading.BoundedSemaphore(max(1, options.max_parallel))
        self._children_lock = threading.Lock()
        self._context = multiprocessing.get_context("forkserver")
        self._context.set_forkserver_preload(PRELOAD)
        self.receiver = Receiver(count=lambda c, r: self.metrics.webhooks.labels(c, r).inc(),
                                 log=lambda name, **f: event(self.log, name, **f)) if options.webhooks else None
        self.http = HttpEndpoint("127.0.0.1", options.port, health=self.health, metrics=self.metrics,
                                 receiver=self.receiver)
        self.scheduler: Any = None
        self.subscriptions: dict[str, dict[str, Any]] = {}  # customer -> {profile, webhook}
        self._threads: list[threading.Thread] = []
        self._hurry = False

    # -- life cycle -------------------------------------------------------------------------------

    def start(self) -> None:
        from apscheduler.schedulers.background import BackgroundScheduler

        self.metrics.customers.labels("served").set(len(self.workers))
        self.metrics.customers.labels("invalid").set(len(self.plans) - len(self.workers))
        for plan in self.plans:
            self._announce(plan)
        self.http.start()
        event(self.log, "listening", url=self.http.url(), port=self.http.port,
              endpoints=["/healthz", "/metrics", *([PATH_PREFIX + "<customer>"] if self.receiver else [])])
        warm = self._context.Process(target=_noop)  # start the fork server (it imports the engine) now
        warm.start()
        warm.join()
        self.scheduler = BackgroundScheduler(timezone=UTC, job_defaults={"coalesce": True, "max_instances": 1,
                                                                         "misfire_grace_time": None})
        now = datetime.now(UTC)
        for cid, worker in self.workers.items():
            for pipeline in worker.states.values():
                declare_pipeline(self.metrics, cid, pipeline.name)
            by_schedule: dict[Schedule, list[str]] = {}
            for state in worker.states.values():
                by_schedule.setdefault(state.schedule, []).append(state.name)
            for n, (schedule, names) in enumerate(by_schedule.items()):
                first = {"next_run_time": now} if schedule.every else {}  # an interval runs at once, a crontab on time
                self.scheduler.add_job(worker.nudge, make_trigger(schedule, start=now), args=[names, "schedule"],
                                       id=f"{cid}:{n}", name=f"{cid} {','.join(names)}", **first)
            worker.thread.start()
        self.scheduler.start()
        if self.receiver is not None:
            self._start_webhooks()
        event(self.log, "started", customers=list(self.workers), max_parallel=self.options.max_parallel,
              webhooks=bool(self.receiver))

    def _announce(self, plan: CustomerPlan) -> None:
        cid = plan.customer.id
        if not plan.ok:
            event(self.log, "customer_invalid", logging.ERROR, customer=cid, root=str(plan.customer.root),
                  problems=plan.problems or ["no pipeline"])
            return
        unresolved = register_secrets(plan.customer)
        event(self.log, "customer", customer=cid, root=str(plan.customer.root),
              pipelines={p.name: p.schedule.describe() for p in plan.pipelines}, unresolved_connections=unresolved)

    def wait(self) -> None:
        while not self.stopping.wait(0.5):
            pass

    def stop(self) -> None:
        """Ask serve to stop (a signal handler may call it); a second call kills runs instead of waiting."""
        if self.stopping.is_set():
            self._hurry = True
        self.stopping.set()

    def shutdown(self) -> None:
        self.stopping.set()
        event(self.log, "stopping", running=[c for c, w in self.workers.items() if w.process is not None])
        if self.scheduler is not None:
            self.scheduler.shutdown(wait=False)
        with self._children_lock:
            for worker in self.workers.values():
                self._signal(worker, signal.SIGTERM)
        for worker in self.workers.values():
            worker.wake()
        deadline = time.monotonic() + self.options.grace
        for worker in self.workers.values():
            while worker.thread.is_alive() and time.monotonic() < deadline and not self._hurry:
                worker.thread.join(0.2)
        with self._children_lock:
            for worker in self.workers.values():
                self._signal(worker, signal.SIGKILL)
        for worker in self.workers.values():
            if worker.thread.ident is not None:
                worker.thread.join(5)
        self._stop_webhooks()
        self.http.stop()
        self.stopped.set()
        event(self.log, "stopped")

    # -- runs -------------------------------------------------------------------------------------

    def acquire_slot(self) -> bool:
        while not self._slots.acquire(timeout=0.5):
            if self.stopping.is_set():
                return False
        if self.stopping.is_set():
            self._slots.release()
            return False
        return True

    def release_slot(self) -> None:
        self._slots.release()

    @staticmethod
    def _signal(worker: CustomerWorker, signum: int) -> None:
        _kill(worker.process, signum)

    def execute(self, worker: CustomerWorker, batch: list[str]) -> RunResult:
        """Run `batch` of `worker`'s customer in a child process; its result (crashed when it died without one)."""
        receive, send = self._context.Pipe(duplex=False)
        process = self._context.Process(target=child_module.main, name=f"run-{worker.customer.id}",
                                        args=(str(worker.customer.root), batch, send, worker.customer.id))
        started = time.monotonic()
        with self._children_lock:
            if self.stopping.is_set():
                send.close()
                receive.close()
                return RunResult("aborted", batch, message="serve is stopping")
            process.start()
            worker.process = process
        send.close()
        result: RunResult | None = None
        stopped_for_time = False
        try:
            while True:
                ready = multiprocessing.connection.wait([receive, process.sentinel], timeout=0.5)
                if receive in ready or (process.sentinel in ready and receive.poll()):
                    with contextlib.suppress(EOFError, OSError):
                        result = receive.recv()
                    break
                if process.sentinel in ready:
                    break
                timeout = self.options.run_timeout
                if timeout and not stopped_for_time and time.monotonic() - started > timeout:
                    stopped_for_time = True
                    event(self.log, "run_timeout", logging.WARNING, customer=worker.customer.id, pipelines=batch,
                          seconds=round(time.monotonic() - started, 1))
                    _kill(process, signal.SIGTERM)
                    threading.Timer(self.options.grace, _kill, (process, signal.SIGKILL)).start()
            process.join(self.options.grace)
            if process.exitcode is None:
                _kill(process, signal.SIGKILL)
                process.join(5)
        finally:
            receive.close()
            with self._children_lock:
                worker.process = None
        if result is None:
            code = process.exitcode
            how = f"killed by signal {-code}" if code is not None and code < 0 else f"exit code {code}"
            result = RunResult("crashed", batch, message=f"the run's process ended without a result ({how})",
                               seconds=time.monotonic() - started)
        elif stopped_for_time and result.outcome == "aborted":
            result.outcome, result.message = "error", f"stopped after --run-timeout {self.options.run_timeout:g}s"
        return result

    def log_run(self, customer: str, batch: list[str], reasons: list[str], result: RunResult,
                delay: float | None) -> None:
        if result.outcome in SKIPPED:
            event(self.log, "run_skipped", customer=customer, pipelines=batch, reason="busy", holder=result.message)
            return
        level = logging.INFO if result.finished else logging.ERROR if result.outcome != "aborted" else logging.WARNING
        totals: dict[str, int] = {}
        for outcomes in result.records.values():
            for key, value in outcomes.items():
                totals[key] = totals.get(key, 0) + value
        event(self.log, "run", level, customer=customer, run_id=result.run_id, pipelines=batch,
              trigger=reasons, outcome=result.outcome, exit_code=result.exit_code, seconds=round(result.seconds, 3),
              writes=result.writes, records={k: v for k, v in totals.items() if v},
              error=result.message or None,
              retry_in=round(delay, 1) if delay is not None and not self.stopping.is_set() else None)
        for failure in result.failures:
            event(self.log, "record", logging.WARNING, customer=customer, run_id=result.run_id, **failure)
        if result.records_not_listed:
            event(self.log, "records_not_listed", logging.WARNING, customer=customer, run_id=result.run_id,
                  count=result.records_not_listed, see="ml-connector audit failures / quarantine")

    # -- health -----------------------------------------------------------------------------------

    def health(self) -> tuple[int, dict[str, Any]]:
        customers: dict[str, Any] = {cid: w.status() for cid, w in self.workers.items()}
        for plan in self.plans:
            if not plan.ok:
                customers[plan.customer.id] = {"state": "invalid", "root": str(plan.customer.root),
                                               "problems": plan.problems or ["no pipeline"]}
        for cid, sub in self.subscriptions.items():
            customers[cid]["webhook"] = sub.get("state")
        stopping = self.stopping.is_set()
        return (503 if stopping else 200), {"status": "stopping" if stopping else "ok", "customers": customers}

    # -- webhooks ---------------------------------------------------------------------------------

    def _start_webhooks(self) -> None:
        assert self.receiver is not None
        from engine import secrets

        for cid, worker in self.workers.items():
            plan = worker.plan
            auth = WebhookAuth.hmac(self.options.webhook_key)
            secrets.register(*auth.secret_values())
            entities = entity_pipelines(plan.pipelines)
            self.receiver.add(Endpoint(cid, auth, entities, partial(worker.nudge, reason="webhook")))
            base = (self.options.webhook_url or self.http.url()).rstrip("/")
            url = f"{base}{PATH_PREFIX}{cid}"
            self.subscriptions[cid] = {"webhook": webhook_id(cid), "url": url, "auth": auth, "entities": list(entities),
                                       "connection": plan.sapb1_connection, "state": "subscribing"}
            thread = threading.Thread(target=self._subscribe_loop, args=(worker,), name=f"webhook-{cid}", daemon=True)
            self._threads.append(thread)
            thread.start()

    def _client(self, worker: CustomerWorker) -> Any:
        from engine.project import load_project
        from engine.sapb1 import SapB1Client
        from engine.sapb1.url import ServiceRoot

        sub = self.subscriptions[worker.customer.id]
        project = load_project(worker.customer.root, with_pipelines=False)
        profile = dict(project.connection(sub["connection"]))
        root = ServiceRoot.parse(str(profile["service_root"]))
        profile["service_root"] = root.origin + "/b1s/v2"  # webhooks are a v2 API
        return SapB1Client.from_profile(profile, max_concurrency=2, timeout=30.0)

    def _subscribe_loop(self, worker: CustomerWorker) -> None:
        from engine.serve.webhooks import subscribe

        cid = worker.customer.id
        sub = self.subscriptions[cid]
        failures = 0
        while not self.stopping.is_set():
            try:
                async def go() -> dict[str, Any]:
                    async with self._client(worker) as client:
                        return await subscribe(client, sub["entities"], sub["webhook"], sub["url"], sub["auth"],
                                               verify_certificate=self.options.verify_certificate)

                done = asyncio.run(go())
                sub["state"] = "subscribed"
                event(self.log, "webhook_subscribed", customer=cid, webhook=sub["webhook"], url=sub["url"],
                      events=[f"{e['BusinessObject']}.{e['TransactionType']}" for e in done["events"]])
                if done["webhooks_enabled"] is False:
                    event(self.log, "webhooks_disabled", logging.WARNING, customer=cid,
                          hint="the company has EnableWebhook off (CompanyService_UpdateAdminInfo); "
                               "polling continues on schedule")
                return
            except Exception as exc:
                failures += 1
                delay = self.options.retry.delay(failures)
                sub["state"] = "failed"
                event(self.log, "webhook_subscribe_failed", logging.WARNING, customer=cid, error=str(exc),
                      retry_in=round(delay, 1), hint="polling continues on schedule")
                self.stopping.wait(delay)

    def _stop_webhooks(self) -> None:
        from engine.serve.webhooks import unsubscribe

        for thread in self._threads:
            thread.join(2)

        def remove(cid: str) -> None:
            sub = self.subscriptions[cid]
            worker = self.workers[cid]

            async def go() -> None:
                async with self._client(worker) as client:
                    await asyncio.wait_for(unsubscribe(client, sub["webhook"]), 5)

            try:
                asyncio.run(go())
                event(self.log, "webhook_unsubscribed", customer=cid, webhook=sub["webhook"])
            except Exception as exc:
                event(self.log, "webhook_unsubscribe_failed", logging.WARNING, customer=cid, error=str(exc))

        threads = [threading.Thread(target=remove, args=(cid,), daemon=True)
                   for cid, sub in self.subscriptions.items() if sub.get("state") == "subscribed"]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(8)


def _noop() -> None:
    pass


def _kill(process: Any, signum: int) -> None:
    """Signal a run's process if it is still running."""
    if process is not None and process.pid and process.exitcode is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signum)
