"""Reconcile: compare what JAGGAER says (staging), what the ledger says we last wrote, and what SAP B1 holds.

    result = reconcile(load_project("."), ["purchase_orders"])   # reads only
    result.findings                                              # [Finding(pipeline, ref, kind, ...)]
    result = reconcile(load_project("."), fix=True)              # then repairs what the policy says

The core returns a `ReconcileResult` and prints nothing; `engine/cli/reconcile.py` displays it.

B1 is read with ONE paged query per entity set: every record carrying the reference field
(`$filter=U_JaggaerRef ne null`), `$select` of the key, the reference, the document state and the fields
our payloads set (lines included). Each record is set beside the ledger row of its key and classified:

- `changed_in_b1`      a field our payload sets (lines matched by the ledger's line map) holds another
                       value than we last wrote: B1 was edited by hand. Details list each field with both
                       values, lines added or missing in B1, the line count and the net line amount.
                       (`engine.load.adopt.held_shape` puts B1's record in the payload's shape.)
- `closed_in_b1`       closed or cancelled by hand in B1 (`Cancelled` tYES, or `DocumentStatus` closed
                       while some line still has an open quantity: not closed by being copied to target
                       documents) while the staged source record is still open.
- `missing_in_b1`      the ledger holds a key that no B1 record carrying our reference has: deleted, or
                       its reference was cleared or changed (one GET per such key tells which).
- `unknown_to_ledger`  B1 holds a record carrying our reference under a key the ledger never wrote (a
                       lost ledger row, a second project, someone typing our reference, a duplicate).

Records the ledger holds in flight are left out (the next run resolves them first). Invoice lines are
derived by the loader (copies of PO or goods-receipt lines), so invoices compare their header and net
line amount, not line by line. Business partners have no closed state.

Findings replace the previous reconcile's rows of the same pipelines in the `drift` table (owned here).
The project lock (`engine.locks.run_locks`) is held while B1 is read and the state file written, so a
reconcile never races a run; the state file is opened per step, never across a network wait.

`fix=True` repairs what the policy says, through the ordinary run (`engine.runner.run_pipelines`,
`extract=False`, only the references concerned), after the lock is released (the run takes it):

- `changed_in_b1`: JAGGAER wins on documents. The ledger's payload becomes what B1 holds, so the plan
  PATCHes exactly the drifted fields back (one PATCH per document). Business partners are reported only:
  suppliers sync both ways, a change made in B1 is on its way to JAGGAER;
- `missing_in_b1`: the ledger forgets the key; the run looks the reference up, then creates the record;
- `unknown_to_ledger`: when the reference is a staged record's, the run finds it in B1 and adopts it
  (the loader's adopt path: compared, only a difference sent); a duplicate is reported only;
- `closed_in_b1`: reported only, never reopened.

The ledger edits are committed before the run starts: should the run not get the lock (another run took
it in between) or stop, the next ordinary run sends the same repairs (their `plan_hash` is cleared).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeGuard

import orjson

from engine.errors import ConfigError
from engine.kinds import SapB1Target
from engine.load.adopt import held_shape
from engine.load.bridge import LINES
from engine.load.closed import OPEN
from engine.locks import run_locks
from engine.plan import fingerprint
from engine.project import Project
from engine.sapb1.entities import ENTITIES, entity_profile
from engine.spec import Pipeline
from engine.state import db, drift, ledger, staging

KINDS = ("changed_in_b1", "closed_in_b1", "missing_in_b1", "unknown_to_ledger")
# What reconcile compares: documents (lines by the line map) and business partners (fields, addresses).
SUPPORTED = ("PurchaseOrders", "PurchaseInvoices", "BusinessPartners")
DOCUMENTS = frozenset(("PurchaseOrders", "PurchaseInvoices"))
# Where a staged J1P record says it is done, per B1 entity set: (JSON path, values meaning "not open").
# A document closed in B1 is drift only while its source is still open.
SOURCE_STATE = {
    "PurchaseOrders": ("$.header.poStatus", frozenset(("Closed", "Cancelled"))),
    "PurchaseInvoices": ("$.header.paymentStatus", frozenset(("Paid",))),
}
PAGE_SIZE = 200  # records per page of the B1 read (as the loader's lookups)
EPS = 1e-6
AMOUNT_EPS = 0.005
# Ledger statuses whose payload is what B1 holds (compared); in flight: outcome unknown (left out).
COMPARED = ledger.HELD
LEFT_OUT = ("in_flight",)

# ---------------------------------------------------------------- results


@dataclass
class Finding:
    """One difference between the ledger and SAP B1."""

    pipeline: str
    ref: str | None
    kind: str  # one of KINDS
    target_key: str | None
    details: dict[str, Any] = field(default_factory=dict)
    # with --fix: what was done — patched | recreated | adopted | reported (closed, duplicate, not staged)
    # | not_repaired (the run did not settle it: see `reason` in the fix report)
    fix: str | None = None

    def summary(self) -> str:
        """One line for people: what differs."""
        d = self.details
        if self.kind == "changed_in_b1":
            parts = [f"{f['path']}: {_short(f['ours'])} -> {_short(f['b1'])}" for f in d.get("fields", [])]
            if "lines" in d:
                parts.append(f"lines: {d['lines']['ours']} -> {d['lines']['b1']}")
            if "amounts" in d:
                parts.append(f"net amount: {d['amounts']['ours']} -> {d['amounts']['b1']}")
            return "; ".join(parts)
        if self.kind == "closed_in_b1":
            return f"{d.get('state')} in SAP B1; JAGGAER says {d.get('source_status') or 'open'}"
        return str(d.get("reason", ""))


@dataclass
class PipelineCheck:
    name: str
    entity: str
    ref_field: str
    b1_records: int = 0  # records carrying the reference field read from B1
    ledger_keys: int = 0  # ledger rows with a B1 key (compared or checked for presence)
    seconds: float = 0.0


@dataclass
class FixReport:
    """What `--fix` did: ledger edits, then the ordinary run over the references concerned."""

    refs: dict[str, list[str]] = field(default_factory=dict)  # pipeline -> references sent to the run
    rebased: int = 0  # changed_in_b1: ledger payload set to what B1 holds
    keys_cleared: int = 0  # missing_in_b1
    adoptions: int = 0  # unknown_to_ledger handed to the run for adoption
    run: Any = None  # engine.runner.RunReport of the repair run (None when there was nothing to send)
    not_repaired: list[tuple[str, str, str]] = field(default_factory=list)  # (pipeline, ref, why)

    @property
    def writes(self) -> int:
        return self.run.writes if self.run is not None else 0


@dataclass
class ReconcileResult:
    run_id: str
    started_at: datetime
    pipelines: list[PipelineCheck] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    fix: FixReport | None = None
    requests: int = 0  # requests sent to SAP B1 by the check (login and the --fix run not counted)
    seconds: float = 0.0

    @property
    def clean(self) -> bool:
        return not self.findings

    def of(self, kind: str, pipeline: str | None = None) -> list[Finding]:
        return [f for f in self.findings if f.kind == kind and (pipeline is None or f.pipeline == pipeline)]

    def counts(self) -> dict[str, int]:
        return {kind: len(self.of(kind)) for kind in KINDS}


# ---------------------------------------------------------------- the check


@dataclass
class _Scope:
    """One pipeline's ledger side, read once before B1 is asked."""

    spec: Any
    check: PipelineCheck
    key_field: str
    rows: dict[str, ledger.LedgerRow]  # by external reference
    by_key: dict[str, ledger.LedgerRow]  # rows with a B1 key, by key (not in flight)
    in_flight: set[str]  # references whose outcome the ledger does not know yet
    staged: set[str]  # staged record keys
    source_status: dict[str, str | None]  # staged record key -> its status in JAGGAER
    select: list[str]


