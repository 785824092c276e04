"""A run: extract → plan → load, pipeline by pipeline in dependency order, over one B1 session.

    report = run_pipelines(load_project(".", ["purchase_orders"]), ["purchase_orders"], progress=print)
    report = run_pipelines(load_project("."), ["suppliers_to_jaggaer"])   # SAP B1 -> JAGGAER only (a B1 webhook)

Pipelines that write to SAP B1 run first, then those that write to JAGGAER (the supplier write-back). When
a pipeline belongs to a both-ways pair (`engine.bidirectional`), the run first reads both sides' changes,
filters both plans through the pair's rules (echoes, conflicts, ownership) and reads SAP B1 again before
the write-back, so it sees the run's own B1 writes as what they are.

The core returns a `RunReport` and prints nothing; `engine/cli/run.py` and `engine/cli/replay.py`
display progress and the summary. One Service Layer session serves every pipeline of the run
(one company per project). Before anything is written: the external-reference user fields exist
(created when missing) and every code a rule table can produce is checked against B1's master data,
fetched once per run.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from engine import bidirectional
from engine.errors import ConfigError, ConnectorError
from engine.kinds import TARGET_KINDS, SapB1Target
from engine.load import Loader, LoadStats, Outcome, RunAborted, Status
from engine.load.bridge import LedgerJournal, census, operations, po_keys, target_of
from engine.load.links import BaseLinker
from engine.load.slport import SlPort
from engine.locks import company_key, run_locks
from engine.pairs import Pair, load_pairs
from engine.plan import Plan
from engine.project import Project, add_pipelines
from engine.retry import Backoff
from engine.sapb1 import SapB1Client, ensure_user_field, fetch_reference_codes
from engine.sapb1.entities import ENTITIES, entity_profile
from engine.spec import Pipeline
from engine.state import conflicts, db, ledger, quarantine
from engine.state.planning import plan_pipeline

T = TypeVar("T")
LOAD_CHUNK = 200  # operations looked up (batched $filter) and journalled as intents together


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
    # failed | waiting | quarantined | not_applied (B1 keeps a closed/posted document as it is) |
    # ignored (left out by the mapping's skip_unless: not a problem, listed apart) |
    # conflict (a field changed on both sides, settled by policy) | not_owner (a change of a field the other side
    # owns, not propagated): both recorded in `conflicts` (engine.bidirectional), not errors
    status: str
    code: str | None
    message: str


@dataclass
class PipelineReport:
    name: str
    entity: str
    planned: dict[str, int] = field(default_factory=dict)  # create/update/skip/wait/quarantine/ignore/failed
    stats: LoadStats = field(default_factory=LoadStats)
    problems: list[Failure] = field(default_factory=list)
    # left out by the mapping's `skip_unless` on purpose (e.g. a cancelled order): named, not problems
    ignored: list[Failure] = field(default_factory=list)
    # failed before with exactly this payload: not re-sent (`replay` does), still failed
    still_failed: list[Failure] = field(default_factory=list)
    rule_problems: list[str] = field(default_factory=list)  # rule-table rows giving codes B1 lacks
    seconds: float = 0.0  # plan + load
    load_seconds: float = 0.0  # of which sending to B1 (lookups, writes, journal)

    @property
    def failed(self) -> int:
        return sum(1 for p in self.problems if p.status == "failed")

    @property
    def not_applied(self) -> int:
        return sum(1 for p in self.problems if p.status == "not_applied")

    @property
    def planned_total(self) -> int:
        """Records this run planned (looked at): each ends in exactly one of `outcomes`."""
        return sum(self.planned.values())

    @property
    def outcomes(self) -> dict[str, int]:
        """Where each record planned this run ended, one bucket per record (they add up to `planned_total`
        unless the run was aborted): written (created, updated; found: already in B1 after a lost answer
        or a crash), nothing to send (unchanged), held back (waiting, quarantined), left out by the mapping
        (ignored), refused by B1 (not_applied on a closed document; failed, now or before and not re-sent)."""
        s, planned = self.stats, self.planned
        return {"created": s.created, "updated": s.updated, "found": s.adopted, "unchanged": planned.get("skip", 0),
                "waiting": planned.get("wait", 0) + s.waiting, "quarantined": planned.get("quarantine", 0),
                "ignored": planned.get("ignore", 0), "not_applied": s.not_applied,
                "failed": s.failed + planned.get("failed", 0)}


@dataclass
class RunReport:
    run_id: str
    started_at: datetime
    pipelines: list[PipelineReport] = field(default_factory=list)
    extracted: dict[str, int] = field(default_factory=dict)  # list rows read (a page's first rows re-read included)
    # records staged this run per pipeline: new or changed in JAGGAER, among those the source filter selects
    staged: dict[str, int] = field(default_factory=dict)
    # records this run's extraction set aside (they failed the source schema): count per pipeline, and named
    extract_quarantined: dict[str, int] = field(default_factory=dict)
    extract_problems: list[Failure] = field(default_factory=list)
    # SAP B1 sources: the keys staged this run (a both-ways run reads B1 twice; `staged` counts each record once)
    staged_keys: dict[str, set[str]] = field(default_factory=dict, repr=False)
    aborted: str | None = None
    seconds: float = 0.0

    @property
    def writes(self) -> int:
        return sum(p.stats.writes for p in self.pipelines)

    @property
    def problems(self) -> list[Failure]:
        return [*self.extract_problems, *(f for p in self.pipelines for f in p.problems)]

    @property
    def rule_problems(self) -> list[str]:
        return list(dict.fromkeys(p for pipeline in self.pipelines for p in pipeline.rule_problems))

    @property
    def ok(self) -> bool:
        """No abort and no failed record (waiting, quarantined and not applied records are reported, not errors)."""
        return self.aborted is None and not any(f.status == "failed" for f in self.problems)


ProgressFn = Callable[[Progress], None]


def run_pipelines(
    project: Project,
    names: Iterable[str] | None = None,
    *,
    extract: bool = True,
    refs: Mapping[str, set[str]] | None = None,
    progress: ProgressFn | None = None,
    concurrency: int | None = None,
    kind: str = "run",
    wait: float = 0.0,
) -> RunReport:
    """Run the named pipelines of a loaded project (default: all it loaded) and return what happened: grouped
    by the kind of their target in `engine.kinds.TARGET_KINDS` order (SAP B1 first, then JAGGAER), each group
    in dependency order, loaded by its kind's adapter.

    `refs` restricts a pipeline to some external references (replay); `extract=False` works from
    what is staged already. The run holds its project's and its SAP B1 company's lock throughout
    (`engine.locks`): a second run waits up to `wait` seconds, then raises `RunLocked`.
    """
    pipelines = project.select(names)
    if refs is not None:
        pipelines = [p for p in pipelines if p.name in refs]
    groups = [(k, [p for p in pipelines if p.target.kind == k.name]) for k in TARGET_KINDS.values()]
    groups = [(k, group) for k, group in groups if group]
    running = [p.name for _, group in groups for p in group]
    pairs = load_pairs(project.pipelines)
    report = RunReport(run_id=_new_run_id(), started_at=datetime.now(UTC))
    started = time.monotonic()
    notify = progress or (lambda _p: None)
    with run_locks(project.state_path, company=_company_of(project, pipelines), wait=wait):
        if not groups:
            report.seconds = time.monotonic() - started
            return report
        if extract:
            # Both sides of a pair are read before either is written: a JAGGAER -> B1 write must not overwrite a
            # B1 change it has not seen, nor the write-back a JAGGAER change (conflicts, `engine.bidirectional`).
            reads = running + [other for name in running if name in pairs for other in pairs[name].names]
            _extract_into(report, project, list(dict.fromkeys(reads)), notify)
        versions: dict[str, str] = {}
        two_ways = _two_ways(project, pairs, running)
        _start_run(project, report, running, kind)
        try:
            for target_kind, group in groups:
                if report.aborted is not None:
                    break
                if extract and report.pipelines:
                    # Read SAP B1 again after this run wrote to a pair's records there: the write-back then sees
                    # them as what they are (echoes, or a conflict's outcome), not as SAP B1 changes still to send.
                    wrote = {p.name for p in report.pipelines if p.stats.writes or p.stats.adopted}
                    again = [p.name for p in group if p.name in pairs and pairs[p.name].name == p.name
                             and pairs[p.name].jaggaer_pipeline in wrote]
                    if again:
                        _extract_into(report, project, again, notify)
                load = target_kind.loader()
                asyncio.run(load(project, group, report, refs, notify, concurrency, two_ways, versions))
        except asyncio.CancelledError:  # SIGTERM cancelled the load: end the command as Ctrl-C does
            raise KeyboardInterrupt(report.aborted) from None
        finally:
            with db.connect(project.state_path) as conn:
                ledger.finish_run(conn, report.run_id, _run_counts(report), aborted=report.aborted,
                                  mapping_versions=versions)
    report.seconds = time.monotonic() - started
    return report


def write_back_pipelines(project: Project) -> list[str]:
    """The project's SAP B1 -> JAGGAER pipelines (source a SAP B1 entity set, target a JAGGAER resource)."""
    return [p.name for p in project.pipelines if p.source.kind == "sapb1" and p.target.kind == "jaggaer"]


