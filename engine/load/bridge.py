"""The runner's link to the state file: plan operations from staging + ledger, journal outcomes.

`PipelineBridge` renders staged records with the pipeline's mapping, diffs them with the ledger's
fingerprints (create / update with only the changed fields / skip / wait / quarantine), and hands the
loader a `LedgerJournal` that writes intents durably before the writes and outcomes in batches.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from engine import db
from engine.load import store
from engine.load.executor import Journal
from engine.load.links import PoKeys
from engine.load.model import Action, Operation, Outcome, Status, Target

LINES = "DocumentLines"
RESERVED = "_"
FLUSH_EVERY = 200  # outcomes
FLUSH_SECONDS = 0.5


@contextlib.contextmanager
def open_state(path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    """The state file for the length of a run (one writer; audit readers wait for it)."""
    with db.connect(path) as conn:
        store.ensure_tables(conn)
        yield conn


@dataclass
class PlanProblem:
    ref: str
    status: str  # waiting | quarantined
    code: str | None
    message: str


@dataclass
class Planned:
    operations: list[Operation] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    problems: list[PlanProblem] = field(default_factory=list)


def fingerprint(payload: Any) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str).encode()).hexdigest()[:32]


def strip(payload: Any, keep: tuple[str, ...] = ()) -> Any:
    """Without the mapping's reserved `_` keys, except those in `keep` (`_base`, for the linker)."""
    if isinstance(payload, dict):
        return {k: strip(v, keep) for k, v in payload.items() if not k.startswith(RESERVED) or k in keep}
    if isinstance(payload, list):
        return [strip(v, keep) for v in payload]
    return payload


def diff_payload(before: dict[str, Any], after: dict[str, Any], line_map: dict[str, int]) -> dict[str, Any]:
    """The PATCH body turning `before` into `after`: changed fields only; lines by their `_key`.

    A changed line is sent with its B1 `LineNum` and its changed fields; a new line is appended
    (no `LineNum`). Fields or lines that disappeared are left alone: never a delete.
    """
    changes: dict[str, Any] = {}
    for name, value in after.items():
        if name.startswith(RESERVED) or name == LINES:
            continue
        if before.get(name) != value:
            changes[name] = value
    if LINES in after:
        old = {str(line.get("_key")): line for line in before.get(LINES) or [] if "_key" in line}
        lines: list[dict[str, Any]] = []
        for line in after[LINES]:
            key = str(line.get("_key")) if "_key" in line else None
            if key is not None and key in old and key in line_map:
                changed = {k: v for k, v in strip(line).items() if old[key].get(k) != v}
                if changed:
                    lines.append({"LineNum": line_map[key], **changed})
            elif key is None or key not in old:
                lines.append(strip(line))
        if lines:
            changes[LINES] = lines
    return changes


class PipelineBridge:
    """Planning and journalling for one pipeline in one run."""

    def __init__(self, conn: duckdb.DuckDBPyConnection, project: Any, spec: Any, run_id: str, codes: Any) -> None:
        from engine.mapping import load_mapping

        self.conn = conn
        self.spec = spec
        self.run_id = run_id
        entity = spec.target["entity"]
        self.mapping = load_mapping(Path(project.root) / spec.mapping, project_root=Path(project.root))
        ref_field = spec.target.get("external_ref") or self.mapping.ref_field
        self.target = Target(entity, "CardCode" if entity == "BusinessPartners" else "DocEntry", ref_field,
                             LINES if entity != "BusinessPartners" else None)
        self.crosswalk_type = self.mapping.crosswalk_type or spec.name
        self._crosswalk = store.load_crosswalk(conn)
        self.mapping.lookups.crosswalk = self._crosswalk
        self.mapping.lookups.reference_codes = reference_code_sets(codes)

    # -- plan --------------------------------------------------------------------------------------

    def plan(self, refs: set[str] | None = None) -> Planned:
        from engine.staging import iter_staged, table_exists

        planned = Planned()
        counts: Counter[str] = Counter()
        if not table_exists(self.conn, self.spec.name):
            planned.counts = {}
            return planned
        rows = store.ledger_rows(self.conn, self.spec.name)
        seen: set[str] = set()
        quarantined: list[tuple[str, str, Any]] = []
        for key, record in iter_staged(self.conn, self.spec.name):
            result = self.mapping.render(record, key)
            ref = result.external_ref or key
            if refs is not None and ref not in refs and key not in refs:
                continue
            if ref in seen:
                continue
            seen.add(ref)
            row = rows.get(ref)
            if result.status == "skip":
                counts["skip"] += 1
                continue
            if result.status == "wait":
                counts["wait"] += 1
                planned.problems.append(PlanProblem(ref, "waiting", "waiting", result.reason or "waiting"))
                store.set_status(self.conn, self.spec.name, ref, key, "waiting", "waiting", result.reason, self.run_id,
                                 result.mapping_version)
                continue
            if result.status == "quarantine":
                counts["quarantine"] += 1
                planned.problems.append(PlanProblem(ref, "quarantined", "mapping", result.reason or "quarantined"))
                quarantined.append((key, result.reason or "", record))
                store.set_status(self.conn, self.spec.name, ref, key, "quarantined", "mapping", result.reason, self.run_id,
                                 result.mapping_version)
                continue
            payload = result.payload or {}
            sent = strip(payload, keep=("_base",))  # the invoice linker turns `_base` into BaseType/Entry/Line
            fp = fingerprint(payload)
            line_refs = [str(line["_key"]) for line in payload.get(LINES) or [] if "_key" in line] or None
            context = {"record_key": key, "crosswalk_key": result.crosswalk_key, "payload": payload}
            resume = row is not None and row["status"] == "in_flight"
            if (refs is None and row is not None and row["status"] == "failed"
                    and row["attempt_fingerprint"] == fp):
                counts["failed"] += 1  # B1 refused this very payload: `replay` re-sends it, a run does not
                continue
            if row is None or row["target_key"] is None:
                counts["create"] += 1
                planned.operations.append(Operation(self.spec.name, ref, Action.CREATE, sent, fp, result.mapping_version,
                                                    full_payload=payload, line_refs=line_refs, resume=resume,
                                                    context=context))
            elif row["fingerprint"] == fp and row["status"] == "synced":
                counts["skip"] += 1
            else:
                line_map = row["line_map"] or {}
                changes = diff_payload(row["payload"] or {}, payload, line_map)
                if not changes:  # e.g. only a mapping-version change, or a failed update now moot
                    counts["skip"] += 1
                    store.mark_synced_unchanged(self.conn, self.spec.name, ref, fp, result.mapping_version, payload)
                    continue
                counts["update"] += 1
                context.update(line_map=line_map, known_line_nums=sorted(line_map.values()))
                planned.operations.append(Operation(self.spec.name, ref, Action.UPDATE, changes, fp, result.mapping_version,
                                                    key=_key(row["target_key"], self.target), full_payload=payload,
                                                    line_refs=line_refs, resume=resume, context=context))
        if quarantined:
            from engine import quarantine

            quarantine.add(self.conn, [quarantine.QuarantinedRecord(self.spec.name, k, "map", reason, rec, self.run_id)
                                       for k, reason, rec in quarantined])
        planned.counts = dict(counts)
        return planned

    # -- load --------------------------------------------------------------------------------------

    def journal(self) -> LedgerJournal:
        return LedgerJournal(self.conn, self.run_id, self.target, self.crosswalk_type, self._crosswalk)

    def po_keys(self, po_ref: str) -> PoKeys | None:
        entry = (self._crosswalk.get("purchase_orders") or {}).get(str(po_ref))
        if not entry or not str(entry["b1_key"]).isdigit():
            return None
        return PoKeys(int(entry["b1_key"]), {str(k): int(v) for k, v in (entry.get("line_map") or {}).items()})

    def finish(self, report: Any) -> None:
        return None