def reconcile(
    project: Project,
    names: Iterable[str] | None = None,
    *,
    fix: bool = False,
    wait: float = 0.0,
    page_size: int = PAGE_SIZE,
    concurrency: int | None = None,
) -> ReconcileResult:
    """Compare staging, ledger and SAP B1 for the named pipelines (default: every one writing purchase
    orders, invoices or business partners to SAP B1); with `fix`, repair what the policy says (see the
    module docstring) and report what was sent. Holds the project lock while it reads and writes the
    state (waits up to `wait` seconds for a run to finish, then raises `RunLocked`)."""
    root = project.root
    wanted = list(names or [])
    specs = [s for s in project.select(wanted) if _checkable(s)]
    if wanted:
        unsupported = sorted(set(wanted) - {s.name for s in specs})
        if unsupported:
            raise ConfigError(f"reconcile compares pipelines writing {', '.join(SUPPORTED)} to SAP B1; "
                              f"not: {', '.join(unsupported)}")
    result = ReconcileResult(run_id=_new_run_id(), started_at=datetime.now(UTC))
    started = time.monotonic()
    if not specs:
        return result
    connections = {s.target.connection for s in specs}
    if len(connections) > 1:
        raise ConfigError(f"one reconcile reads one SAP B1 company; these pipelines name {sorted(connections)}")
    profile = project.connection(next(iter(connections)))
    state = Path(project.state_path)
    edits: dict[str, dict[str, Any]] = {}
    with run_locks(state, wait=wait):
        scopes = _read_state(state, specs, root)
        asyncio.run(_read_b1(profile, scopes, result, page_size, concurrency))
        result.findings.sort(key=lambda f: (f.pipeline, KINDS.index(f.kind), f.ref or "", f.target_key or ""))
        if fix:
            edits = _prepare_fix(state, scopes, result)
        with db.connect(state) as conn:
            drift.replace(conn, result.run_id, [s.spec.name for s in scopes], result.findings,
                          {c.name: c.entity for c in result.pipelines})
    if fix:
        _run_fix(project, result, edits, wait)
    result.seconds = time.monotonic() - started
    return result


