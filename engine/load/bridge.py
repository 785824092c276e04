"""Between the plan, the loader and the ledger: plan items become loader operations, loader outcomes
become ledger results.

- `target_of(spec, mapping)` — where a pipeline writes in B1 and how its records are recognised there.
- `operations(plan, target)` — the plan's creates and updates as `Operation`s (payloads keep the
  reserved `_key`/`_base` keys: the invoice linker reads `_base`, the loader strips both before sending).
- `LedgerJournal` — the loader's journal over `engine.state.ledger`. The state file is never held open for a
  run: one writer thread opens it, writes a batch, closes it (DuckDB admits one writer per file, so an
  `audit` from another terminal gets in between batches). Intents are committed before their writes
  are sent; outcomes are buffered and written in batches (with the next intents, or every
  `flush_seconds`). A crash loses at most unwritten outcomes: their intents stay `in_flight` and the
  next run looks those references up in B1 before anything is re-sent.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import time
from collections.abc import Iterable, Mapping, MutableMapping, Sequence
from pathlib import Path
from typing import Any

import orjson

from engine.load.closed import has_content
from engine.load.executor import Journal
from engine.load.links import PoKeys
from engine.load.model import Action, Operation, Outcome, Status, Target
from engine.mapping.core import CrosswalkEntry, strip_reserved
from engine.plan import apply_patch, fingerprint
from engine.sapb1.entities import entity_profile
from engine.state import db, ledger

LINES = "DocumentLines"


def target_of(spec: Any, mapping: Any) -> Target:
    """The loader's view of a pipeline's SAP B1 target: entity profile, and the reference field (the
    pipeline's `external_ref`, else the mapping's)."""
    profile = entity_profile(spec.target.entity)
    ref_field = spec.target.external_ref or mapping.ref_field
    return Target(profile.entity_set, profile.key_field, ref_field, profile.lines_field)


def operations(items: Iterable[Any], target: Target, *, lookup_unknown: bool = True) -> list[Operation]:
    """Loader operations for the plan's `create` and `update` items (`engine.plan.PlanItem`).

    A create is looked up in B1 before it is sent when an earlier run attempted it, and — unless
    `lookup_unknown` is False (`census` vouched that B1 holds no reference the ledger does not know) —
    also when it was never attempted."""
    ops: list[Operation] = []
    for item in items:
        if item.action not in ("create", "update"):
            continue
        payload = item.payload or {}
        line_refs = [str(m["_key"]) for m in payload.get(LINES) or [] if "_key" in m] or None
        context: dict[str, Any] = {"record_key": item.record_key, "crosswalk_key": item.crosswalk_key,
                                   "plan_hash": item.plan_hash}
        if item.action == "create":
            ops.append(Operation(item.pipeline, item.external_ref, Action.CREATE, payload, item.fingerprint or "",
                                 item.mapping_version or "", full_payload=payload, line_refs=line_refs,
                                 resume=item.resume, lookup=item.attempted or lookup_unknown, context=context))
            continue
        line_map = item.line_map or {}
        context.update(line_map=line_map, known_line_nums=sorted(line_map.values()))
        key = int(item.target_key) if target.key_field == "DocEntry" else item.target_key
        ops.append(Operation(item.pipeline, item.external_ref, Action.UPDATE, item.patch or {}, item.fingerprint or "",
                             item.mapping_version or "", key=key, full_payload=payload, line_refs=line_refs,
                             resume=item.resume, context=context))
    return ops


async def census(port: Any, target: Target, state: Path | str) -> bool:
    """Whether B1 may hold a record carrying a reference this ledger has never sent (then every create
    is looked up first). One `$count` of the records carrying the reference field, against the ledger's
    records of that entity with a B1 key (and those in flight, whose fate is unknown): when B1 holds no
    more than those, a never-attempted reference cannot be in B1 — unless someone else wrote our
    reference field into B1, which the connector assumes nobody does (it owns that field)."""
    carrying = await port.count(target.entity_set, f"{target.ref_field} ne null")
    with db.connect(state) as conn:
        known, in_flight = ledger.key_census(conn, target.entity_set)
    return not known <= carrying <= known + in_flight


def po_keys(crosswalk: Mapping[str, Mapping[str, Any]]):
    """The linker's view of the `purchase_orders` crosswalk: PO reference -> DocEntry and line numbers."""

    def lookup(po_ref: str) -> PoKeys | None:
        entry = (crosswalk.get("purchase_orders") or {}).get(str(po_ref))
        if entry is None or not str(entry.b1_key).isdigit():
            return None
        return PoKeys(int(entry.b1_key), {str(k): int(v) for k, v in (entry.line_map or {}).items()})

    return lookup


