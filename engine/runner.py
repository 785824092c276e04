"""A run: extract → plan → load, pipeline by pipeline in dependency order, over one B1 session.

    report = run_pipelines(Path("."), ["purchase_orders"], progress=print)

The core returns a `RunReport` and prints nothing; `engine/cli/run.py` and `engine/cli/replay.py`
display progress and the summary. One Service Layer session serves every pipeline of the run
(one company per project). Before anything is written: the external-reference user fields exist
(created when missing) and every code a rule table can produce is checked against B1's master data,
fetched once per run.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from engine.errors import ConfigError, ConnectorError
from engine.load import Loader, LoadStats, Outcome, RunAborted, Status
from engine.load.bridge import PipelineBridge, RunLedger, open_state
from engine.load.links import BaseLinker
from engine.load.slport import SlPort
from engine.sapb1 import SapB1Client, ensure_user_field, fetch_reference_codes

# B1 tables that hold the external-reference user field, per target entity set (contract §5.11).
USER_FIELD_TABLES = {
    "BusinessPartners": "OCRD",
    "PurchaseOrders": "OPOR",
    "PurchaseInvoices": "OPCH",
    "PurchaseDeliveryNotes": "OPDN",
}
KEY_FIELDS = {"BusinessPartners": "CardCode"}


@dataclass
class Progress:
    """One step of a run, for a progress display."""

    pipeline: str
    stage: str  # extract | setup | plan | load | done
    done: int = 0
    total: int = 0
    message: str = ""


@dataclass
class Failure:
    pipeline: str
    ref: str
    status: str  # failed | waiting | quarantined
    code: str | None
    message: str


@dataclass
class PipelineReport:
    name: str
    entity: str
    planned: dict[str, int] = field(default_factory=dict)  # create/update/skip/wait/quarantine
    stats: LoadStats = field(default_factory=LoadStats)
    problems: list[Failure] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def failed(self) -> int:
        return sum(1 for p in self.problems if p.status == "failed")


@dataclass
class RunReport:
    run_id: str
    started_at: datetime
    pipelines: list[PipelineReport] = field(default_factory=list)
    extracted: dict[str, int] = field(default_factory=dict)
    aborted: str | None = None
    seconds: float = 0.0

    @property
    def writes(self) -> int:
        return sum(p.stats.writes for p in self.pipelines)

    @property
    def problems(self) -> list[Failure]:
        return [f for p in self.pipelines for f in p.problems]

    @property
    def ok(self) -> bool:
        """No abort and no failed record (waiting and quarantined records are reported, not errors)."""
        return self.aborted is None and not any(f.status == "failed" for f in self.problems)


ProgressFn = Callable[[Progress], None]


def run_pipelines(
    root: Path | str,
    names: Iterable[str] | None = None,
    *,
    extract: bool = True,
    refs: Mapping[str, set[str]] | None = None,
    progress: ProgressFn | None = None,
    concurrency: int | None = None,
    environ: Mapping[str, str] | None = None,
    kind: str = "run",
) -> RunReport:
    """Run the named pipelines (default: all that write to SAP B1) and return what happened.

    `refs` restricts a pipeline to some external references (replay); `extract=False` works from
    what is staged already.
    """
    from engine.project import check_project_file
    from engine.spec import load_pipelines

    root = Path(root)
    project, problems = check_project_file(root)
    if project is None:
        raise ConfigError("invalid project:\n  " + "\n  ".join(map(str, problems)))
    if environ is not None:
        project = type(project)(**{**project.__dict__, "environ": environ})
    specs = [s for s in load_pipelines(root, names) if _writes_to_b1(project, s)]
    if names:  # the named pipelines only; their dependencies were validated, not re-run
        wanted = set(names)
        specs = [s for s in specs if s.name in wanted]
    if refs is not None:
        specs = [s for s in specs if s.name in refs]
    report = RunReport(run_id=_new_run_id(), started_at=datetime.now(UTC))
    started = time.monotonic()
    notify = progress or (lambda _p: None)
    if extract and specs:
        report.extracted = _extract(project, [s.name for s in specs], notify)
    try:
        asyncio.run(_load_all(project, specs, report, refs, notify, concurrency, kind))
    except RunAborted as exc:
        report.aborted = str(exc)
    report.seconds = time.monotonic() - started
    return report


def _writes_to_b1(project: Any, spec: Any) -> bool:
    try:
        return project.connections[spec.target["connection"]].get("kind") == "sapb1"
    except (KeyError, AttributeError):
        return False


async def _retry_setup(step: Callable[[], Any], attempts: int = 5) -> Any:
    """A setup step is idempotent (it looks up before it creates): repeat it on transient faults."""
    for attempt in range(1, attempts + 1):
        try:
            return await step()
        except Exception as exc:
            if attempt == attempts or not getattr(exc, "is_transient", False):
                raise
            await asyncio.sleep(0.2 * attempt)


def _new_run_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ-") + uuid.uuid4().hex[:6]


def _extract(project: Any, names: list[str], notify: ProgressFn) -> dict[str, int]:
    from engine.extract import extract_pipelines

    def on_progress(pipeline: str, done: int, total: int | None) -> None:
        notify(Progress(pipeline, "extract", done, total or 0))

    counts = _extracted_counts(extract_pipelines(project, names, progress=on_progress))
    for name, count in counts.items():
        notify(Progress(name, "extract", done=count, total=count, message=f"{count} records read"))
    return counts


def _extracted_counts(results: Any) -> dict[str, int]:
    """Records read per pipeline (`ExtractResult.read`); an extraction error is raised for the run."""
    counts: dict[str, int] = {}
    errors = []
    for item in results or []:
        counts[item.pipeline] = int(item.read or 0)
        if item.error:
            errors.append(f"{item.pipeline}: {item.error}")
    if errors:
        raise ConnectorError("extraction failed: " + "; ".join(errors))
    return counts


async def _load_all(
    project: Any, specs: list[Any], report: RunReport, refs: Mapping[str, set[str]] | None,
    notify: ProgressFn, concurrency: int | None, kind: str,
) -> None:
    conn_names = {s.target["connection"] for s in specs}
    if not specs:
        return
    if len(conn_names) > 1:
        raise ConfigError(f"one run writes to one SAP B1 company; these pipelines name {sorted(conn_names)}")
    profile = project.connection(next(iter(conn_names)))
    limit = int(concurrency or profile.get("max_concurrency") or 8)
    client = SapB1Client(
        profile["service_root"], profile["company_db"], profile["username"], profile["password"],
        verify_tls=profile.get("verify_tls", True), max_concurrency=limit,
    )
    with open_state(project.state_path) as state:
        ledger = RunLedger(state, report.run_id, kind=kind)
        ledger.start([s.name for s in specs])
        try:
            async with client:
                notify(Progress("*", "setup", message="SAP B1 login, user fields, reference codes"))
                await client.login()
                for table, ref_field in sorted({(USER_FIELD_TABLES.get(s.target["entity"]), s.target["external_ref"])
                                                 for s in specs if s.target.get("external_ref", "").startswith("U_")
                                                 and s.target["entity"] in USER_FIELD_TABLES}):
                    await _retry_setup(lambda t=table, f=ref_field: ensure_user_field(client, t, f, "JAGGAER reference"))
                codes = await fetch_reference_codes(client)
                port = SlPort(client)
                for spec in specs:
                    bridge = PipelineBridge(state, project, spec, report.run_id, codes)
                    report.pipelines.append(
                        await _load_pipeline(bridge, port, spec, refs, notify, limit)
                    )
        finally:
            ledger.finish(report)


async def _load_pipeline(
    bridge: PipelineBridge, port: SlPort, spec: Any, refs: Mapping[str, set[str]] | None,
    notify: ProgressFn, concurrency: int,
) -> PipelineReport:
    started = time.monotonic()
    entity = spec.target["entity"]
    result = PipelineReport(spec.name, entity)
    notify(Progress(spec.name, "plan", message="rendering mappings and diffing with the ledger"))
    planned = bridge.plan(refs.get(spec.name) if refs is not None else None)
    result.planned = planned.counts
    result.problems.extend(Failure(spec.name, p.ref, p.status, p.code, p.message) for p in planned.problems)
    ops = planned.operations
    total = len(ops)
    notify(Progress(spec.name, "load", 0, total, f"{total} to write"))
    journal = bridge.journal()
    linker = BaseLinker(port, bridge.po_keys) if entity == "PurchaseInvoices" else None
    done = 0

    def on_outcome(outcome: Outcome) -> None:
        nonlocal done
        done += 1
        if linker is not None:
            linker.release(outcome)
        if outcome.status is not Status.SYNCED:
            result.problems.append(Failure(spec.name, outcome.op.ref, outcome.status.value,
                                           outcome.error_code, outcome.error_message or ""))
        notify(Progress(spec.name, "load", done, total))

    loader = Loader(port, journal, concurrency=concurrency, on_outcome=on_outcome)
    try:
        await loader.load(bridge.target, ops, linker.prepare if linker else None)
    finally:
        result.stats = loader.stats
        result.seconds = time.monotonic() - started
        bridge.finish(result)
    notify(Progress(spec.name, "done", done, total))
    return result


def replay_failed(
    root: Path | str,
    *,
    run_id: str | None = None,
    refs: Iterable[str] | None = None,
    pipelines: Iterable[str] | None = None,
    progress: ProgressFn | None = None,
    environ: Mapping[str, str] | None = None,
) -> RunReport | None:
    """Re-send failed records (all, those of one run, or those named), re-rendered with the current
    mapping, from what is staged. None when nothing matches."""
    from engine import db
    from engine.load import store
    from engine.project import load_project

    project = load_project(Path(root))
    with db.connect(project.state_path) as conn:
        store.ensure_tables(conn)
        wanted = store.failed_refs(conn, run_id=run_id, refs=list(refs) if refs else None,
                                   pipelines=list(pipelines) if pipelines else None)
    if not wanted:
        return None
    return run_pipelines(root, sorted(wanted), extract=False, refs=wanted, progress=progress, environ=environ,
                         kind="replay")