def _checkable(pipeline: Pipeline) -> bool:
    return isinstance(pipeline.target, SapB1Target) and pipeline.target.entity in SUPPORTED


def _new_run_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ-") + uuid.uuid4().hex[:6]


def _ref_field(spec: Any, root: Path) -> str:
    ref_field = spec.target.external_ref
    if ref_field:
        return str(ref_field)
    from engine.mapping import load_mapping

    return str(load_mapping(root / spec.mapping, project_root=root).ref_field)


def _read_state(state: Path, specs: list[Any], root: Path) -> list[_Scope]:
    """Per pipeline: its ledger rows, its staged keys and the source status of each (one open of the file)."""
    scopes = []
    with db.connect(state) as conn:
        for spec in specs:
            entity = spec.target.entity
            key_field = entity_profile(entity).key_field
            ref_field = _ref_field(spec, root)
            rows = ledger.ledger_rows(conn, spec.name)
            by_key = {str(r.target_key): r for r in rows.values() if r.target_key and r.status not in LEFT_OUT}
            in_flight = {ref for ref, r in rows.items() if r.status in LEFT_OUT}
            path = SOURCE_STATE.get(entity, (None,))[0]
            status: dict[str, str | None] = staging.staged_values(conn, spec.name, path) if path else {}
            staged = set(status) if path else staging.staged_ids(conn, spec.name)
            fields: dict[str, None] = {}
            for row in by_key.values():
                if isinstance(row.payload, dict):
                    fields.update(dict.fromkeys(k for k in row.payload if not k.startswith("_")))
            extra = ["DocumentStatus", "Cancelled", LINES] if entity in DOCUMENTS else []
            select = list(dict.fromkeys([key_field, ref_field, *extra, *fields]))
            check = PipelineCheck(spec.name, entity, ref_field, ledger_keys=len(by_key))
            scopes.append(_Scope(spec, check, key_field, rows, by_key, in_flight, staged, status, select))
    return scopes