class LedgerJournal(Journal):
    """Intents durable before the writes; outcomes in batches; the state file opened per batch.

    `crosswalk` (type -> jaggaer id -> `CrosswalkEntry`) is updated in memory as records land, so the
    later pipelines of the same run see the new keys at once.
    """

    def __init__(self, state: Path | str, run_id: str, target: Target, crosswalk_type: str | None = None,
                 crosswalk: MutableMapping[str, dict[str, Any]] | None = None, *, flush_every: int = 1000,
                 flush_seconds: float = 1.0) -> None:
        self.state = Path(state)
        self.run_id = run_id
        self.target = target
        self.crosswalk_type = crosswalk_type
        self.crosswalk = crosswalk if crosswalk is not None else {}
        self.flush_every = flush_every
        self.flush_seconds = flush_seconds
        self._buffer: list[Outcome] = []
        self._intent_bodies: set[int] = set()  # id() of payloads journalled with their intent
        self._writer = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="ledger-writer")
        self._pending: asyncio.Future | None = None
        self._last_write = time.monotonic()
        self.batches = 0  # times the state file was opened for writing
        with db.connect(self.state, wait_seconds=60) as conn:
            ledger.upgrade_tables(conn)

    async def intents(self, ops: Sequence[Operation]) -> None:
        self._intent_bodies.update(id(op.payload) for op in ops)
        intents = [ledger.Intent(op.pipeline, op.ref, op.action.value, op.payload, op.fingerprint, op.mapping_version,
                                 record_key=op.context.get("record_key"), target_entity=self.target.entity_set,
                                 target_key=None if op.key is None else str(op.key)) for op in ops]
        await self._write(intents)

    def results(self, outcomes: Sequence[Outcome]) -> None:
        self._buffer.extend(outcomes)
        if self.crosswalk_type:
            table = self.crosswalk.setdefault(self.crosswalk_type, {})
            for o in outcomes:
                xkey = o.op.context.get("crosswalk_key")
                if o.status in (Status.SYNCED, Status.NOT_APPLIED) and xkey and o.key is not None:
                    table[str(xkey)] = CrosswalkEntry(str(o.key), self._line_map(o))
        due = len(self._buffer) >= self.flush_every or time.monotonic() - self._last_write > self.flush_seconds
        if due and (self._pending is None or self._pending.done()):
            self._pending = asyncio.ensure_future(self._write([]))

    async def flush(self) -> None:
        if self._pending is not None:
            await asyncio.shield(self._pending)
        if self._buffer:
            await self._write([])

    def close(self) -> None:
        self._writer.shutdown(wait=True)

    # -- writing ----------------------------------------------------------------------------------

    async def _write(self, intents: list[ledger.Intent]) -> None:
        """Write the intents and every buffered outcome in the writer thread (one open of the file)."""
        outcomes, self._buffer = self._buffer, []
        self._last_write = time.monotonic()
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self._writer, self._write_batch, intents, outcomes)
        except BaseException:
            self._buffer[:0] = outcomes  # not written: try again with the next batch
            raise

    def _write_batch(self, intents: list[ledger.Intent], outcomes: list[Outcome]) -> None:
        for intent in intents:
            intent.payload = strip_reserved(intent.payload)
        with db.connect(self.state, wait_seconds=60) as conn:  # outcomes first: they are older
            db.tune_writes(conn)
            results = [self._result(o, held) for o, held in zip(outcomes, self._held(conn, outcomes), strict=True)]
            ledger.record_batch(conn, self.run_id, results, intents)
        self.batches += 1

    @staticmethod
    def _held(conn: Any, outcomes: list[Outcome]) -> list[dict[str, Any] | None]:
        """Per outcome, for a change not applied: what B1 now holds — the payload last synced (the ledger's)
        with the part B1 took applied over it. None for the others (and when the ledger has no payload)."""
        wanted: dict[str, set[str]] = {}
        for o in outcomes:
            if o.status is Status.NOT_APPLIED:
                wanted.setdefault(o.op.pipeline, set()).add(o.op.ref)
        if not wanted:
            return [None] * len(outcomes)
        rows = {(p, ref): row for p, refs in wanted.items() for ref, row in ledger.ledger_rows(conn, p, refs).items()}
        out: list[dict[str, Any] | None] = []
        for o in outcomes:
            row = rows.get((o.op.pipeline, o.op.ref)) if o.status is Status.NOT_APPLIED else None
            # an adopted record: what B1 held when it was found (the ledger had no payload of it, or an old one)
            base = o.op.context.get("b1_holds") or (row.payload if row is not None else None)
            out.append(apply_patch(base, o.applied or {}) if o.status is Status.NOT_APPLIED and base is not None else None)
        return out

    def _line_map(self, o: Outcome) -> dict[str, int] | None:
        return o.lines if o.lines is not None else o.op.context.get("line_map")

    def _result(self, o: Outcome, held: dict[str, Any] | None = None) -> ledger.Result:
        op = o.op
        last = o.last
        status = o.status.value
        if o.error_code == "unresolved":
            status = "in_flight"  # B1 could not be asked whether it landed: the next run resolves it
        sent = None if id(op.payload) in self._intent_bodies or not o.writes else strip_reserved(op.payload)
        kept = o.ok or o.status is Status.NOT_APPLIED  # B1 holds the record: its key and line map stand
        result = ledger.Result(
            op.pipeline, op.ref, op.action.value, status,
            target_key=None if o.key is None else str(o.key),
            fingerprint=op.fingerprint if o.ok else None,
            payload=(op.full_payload or op.payload) if o.ok else None,
            sent=sent, mapping_version=op.mapping_version, line_map=self._line_map(o) if kept else None,
            crosswalk=(self.crosswalk_type, str(op.context["crosswalk_key"]))
            if kept and self.crosswalk_type and op.context.get("crosswalk_key") else None,
            http_status=last.http_status if last else None,
            b1_code=o.error_code if not o.ok else None, b1_message=o.error_message if not o.ok else None,
            b1_body=_body(last.b1_body) if last else None, duration_ms=last.duration_ms if last else None,
            writes=o.writes, attempts=o.attempts, adopted=o.adopted, record_key=op.context.get("record_key"),
            target_entity=self.target.entity_set, plan_hash=op.context.get("plan_hash") if kept else None,
            tries=[dataclasses.replace(t, b1_body=_body(t.b1_body)) for t in o.tries],
        )
        if o.status is Status.NOT_APPLIED:
            # The ledger keeps what B1 holds (the base of the next diff) and the rendering B1 refused: the
            # next run passes over the record until the source or the mapping renders something else.
            result.attempt_fingerprint = op.fingerprint
            result.applied = has_content(o.applied or {})
            if held is not None:
                result.payload, result.fingerprint = held, fingerprint(held)
        return result


def _body(raw: Any) -> Any:
    """B1's answer body for the audit: parsed when it is JSON (the error envelope), else the text."""
    if not raw or not isinstance(raw, str | bytes):
        return raw or None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return raw if isinstance(raw, str) else raw.decode("utf-8", "replace")