def pull_b1_changes(project: Project, **options: Any) -> RunReport:
    """Run the SAP B1 -> JAGGAER pipelines now: read SAP B1's changes (and JAGGAER's, for conflicts) and write
    them back. For `serve` when a SAP B1 webhook (`BusinessPartners.Updated`) says something changed; the
    notification carries no data we trust, only the nudge. Options as `run_pipelines` (`wait`, `progress`,
    `concurrency`); raises `RunLocked` when another run holds the project and `wait` runs out."""
    return run_pipelines(project, write_back_pipelines(project), **options)


def _extract_into(report: RunReport, project: Any, names: list[str], notify: ProgressFn) -> None:
    """Extract `names`, adding the counts to the report (a source read twice in a run counts both reads)."""
    extracted, staged = _extract(project, names, notify, report.run_id, report.staged_keys)
    for name, count in extracted.items():
        report.extracted[name] = report.extracted.get(name, 0) + count
    for name, count in staged.items():
        known = report.staged_keys.get(name)
        report.staged[name] = len(known) if known is not None else report.staged.get(name, 0) + count
    report.extract_problems = _extract_quarantine(project, report.run_id)
    report.extract_quarantined = dict(Counter(f.pipeline for f in report.extract_problems))


def _two_ways(project: Any, pairs: Mapping[str, Pair], running: list[str]
              ) -> dict[str, bidirectional.TwoWay]:
    """One `TwoWay` per pair with a pipeline in this run, by the names of both its pipelines."""
    out: dict[str, bidirectional.TwoWay] = {}
    for name in running:
        pair = pairs.get(name)
        if pair is None or name in out:
            continue
        both = bidirectional.TwoWay(pair, project.root, project.state_path)
        out[pair.name] = out[pair.jaggaer_pipeline] = both
    return out