async def _read_b1(profile: Mapping[str, Any], scopes: list[_Scope], result: ReconcileResult, page_size: int,
                   concurrency: int | None) -> None:
    from engine.sapb1 import SapB1Client

    limit = int(concurrency or profile.get("max_concurrency") or 8)
    async with SapB1Client.from_profile(profile, max_concurrency=limit) as client:
        await client.login()
        before = client.requests_sent
        await asyncio.gather(*(_check(client, scope, result, page_size) for scope in scopes))
        result.requests = client.requests_sent - before


async def _check(client: Any, scope: _Scope, result: ReconcileResult, page_size: int) -> None:
    """One paged read of the entity set; each page is compared while the next one is on its way."""
    check = scope.check
    result.pipelines.append(check)
    started = time.monotonic()
    queue: asyncio.Queue[list[dict[str, Any]] | None] = asyncio.Queue()

    async def read() -> None:
        page: list[dict[str, Any]] = []
        try:
            async for row in client.query(check.entity, filter=f"{check.ref_field} ne null", select=scope.select,
                                          page_size=page_size):
                page.append(row)
                if len(page) >= page_size:
                    queue.put_nowait(page)
                    page = []
        finally:
            queue.put_nowait(page)
            queue.put_nowait(None)

    reader = asyncio.create_task(read())
    seen: dict[str, dict[str, Any]] = {}  # B1 key -> record carrying a reference
    findings: list[Finding] = []
    try:
        while (page := await queue.get()) is not None:
            for doc in page:
                ref = doc.get(check.ref_field)
                if ref in (None, ""):
                    continue  # the filter keeps non-null references; an emptied one is not ours any more
                key = str(doc.get(scope.key_field))
                seen[key] = doc
                findings += _classify(scope, doc, str(ref), key)
            await asyncio.sleep(0)  # let the reader send the next request
        await reader
    finally:
        if not reader.done():
            reader.cancel()
            with contextlib.suppress(BaseException):
                await reader
    check.b1_records = len(seen)
    findings += _unknown(scope, seen)
    findings += await _missing(client, scope, seen)
    check.seconds = time.monotonic() - started
    result.findings += findings


def _classify(scope: _Scope, doc: dict[str, Any], ref: str, key: str) -> list[Finding]:
    """changed_in_b1 / closed_in_b1 of one B1 record the ledger holds under this key and reference."""
    check = scope.check
    row = scope.by_key.get(key)
    if row is None or row.external_ref != ref or row.status not in COMPARED:
        return []  # unknown, moved or not compared: `_unknown` / `_missing` look at it
    out = []
    state = _hand_closed(check.entity, doc)
    if state is not None:
        source = scope.source_status.get(row.record_key or ref)
        done = SOURCE_STATE.get(check.entity, (None, frozenset()))[1]
        if source not in done:
            out.append(Finding(check.name, ref, "closed_in_b1", key, {
                "state": state, "DocumentStatus": doc.get("DocumentStatus"), "Cancelled": doc.get("Cancelled"),
                "source_status": source, "staged": (row.record_key or ref) in scope.staged}))
    if isinstance(row.payload, dict):
        details = compare(check.entity, row.payload, doc, row.line_map or {})
        if details:
            out.append(Finding(check.name, ref, "changed_in_b1", key, details))
    return out


def _hand_closed(entity: str, doc: Mapping[str, Any]) -> str | None:
    """'cancelled' / 'closed' when a person did it in B1; None when open, or closed because every line
    was copied to a target document (B1 closes those itself)."""
    if entity not in DOCUMENTS:
        return None
    if doc.get("Cancelled") == "tYES":
        return "cancelled"
    if doc.get("DocumentStatus", OPEN) == OPEN:
        return None
    lines = doc.get(LINES) or []
    if not lines or any(float(line.get("RemainingOpenQuantity") or 0) > EPS for line in lines):
        return "closed"
    return None