def _key(raw: Any, target: Target) -> Any:
    if target.key_field == "DocEntry":
        return int(raw)
    return raw


def reference_code_sets(codes: Any) -> dict[str, set[str]] | None:
    """`engine.sapb1.ReferenceCodes` as the plain structure rule tables check against."""
    if codes is None:
        return None
    out: dict[str, set[str]] = {"accounts": set(codes.accounts), "projects": set(codes.projects)}
    for dim in range(1, 6):
        out[f"costing{dim}"] = set(codes.distribution_rules.get(dim, ())) | set(codes.profit_centers.get(dim, ()))
    out["payment_terms"] = {str(x) for x in codes.payment_terms}
    return out


class LedgerJournal(Journal):
    """Intents: written and committed before the writes. Outcomes: buffered, flushed in batches.

    A crash loses at most the unflushed outcomes: their intents stay `in_flight`, and the next run
    resolves them by looking the reference up in B1 before anything is re-sent.
    """

    def __init__(self, conn: duckdb.DuckDBPyConnection, run_id: str, target: Target, crosswalk_type: str,
                 crosswalk: dict[str, dict[str, Any]]) -> None:
        self.conn = conn
        self.run_id = run_id
        self.target = target
        self.crosswalk_type = crosswalk_type
        self.crosswalk = crosswalk
        self._buffer: list[Outcome] = []
        self._last_flush = time.monotonic()

    def intents(self, ops: Sequence[Operation]) -> None:
        store.record_intents(self.conn, self.run_id, self.target.entity_set, ops)

    def results(self, outcomes: Sequence[Outcome]) -> None:
        self._buffer.extend(outcomes)
        for outcome in outcomes:  # later pipelines of the same run see new keys at once
            if outcome.status is Status.SYNCED and outcome.op.context.get("crosswalk_key"):
                self.crosswalk.setdefault(self.crosswalk_type, {})[str(outcome.op.context["crosswalk_key"])] = {
                    "b1_key": str(outcome.key), "line_map": outcome.lines or outcome.op.context.get("line_map")}
        if len(self._buffer) >= FLUSH_EVERY or time.monotonic() - self._last_flush > FLUSH_SECONDS:
            self.flush()

    def flush(self) -> None:
        if self._buffer:
            batch, self._buffer = self._buffer, []
            store.record_results(self.conn, self.run_id, self.target.entity_set, self.crosswalk_type, batch)
        self._last_flush = time.monotonic()


class RunLedger:
    """The `runs` row of one run."""

    def __init__(self, conn: duckdb.DuckDBPyConnection, run_id: str, *, kind: str = "run") -> None:
        self.conn, self.run_id, self.kind = conn, run_id, kind

    def start(self, pipelines: list[str]) -> None:
        store.start_run(self.conn, self.run_id, self.kind, pipelines)

    def finish(self, report: Any) -> None:
        counts: Counter[str] = Counter()
        for p in report.pipelines:
            s = p.stats
            counts.update(created=s.created, updated=s.updated, adopted=s.adopted, failed=s.failed,
                          waiting=s.waiting, writes=s.writes, lookups=s.lookups)
            counts.update({f"planned_{k}": v for k, v in p.planned.items()})
        store.finish_run(self.conn, self.run_id, dict(counts), report.aborted)