def _start_run(project: Any, report: RunReport, names: list[str], kind: str) -> None:
    with db.connect(project.state_path) as conn:  # the state file is opened per step, never held for the run
        ledger.upgrade_tables(conn)
        quarantine.ensure_table(conn)
        conflicts.ensure_table(conn)
        ledger.start_run(conn, report.run_id, names, kind=kind)


@contextlib.asynccontextmanager
async def _terminate_cancels(report: RunReport) -> AsyncIterator[None]:
    """While the load runs, SIGTERM cancels it the way asyncio handles Ctrl-C: the workers stop at their
    next await, intents already journalled stay in flight for the next run to resolve, and the run is
    recorded as aborted. (An exception raised at an arbitrary bytecode, as a plain signal handler does,
    can land inside the event loop's own bookkeeping and hang it.)"""
    task = asyncio.current_task()
    if task is None or threading.current_thread() is not threading.main_thread():
        yield
        return
    loop = asyncio.get_running_loop()
    previous = signal.getsignal(signal.SIGTERM)

    def terminate() -> None:
        report.aborted = "terminated (SIGTERM)"
        task.cancel()

    loop.add_signal_handler(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        loop.remove_signal_handler(signal.SIGTERM)
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def _aborted_by(report: RunReport, *stops: type[BaseException]) -> Iterator[None]:
    """Record why a load ended early: one of `stops` ends it (recorded as the run's abort, not raised);
    cancellation (SIGTERM, Ctrl-C) and anything else are recorded and raised."""
    try:
        yield
    except stops as exc:
        report.aborted = str(exc)
    except asyncio.CancelledError:
        report.aborted = report.aborted or "interrupted"
        raise
    except BaseException as exc:
        report.aborted = f"{type(exc).__name__}: {exc}"
        raise


def _company_of(project: Project, pipelines: list[Pipeline]) -> str | None:
    """The SAP B1 company the pipelines write to (its lock name), None when they write to none."""
    names = {p.target.connection for p in pipelines if p.target.kind == "sapb1"}
    if not names:
        return None
    if len(names) > 1:
        raise ConfigError(f"one run writes to one SAP B1 company; these pipelines name {sorted(names)}")
    profile = project.connection(next(iter(names)))
    return company_key(profile["service_root"], profile["company_db"])


SETUP_RETRY = Backoff(attempts=5, base=0.2, cap=2.0, jitter=0.5)


async def _retry_setup(step: Callable[[], Awaitable[T]], policy: Backoff = SETUP_RETRY) -> T:
    """A setup step is idempotent (it looks up before it creates): repeat it on transient faults."""
    return await policy.run(step, retry_if=lambda exc: bool(getattr(exc, "is_transient", False)),
                            describe="SAP B1 setup")


def _reference_user_fields(pipelines: Iterable[Pipeline]) -> list[tuple[str, str]]:
    """(B1 table, `U_` field) of the external references the pipelines write (SL §5.11): the table is
    the entity's profile's (`engine.sapb1.entities`)."""
    targets = [p.target for p in pipelines if isinstance(p.target, SapB1Target)]
    return sorted({(ENTITIES[t.entity].user_field_table, t.external_ref) for t in targets
                   if t.external_ref.startswith("U_") and t.entity in ENTITIES})


def _new_run_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ-") + uuid.uuid4().hex[:6]


def _extract(project: Any, names: list[str], notify: ProgressFn, run_id: str,
             keys: dict[str, set[str]] | None = None) -> tuple[dict[str, int], dict[str, int]]:
    """(list rows read, records staged: new or changed) per pipeline. A source whose result names the keys it
    staged (SAP B1, read twice by a both-ways run) adds them to `keys` and counts each record once."""
    from engine.extract import extract_pipelines

    def on_progress(pipeline: str, done: int, total: int | None) -> None:
        notify(Progress(pipeline, "extract", done, total or 0))

    results = extract_pipelines(project, names, progress=on_progress, run_id=run_id, lock=False)
    counts = _extracted_counts(results)
    staged = {item.pipeline: int(item.new or 0) + int(item.changed or 0) for item in results or []}
    for item in results or []:
        if keys is not None and item.keys is not None:
            keys.setdefault(item.pipeline, set()).update(item.keys)
    for name, count in counts.items():
        notify(Progress(name, "extract", done=count, total=count,
                        message=f"{count} records read, {staged.get(name, 0)} new or changed"))
    return counts, staged


def _extract_quarantine(project: Any, run_id: str) -> list[Failure]:
    """The records this run's extraction set aside (stage extract: a detail read J1P refused; validate:
    the record failed the source schema) and still open, named with the reason."""
    with db.connect(project.state_path) as conn:
        rows = quarantine.open_extracted(conn, run_id)
    return [Failure(pipeline, key, "quarantined", stage, reason) for pipeline, key, stage, reason in rows]


def _extracted_counts(results: Any) -> dict[str, int]:
    """Records read per pipeline (`ExtractResult.read`); an extraction error is raised for the run."""
    counts: dict[str, int] = {}
    errors = []
    for item in results or []:
        counts[item.pipeline] = int(item.read or 0)
        if item.error:
            errors.append(item.error if item.unreachable else f"{item.pipeline}: {item.error}")
    if errors:
        raise ConnectorError("extraction failed: " + "; ".join(dict.fromkeys(errors)))
    return counts


async def load_to_sapb1(
    project: Project, specs: list[Pipeline], report: RunReport, refs: Mapping[str, set[str]] | None,
    notify: ProgressFn, concurrency: int | None,
    two_ways: Mapping[str, bidirectional.TwoWay] | None = None, versions: dict[str, str] | None = None,
) -> None:
    """The `sapb1` target kind's adapter: load the pipelines that write to SAP B1 (one company, one session).
    The run's row is the caller's."""
    conn_names = {s.target.connection for s in specs}
    if not specs:
        return
    if len(conn_names) > 1:
        raise ConfigError(f"one run writes to one SAP B1 company; these pipelines name {sorted(conn_names)}")
    profile = project.connection(next(iter(conn_names)))
    limit = int(concurrency or profile.get("max_concurrency") or 8)
    client = SapB1Client.from_profile(profile, max_concurrency=limit)  # the one constructor every verb uses
    state = Path(project.state_path)
    with db.connect(state) as conn:  # the state file is opened per step, never held for the run
        crosswalk = ledger.load_crosswalk(conn)
    versions = versions if versions is not None else {}
    with _aborted_by(report, RunAborted):
        async with client, _terminate_cancels(report):
            notify(Progress("*", "setup", message="SAP B1 login, user fields, reference codes"))
            await client.login()
            for table, ref_field in _reference_user_fields(specs):
                await _retry_setup(partial(ensure_user_field, client, table, ref_field, "JAGGAER reference"))
            codes = reference_code_sets(await _retry_setup(lambda: fetch_reference_codes(client, suppliers=False)))
            port = SlPort(client)
            blocked: dict[str, dict[str, str]] = {}  # what a pipeline set aside: its dependants are quarantined
            for spec in specs:
                run = PipelineRun(project, spec, state, report.run_id, crosswalk, codes)
                run.mapping.lookups.blocked = blocked
                run.two_way = (two_ways or {}).get(spec.name)
                versions[spec.name] = run.mapping.version
                report.pipelines.append(await run.load(port, refs, notify, limit))


async def load_to_jaggaer(
    project: Project, specs: list[Pipeline], report: RunReport, refs: Mapping[str, set[str]] | None,
    notify: ProgressFn, concurrency: int | None, two_ways: Mapping[str, bidirectional.TwoWay],
    versions: dict[str, str],
) -> None:
    """The `jaggaer` target kind's adapter: load the pipelines that write to JAGGAER (the company-profile write-back), one writer per connection. An
    unreachable tenant or refused credentials stop the write-back (recorded as aborted); what was not sent
    stays as it was for the next run."""
    from engine.jaggaer.client import AuthFailed, HostUnreachable, JaggaerSettings
    from engine.jaggaer.writer import CompanyProfileWriter

    state = Path(project.state_path)
    with db.connect(state) as conn:
        crosswalk = ledger.load_crosswalk(conn)
    with _aborted_by(report, HostUnreachable, AuthFailed):
        async with contextlib.AsyncExitStack() as stack, _terminate_cancels(report):
            writers: dict[str, CompanyProfileWriter] = {}
            for spec in specs:
                name = spec.target.connection
                if name not in writers:
                    settings = JaggaerSettings.from_profile(name, project.connection(name))
                    writers[name] = await stack.enter_async_context(CompanyProfileWriter(settings))
                writer = writers[name]
                run = JaggaerPipelineRun(project, spec, state, report.run_id, crosswalk)
                run.two_way = two_ways.get(spec.name)
                versions[spec.name] = run.mapping.version
                limit = int(concurrency or writer.settings.max_concurrency or 8)
                report.pipelines.append(await run.load(writer, refs, notify, limit))


def reference_code_sets(codes: Any) -> dict[str, set[str]]:
    """`engine.sapb1.ReferenceCodes` as the plain structure rule tables are checked against."""
    out: dict[str, set[str]] = {"accounts": set(codes.accounts), "projects": set(codes.projects)}
    for dim in range(1, 6):
        out[f"costing{dim}"] = set(codes.distribution_rules.get(dim, ())) | set(codes.profit_centers.get(dim, ()))
    out["payment_terms"] = {str(x) for x in codes.payment_terms}
    return out


def _run_counts(report: RunReport) -> dict[str, int]:
    counts: Counter[str] = Counter()
    for p in report.pipelines:
        s = p.stats
        counts.update(created=s.created, updated=s.updated, adopted=s.adopted, failed=s.failed,
                      waiting=s.waiting, not_applied=s.not_applied, writes=s.writes, lookups=s.lookups,
                      rule_problems=len(p.rule_problems))
        counts.update({f"planned_{k}": v for k, v in p.planned.items()})
        counts.update(ignored=p.planned.get("ignore", 0), still_failed=p.planned.get("failed", 0))
    counts.update(quarantined_extract=sum(report.extract_quarantined.values()), staged=sum(report.staged.values()))
    counts.update(Counter(f.status for p in report.pipelines for f in p.problems if f.status in ("conflict", "not_owner")))
    return dict(counts)


class PipelineRun:
    """One pipeline in one run: check the rule tables, plan, note what needs no write, load."""

    def __init__(self, project: Any, spec: Any, state: Path, run_id: str,
                 crosswalk: dict[str, dict[str, Any]], codes: Mapping[str, set[str]] | None) -> None:
        from engine.mapping import load_mapping

        root = Path(project.root)
        self.spec, self.state, self.run_id, self.crosswalk = spec, state, run_id, crosswalk
        self.mapping = load_mapping(root / spec.mapping, project_root=root)
        self.mapping.lookups.crosswalk = crosswalk
        self.mapping.lookups.reference_codes = codes
        self.codes = codes
        self.target = target_of(spec, self.mapping)
        self.two_way: bidirectional.TwoWay | None = None  # set when the pipeline is one half of a pair

    async def load(self, port: SlPort, refs: Mapping[str, set[str]] | None, notify: ProgressFn,
                   concurrency: int) -> PipelineReport:
        spec = self.spec
        started = time.monotonic()
        result = PipelineReport(spec.name, self.target.entity_set)
        # Table-level: codes a rule table can produce that B1 lacks. Reported, not fatal: a record that
        # meets such a row is quarantined with the rule table, the value and the record named.
        result.rule_problems = [str(p) for p in self.mapping.check_codes(self.codes)] if self.codes else []
        notify(Progress(spec.name, "plan", message="rendering mappings and diffing with the ledger"))
        wanted = refs.get(spec.name) if refs is not None else None
        plan = self.plan(wanted)
        if self.two_way is not None:  # synced fields: JAGGAER's changes only, no echoes, conflicts and owners settled
            result.problems.extend(finding_failure(spec.name, f) for f in self.two_way.to_b1(plan, self.run_id))
        _report_plan(result, plan)
        self.note(plan)
        unknown = any(i.action == "create" and not i.attempted for i in plan.items)
        ops = operations(plan.items, self.target, lookup_unknown=unknown and await census(port, self.target, self.state))
        total = len(ops)
        notify(Progress(spec.name, "load", 0, total, f"{total} to write"))
        journal = LedgerJournal(self.state, self.run_id, self.target, self.mapping.crosswalk_type or spec.name,
                                self.crosswalk)
        # lines copied from base documents (an invoice's from its PO and goods receipts): the linker makes them
        derived = entity_profile(self.target.entity_set).lines_derived
        linker = BaseLinker(port, po_keys(self.crosswalk)) if derived else None
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

        loader = Loader(port, journal, concurrency=concurrency, chunk=LOAD_CHUNK, on_outcome=on_outcome)
        load_started = time.monotonic()
        try:
            if ops:
                await loader.load(self.target, ops, linker.prepare if linker else None)
        finally:
            journal.close()
            result.stats = loader.stats
            result.seconds = time.monotonic() - started
            result.load_seconds = time.monotonic() - load_started
        notify(Progress(spec.name, "done", done, total))
        return result

    def plan(self, wanted: set[str] | None) -> Plan:
        """Only what changed since it was last planned; for a replay, the records named."""
        return _plan(self.state, self.spec.name, self.mapping, wanted)

    def note(self, plan: Plan) -> None:
        """Write what planning decided without a write to B1, in one batch: waits, quarantines, records the
        mapping leaves out (`ignored`), and the staged content synced and ignored records were planned from
        (so the next run passes over them)."""
        unchanged = [ledger.Unchanged(self.spec.name, i.external_ref, i.plan_hash, i.mapping_version,
                                      *((i.fingerprint, i.payload) if i.changes else (None, None)),
                                      status="not_applied" if i.held else "synced")
                     for i in plan.items if i.action == "skip" and i.target_key and i.plan_hash]
        _note(self.state, self.spec.name, self.run_id, plan, unchanged)


def _report_plan(result: PipelineReport, plan: Plan) -> None:
    """What planning decided, in the pipeline's report: counts per action, the records held back (waiting,
    quarantined), left out by the mapping (ignored) and failed before and not re-sent."""
    name = result.name
    result.planned = {k: n for k, n in plan.counts().items() if n}
    result.problems.extend(Failure(name, i.external_ref, "waiting", "waiting", i.reason or "waiting")
                           for i in plan.of("wait"))
    result.problems.extend(Failure(name, i.external_ref, "quarantined", "mapping", i.reason or "quarantined")
                           for i in plan.of("quarantine"))
    result.ignored = [Failure(name, i.external_ref, "ignored", "skip_unless", i.reason or "left out by the mapping")
                      for i in plan.of("ignore")]
    result.still_failed = [Failure(name, i.external_ref, "failed", "not re-sent", i.reason or "failed")
                           for i in plan.of("failed")]


def _note(state: Path, name: str, run_id: str, plan: Plan, unchanged: list[ledger.Unchanged]) -> None:
    """Write what planning decided without a write, in one batch: waits, quarantines (with the staged record),
    records the mapping leaves out (`ignored`), `unchanged` (the staged content the skips were planned from),
    and the end of the quarantine of records that render now."""
    waits = [ledger.Mark(name, i.external_ref, i.reason or "waiting", "waiting", i.record_key, i.mapping_version)
             for i in plan.of("wait")]
    held = plan.of("quarantine")
    marks = [ledger.Mark(name, i.external_ref, i.reason or "quarantined", "mapping", i.record_key,
                         i.mapping_version) for i in held]
    ignored = [ledger.Mark(name, i.external_ref, i.reason or "left out by the mapping", "skip_unless", i.record_key,
                           i.mapping_version, i.plan_hash) for i in plan.of("ignore")]
    rendered = {i.record_key for i in plan.items if i.action != "quarantine" and i.record_key}
    if not (waits or marks or ignored or unchanged or rendered):
        return
    with db.connect(state) as conn:
        if rendered:  # records quarantined by their mapping earlier that render now: no longer set aside
            quarantine.resolve(conn, name, rendered & quarantine.open_keys(conn, name, "map"), stage="map")
        ledger.mark_waiting(conn, run_id, waits)
        ledger.mark_quarantined(conn, run_id, marks)
        ledger.mark_ignored(conn, run_id, ignored)
        ledger.refresh_synced(conn, unchanged)
        if held:
            records = _staged_records(conn, name, [i.record_key for i in held if i.record_key])
            quarantine.add(conn, [quarantine.QuarantinedRecord(name, i.record_key or i.external_ref, "map",
                                                               i.reason or "", records.get(i.record_key or ""), run_id)
                                  for i in held])


def _plan(state: Path, name: str, mapping: Any, wanted: set[str] | None) -> Plan:
    """Only what changed since it was last planned; for a replay (`wanted`), the records named."""
    if wanted is None:
        return plan_pipeline(state, name, mapping, lookups=mapping.lookups, changed_only=True)
    with db.connect(state) as conn:  # replay names references or staged keys: find the keys
        keys = set(wanted) | {r.record_key for r in ledger.ledger_rows(conn, name, wanted).values() if r.record_key}
    plan = plan_pipeline(state, name, mapping, keys=keys, lookups=mapping.lookups, replay=True)
    plan.items = [i for i in plan.items if i.external_ref in wanted or i.record_key in wanted]
    return plan


def finding_failure(pipeline: str, finding: bidirectional.Finding) -> Failure:
    """A conflict or a refused change of an owned field, as a line of the run report (not an error)."""
    return Failure(pipeline, finding.ref, finding.kind, finding.field, finding.message)


class JaggaerPipelineRun:
    """One SAP B1 -> JAGGAER pipeline in one run: plan from the staged B1 records, filter through the pair's
    rules (`engine.bidirectional`), note what needs no write, send the UPDATEs (`engine.jaggaer.writer`)."""

    def __init__(self, project: Any, spec: Any, state: Path, run_id: str,
                 crosswalk: dict[str, dict[str, Any]]) -> None:
        from engine.mapping import load_mapping

        root = Path(project.root)
        self.spec, self.state, self.run_id = spec, state, run_id
        self.mapping = load_mapping(root / spec.mapping, project_root=root)
        self.mapping.lookups.crosswalk = crosswalk
        self.two_way: bidirectional.TwoWay | None = None

    async def load(self, writer: Any, refs: Mapping[str, set[str]] | None, notify: ProgressFn,
                   concurrency: int) -> PipelineReport:
        from engine.jaggaer.writer import TARGET_ENTITY, CompanyProfileLoader, WriteItem, WriteOutcome
        from engine.mapping.core import strip_reserved

        spec = self.spec
        started = time.monotonic()
        result = PipelineReport(spec.name, spec.target.endpoint or TARGET_ENTITY)
        notify(Progress(spec.name, "plan", message="rendering mappings and diffing with the ledger"))
        wanted = refs.get(spec.name) if refs is not None else None
        plan = _plan(self.state, spec.name, self.mapping, wanted)  # the same planning as the B1 side
        if self.two_way is not None:
            result.problems.extend(finding_failure(spec.name, f) for f in self.two_way.to_jaggaer(plan, self.run_id))
        else:  # no pair: changes since the last read are sent; a record seen for the first time is its baseline
            for i in plan.items:
                i.target_key = i.target_key or _bravo_id(i.payload)
                if i.action == "create":
                    i.action, i.reason = "skip", "baseline: first seen from SAP B1"
        _report_plan(result, plan)
        self.note(plan)
        items = [WriteItem(spec.name, i.external_ref, strip_reserved(i.patch if i.action == "update" else i.payload),
                           i.payload or {}, i.fingerprint or "", i.mapping_version or "",
                           target_key=i.target_key or _bravo_id(i.payload), record_key=i.record_key,
                           plan_hash=i.plan_hash)
                 for i in plan.items if i.action in ("create", "update")]
        total, done = len(items), 0
        notify(Progress(spec.name, "load", 0, total, f"{total} to write"))

        def on_outcome(outcome: WriteOutcome) -> None:
            nonlocal done
            done += 1
            answer = outcome.answer
            if answer.status != "synced":
                result.problems.append(Failure(spec.name, outcome.item.ref, "failed", answer.code, answer.message or ""))
            notify(Progress(spec.name, "load", done, total))

        loader = CompanyProfileLoader(writer, self.state, self.run_id, concurrency=concurrency, on_outcome=on_outcome)
        load_started = time.monotonic()
        try:
            if items:
                await loader.load(items)
        finally:
            result.stats = loader.stats
            result.seconds = time.monotonic() - started
            result.load_seconds = time.monotonic() - load_started
        notify(Progress(spec.name, "done", done, total))
        return result

    def note(self, plan: Plan) -> None:
        """Like `PipelineRun.note`, and every skip keeps its rendering as the new base: a business partner seen for
        the first time (its baseline), a change JAGGAER holds already (an echo), or one kept out by a conflict or
        an owner — the next run compares with it."""
        from engine.jaggaer.writer import TARGET_ENTITY

        unchanged = [ledger.Unchanged(self.spec.name, i.external_ref, i.plan_hash, i.mapping_version, i.fingerprint,
                                      i.payload, target_key=i.target_key or _bravo_id(i.payload),
                                      record_key=i.record_key, target_entity=TARGET_ENTITY)
                     for i in plan.items if i.action == "skip" and i.payload is not None and i.fingerprint]
        _note(self.state, self.spec.name, self.run_id, plan, unchanged)


def _bravo_id(payload: Any) -> str | None:
    info = ((payload or {}).get("company") or {}).get("companyInfo") or {}
    value = info.get("bravoId") if isinstance(info, dict) else None
    return None if value is None else str(value)


def _staged_records(conn: Any, pipeline: str, keys: list[str]) -> dict[str, Any]:
    from engine.state.staging import iter_staged

    return dict(iter_staged(conn, pipeline, keys=keys))


def replay_failed(
    project: Project,
    *,
    run_id: str | None = None,
    refs: Iterable[str] | None = None,
    pipelines: Iterable[str] | None = None,
    progress: ProgressFn | None = None,
) -> RunReport | None:
    """Re-send failed records (all, those of one run, or those named), re-rendered with the current
    mapping, from what is staged. None when nothing matches. A project loaded without its pipelines
    (`with_pipelines=False`) gets those of the failed records only: a broken pipeline elsewhere does not
    stop a replay."""
    if not Path(project.state_path).exists():
        return None
    with db.connect(project.state_path, read_only=True) as conn:
        rows = ledger.failed_records(conn, run_id=run_id, ref=list(refs) if refs else None)
    only = set(pipelines) if pipelines else None
    wanted: dict[str, set[str]] = {}
    for row in rows:
        if only is None or row.pipeline in only:
            wanted.setdefault(row.pipeline, set()).add(row.external_ref)
    if not wanted:
        return None
    if not project.pipelines:
        project = add_pipelines(project, sorted(wanted))
    return run_pipelines(project, sorted(wanted), extract=False, refs=wanted, progress=progress, kind="replay")