def _unknown(scope: _Scope, seen: Mapping[str, dict[str, Any]]) -> list[Finding]:
    """B1 records carrying a reference under a key the ledger never wrote."""
    check = scope.check
    out = []
    for key, doc in seen.items():
        ref = str(doc.get(check.ref_field))
        row = scope.by_key.get(key)
        if row is not None and row.external_ref == ref:
            continue
        if ref in scope.in_flight:
            continue  # an intent whose answer was lost: the next run looks it up and adopts it
        mine = scope.rows.get(ref)
        details: dict[str, Any] = {"b1": _brief(doc, check.entity)}
        if mine is not None and mine.target_key and str(mine.target_key) != key:
            details["duplicate_of"] = str(mine.target_key)
            details["reason"] = (f"{check.ref_field} {ref!r} is also on {check.entity}({key}); the ledger's record "
                                 f"is {mine.target_key}")
            details["adoptable"] = False
        else:
            staged = (mine.record_key if mine is not None and mine.record_key else ref) in scope.staged
            details["staged"] = staged
            details["adoptable"] = staged
            how = f"the ledger has it {mine.status} without a key" if mine is not None else "the ledger never wrote it"
            details["reason"] = (f"{check.entity}({key}) carries {check.ref_field} {ref!r}; {how}"
                                 + ("" if staged else "; no staged record has this reference"))
        if row is not None:
            details["key_in_ledger_for"] = row.external_ref
        out.append(Finding(check.name, ref, "unknown_to_ledger", key, details))
    return out


async def _missing(client: Any, scope: _Scope, seen: Mapping[str, dict[str, Any]]) -> list[Finding]:
    """Ledger keys no B1 record carrying our reference has; one GET per key tells deleted from re-referenced."""
    from engine.sapb1 import ServiceLayerError, entity_path

    check = scope.check
    gone = [row for key, row in scope.by_key.items()
            if key not in seen or str(seen[key].get(check.ref_field)) != row.external_ref]

    async def one(row: ledger.LedgerRow) -> Finding:
        key = str(row.target_key)
        details: dict[str, Any] = {"status": row.status}
        doc = seen.get(key)
        if doc is not None:
            now = doc.get(check.ref_field)
            details.update(exists=True, b1_ref=now,
                           reason=f"{check.entity}({key}) now carries {check.ref_field} {now!r}, not {row.external_ref!r}")
            return Finding(check.name, row.external_ref, "missing_in_b1", key, details)
        try:
            native: Any = int(key) if scope.key_field == "DocEntry" and key.isdigit() else key
            have = await client.get(entity_path(check.entity, native), select=[scope.key_field, check.ref_field])
            now = have.get(check.ref_field)
            details.update(exists=True, b1_ref=now,
                           reason=f"{check.entity}({key}) no longer carries our reference"
                                  + (f" (now {now!r})" if now else ""))
        except ServiceLayerError as exc:
            if not exc.is_not_found:
                raise
            details.update(exists=False, reason=f"{check.entity}({key}) is not in SAP B1 (deleted)")
        return Finding(check.name, row.external_ref, "missing_in_b1", key, details)

    return list(await asyncio.gather(*(one(row) for row in gone)))


def _brief(doc: Mapping[str, Any], entity: str) -> dict[str, Any]:
    """A few fields naming a B1 record for people."""
    names = ("CardCode", "NumAtCard", "DocDate", "DocumentStatus") if entity in DOCUMENTS else ("CardCode", "CardName")
    return {k: doc[k] for k in names if k in doc}


# ---------------------------------------------------------------- comparing one record


def compare(entity: str, payload: Mapping[str, Any], doc: Mapping[str, Any], line_map: Mapping[str, int]
            ) -> dict[str, Any]:
    """What differs between the payload we last wrote and B1's record (`doc`, as read with the payload's
    fields): {"fields": [{path, ours, b1}], "lines": {ours, b1}, "amounts": {ours, b1}} — only the parts
    that differ; empty when B1 holds what we wrote."""
    derived = entity in ENTITIES and ENTITIES[entity].lines_derived
    ours = {k: v for k, v in payload.items() if not (derived and k == LINES)}
    held = held_shape(ours, doc, line_map)
    fields = _fields(ours, held, "")
    details: dict[str, Any] = {}
    if entity in DOCUMENTS:
        mine = [m for m in payload.get(LINES) or [] if isinstance(m, dict)]
        theirs = [m for m in doc.get(LINES) or [] if isinstance(m, dict)]
        if not derived:
            mapped = {int(v) for v in line_map.values()}
            fields += [{"path": f"{LINES}[LineNum {m.get('LineNum')}]", "ours": None, "b1": _line_brief(m),
                        "note": "line added in SAP B1"} for m in theirs if m.get("LineNum") not in mapped]
            if len(mine) != len(theirs):
                details["lines"] = {"ours": len(mine), "b1": len(theirs)}
        amount_ours, amount_b1 = _net(mine), _net(theirs)
        if abs(amount_ours - amount_b1) > AMOUNT_EPS:
            details["amounts"] = {"ours": amount_ours, "b1": amount_b1}
    if fields:
        details["fields"] = fields
    if details:
        holds = _holds(payload, held)
        if holds != payload:  # else only lines added in B1 (never deleted) or amounts of derived lines differ
            details["b1_holds"] = holds
    return details


# Payloads and B1 records are parsed JSON: plain dicts and lists (an `isinstance(x, Mapping)` check through
# the ABC costs several times a `dict` check, and there are dozens per record).


def _fields(ours: Mapping[str, Any], held: Mapping[str, Any], path: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for name, value in ours.items():
        if name.startswith("_") or name not in held:
            continue  # reserved keys are ours; a field B1 did not return cannot be compared
        here = f"{path}.{name}" if path else name
        theirs = held[name]
        if isinstance(value, dict) and isinstance(theirs, dict):
            out += _fields(value, theirs, here)
        elif _keyed(value) and isinstance(theirs, list):
            matched = {str(m["_key"]): m for m in theirs if isinstance(m, dict) and "_key" in m}
            for member in value:
                key = str(member["_key"])
                if key in matched:
                    out += _fields(member, matched[key], f"{here}[{key}]")
                else:
                    out.append({"path": f"{here}[{key}]", "ours": _strip(member), "b1": None,
                                "note": "not in SAP B1"})
        elif value != theirs:  # held_shape gave values B1 holds in another notation the planned value
            out.append({"path": here, "ours": value, "b1": theirs})
    return out


def _holds(payload: Mapping[str, Any], held: Mapping[str, Any]) -> dict[str, Any]:
    """What B1 holds, in the payload's shape: the payload with B1's values over it; members B1 lacks are
    dropped (the next diff sends them as new), fields B1 did not return are kept as we wrote them."""
    out = dict(payload)
    for name, value in held.items():
        mine = payload.get(name)
        if isinstance(value, dict) and isinstance(mine, dict):
            out[name] = _holds(mine, value)
        elif _keyed(mine) and isinstance(value, list):
            by_key = {str(m["_key"]): m for m in mine}
            out[name] = [_holds(by_key.get(str(m["_key"]), {}), m) for m in value if isinstance(m, dict)]
        else:
            out[name] = value
    return out


def _net(lines: Sequence[Mapping[str, Any]]) -> float:
    total = 0.0
    for line in lines:
        try:
            total += float(line.get("Quantity") or 0) * float(line.get("UnitPrice") or 0)
        except (TypeError, ValueError):
            continue
    return round(total, 2)


def _line_brief(line: Mapping[str, Any]) -> dict[str, Any]:
    return {k: line[k] for k in ("LineNum", "ItemDescription", "Quantity", "UnitPrice", "AccountCode") if k in line}


def _keyed(items: Any) -> TypeGuard[list[dict[str, Any]]]:
    return isinstance(items, list) and bool(items) and all(isinstance(m, dict) and "_key" in m for m in items)


def _strip(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items() if not k.startswith("_")}
    return value


def _short(value: Any) -> str:
    if value is None:
        return "(none)"
    text = orjson.dumps(value, default=str).decode() if isinstance(value, dict | list) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# ---------------------------------------------------------------- --fix


def _prepare_fix(state: Path, scopes: list[_Scope], result: ReconcileResult) -> dict[str, dict[str, Any]]:
    """The ledger edits the policy asks for (under the lock); pipeline -> ref -> Finding to send to the run."""
    fix = result.fix = FixReport()
    scope_entity = {scope.spec.name: scope.check.entity for scope in scopes}
    sends: dict[str, dict[str, Finding]] = {}
    rebase: dict[str, list[ledger.Rebase]] = {}
    forget: dict[str, list[str]] = {}
    for finding in result.findings:
        pipeline, ref = finding.pipeline, finding.ref or ""
        if finding.kind == "closed_in_b1":
            finding.fix = "reported"
            continue
        if finding.kind == "changed_in_b1":
            if scope_entity.get(pipeline) not in DOCUMENTS:
                finding.fix = "reported"
                fix.not_repaired.append((pipeline, ref, "business partners sync both ways (a change made in SAP B1 "
                                         "goes to JAGGAER): not undone by reconcile"))
                continue
            holds = finding.details.get("b1_holds")
            if holds is None:  # nothing of ours to send back: lines added in B1 are never deleted
                finding.fix = "reported"
                fix.not_repaired.append((pipeline, ref, "nothing to send back: " + finding.summary()))
                continue
            added = [f["path"] for f in finding.details.get("fields", []) if f.get("note") == "line added in SAP B1"]
            if added:  # the rest is sent back; these stay
                fix.not_repaired.append((pipeline, ref, f"lines added in SAP B1 are never deleted: {', '.join(added)}"))
            rebase.setdefault(pipeline, []).append(ledger.Rebase(ref, holds, fingerprint(holds)))
            fix.rebased += 1
        elif finding.kind == "missing_in_b1":
            forget.setdefault(pipeline, []).append(ref)
            fix.keys_cleared += 1
        elif finding.kind == "unknown_to_ledger":
            if not finding.details.get("adoptable"):
                finding.fix = "reported"
                fix.not_repaired.append((pipeline, ref, finding.details.get("reason", "not adoptable")))
                continue
            fix.adoptions += 1
        sends.setdefault(pipeline, {})[ref] = finding
    if rebase or forget:
        with db.connect(state) as conn:
            for pipeline, items in rebase.items():
                ledger.rebase_on_b1(conn, result.run_id, pipeline, items,
                                    "changed in SAP B1 by hand (reconcile): JAGGAER's values are sent back")
            for pipeline, refs in forget.items():
                ledger.forget_b1_key(conn, result.run_id, pipeline, refs,
                                     "not in SAP B1 any more (reconcile): looked up, then created again")
    fix.refs = {p: sorted(found) for p, found in sends.items()}
    return sends


def _run_fix(project: Project, result: ReconcileResult, sends: dict[str, dict[str, Finding]], wait: float) -> None:
    """The ordinary run over the references concerned (it takes the project and company locks itself),
    then each finding is marked with what came of it."""
    from engine.runner import run_pipelines

    fix = result.fix
    assert fix is not None
    if not sends:
        return
    report = run_pipelines(project, list(sends), extract=False, refs={p: set(refs) for p, refs in sends.items()},
                           kind="reconcile", wait=wait)
    fix.run = report
    unsettled = {(f.pipeline, f.ref): f for p in report.pipelines for f in [*p.problems, *p.still_failed, *p.ignored]}
    planned = {p.name: p for p in report.pipelines}
    done = {"changed_in_b1": "patched", "missing_in_b1": "recreated", "unknown_to_ledger": "adopted"}
    for pipeline, found in sends.items():
        for ref, finding in found.items():
            problem = unsettled.get((pipeline, ref))
            if report.aborted or pipeline not in planned:
                finding.fix = "not_repaired"
                fix.not_repaired.append((pipeline, ref, report.aborted or "not planned"))
            elif problem is not None:
                finding.fix = "not_repaired"
                fix.not_repaired.append((pipeline, ref, f"{problem.status}: {problem.message}"))
            else:
                finding.fix = done[finding.kind]
    with run_locks(project.state_path, wait=max(wait, 10.0)), db.connect(project.state_path) as conn:
        drift.mark_fixed(conn, result.run_id, report.run_id, (f for found in sends.values() for f in found.values()))
