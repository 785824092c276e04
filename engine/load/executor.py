"""Executing operations against B1 exactly once: intent before write, lookup before any re-send.

The state machine of one create:

    lookup(ref) ──found──▶ adopt (synced, no write)
        │ not found
    intent (durable) ─▶ POST ─201──────────────────▶ synced
                          ├─ duplicate ─▶ lookup ─▶ adopt
                          ├─ business ──────────▶ failed (B1's code and message, for replay)
                          └─ transient ─▶ back-off ─▶ lookup ─found─▶ adopt
                                                        └ not found ─▶ POST again (bounded)

An update is a PATCH of the changed fields only; after a transient failure the entity is re-read
and the fields compared before anything is re-sent (a PATCH that appends lines is not harmless).
After a 400 business answer to a document PATCH the document's state is re-read: what B1 keeps on a
closed, cancelled or posted document (or a closed row) is left out, the rest is re-sent once, and the
outcome is NOT_APPLIED (`engine.load.closed`); when nothing is closed there, the record fails.
Lookups (reads) are retried with back-off; if the state of a write stays unknown the intent is left
in flight and the next run resolves it by looking the reference up first.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from engine.errors import ConnectorError
from engine.load.adopt import comparable, held_shape, select_fields
from engine.load.classify import ErrorClass, classify, error_fields
from engine.load.closed import Split, same, select_for, split_patch
from engine.load.model import Action, Attempt, LoadStats, Operation, Outcome, Status, Target
from engine.load.port import B1Port
from engine.mapping.core import strip_reserved
from engine.plan import diff
from engine.retry import Backoff, retry_after_of


class RunAborted(ConnectorError):
    """The session could not be restored (a second 401/301, or a failed re-login): the run stops."""


class Unresolved(Exception):
    """B1 could not be asked whether a write landed; the intent stays in flight for the next run."""


@dataclass(frozen=True)
class RetryPolicy:
    """How often the loader tries; the waits are the one back-off policy's (`engine.retry.Backoff`)."""

    attempts: int = 6  # sends of one write, at most
    lookup_attempts: int = 8  # reads, at most
    base_delay: float = 0.1
    max_delay: float = 3.0
    jitter: float = 0.5  # each wait in the upper half of its ceiling

    @cached_property
    def backoff(self) -> Backoff:
        return Backoff(attempts=self.attempts, base=self.base_delay, cap=self.max_delay, jitter=self.jitter)

    def delay(self, attempt: int, exc: BaseException | None = None) -> float:
        """The wait after try `attempt` failed with `exc` (its `Retry-After` hint honoured)."""
        return self.backoff.delay(attempt, retry_after_of(exc))


class Journal:
    """Where the loader writes intents (durably, before the writes) and outcomes (may be buffered).

    `intents` returns once the intents are durable; `results` must not block the event loop (buffer);
    `flush` returns once every outcome handed over is durable.
    """

    async def intents(self, ops: Sequence[Operation]) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def results(self, outcomes: Sequence[Outcome]) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    async def flush(self) -> None:
        return None


class MemoryJournal(Journal):
    """A journal kept in lists (unit tests, dry runs)."""

    def __init__(self) -> None:
        self.intent_log: list[Operation] = []
        self.outcomes: list[Outcome] = []

    async def intents(self, ops: Sequence[Operation]) -> None:
        self.intent_log.extend(ops)

    def results(self, outcomes: Sequence[Outcome]) -> None:
        self.outcomes.extend(outcomes)


Prepare = Callable[[Operation], Awaitable[Operation | Outcome]]


class Loader:
    """Sends operations for one target with bounded concurrency and records every outcome."""

    def __init__(
        self,
        port: B1Port,
        journal: Journal,
        *,
        concurrency: int = 8,
        retry: RetryPolicy | None = None,
        chunk: int = 40,
        on_outcome: Callable[[Outcome], None] | None = None,
    ) -> None:
        if not 1 <= concurrency <= 40:
            raise ConnectorError(f"max_concurrency must be between 1 and 40, not {concurrency}")
        self.port = port
        self.journal = journal
        self.concurrency = concurrency
        self.retry = retry or RetryPolicy()
        self.chunk = chunk
        self.on_outcome = on_outcome
        self.stats = LoadStats()

    # -- public -------------------------------------------------------------------------------

    async def load(self, target: Target, ops: Iterable[Operation], prepare: Prepare | None = None) -> list[Outcome]:
        """Bring every operation about; return one outcome each (order not kept).

        `prepare` runs just before an operation is sent (after its lookup): it may complete the
        payload (e.g. invoice base-document links) or answer an outcome instead (e.g. waiting).
        """
        # Up to three chunks staged ahead: the next chunk's lookup and intents overlap the sends.
        queue: asyncio.Queue[Operation | None] = asyncio.Queue(maxsize=self.chunk * 3)
        outcomes: list[Outcome] = []
        self._target = target

        async def producer() -> None:
            batch: list[Operation] = []
            # A small first chunk (three requests per worker) gets the first writes out at once while the
            # next, twice as large, is looked up and journalled; sizes double up to `chunk`.
            size = min(self.chunk, 3 * self.concurrency)
            for op in ops:
                batch.append(op)
                if len(batch) >= size:
                    await self._stage(batch, queue, outcomes)
                    batch, size = [], min(self.chunk, size * 2)
            if batch:
                await self._stage(batch, queue, outcomes)
            # Only on success: when anything failed the workers are cancelled, and a put into a full queue
            # nobody reads any more would never return (a run that could not end).
            for _ in range(self.concurrency):
                await queue.put(None)

        async def worker() -> None:
            while (op := await queue.get()) is not None:
                try:
                    if prepare is not None:
                        prepared = await prepare(op)
                        if isinstance(prepared, Outcome):
                            self._finish(prepared, outcomes)
                            continue
                        op = prepared
                    outcome = await self._execute(op)
                except RunAborted:
                    raise
                except Exception as exc:  # noqa: BLE001 - one record never stops the rest
                    outcome = Outcome(op, Status.FAILED, error_code="internal",
                                      error_message=f"{type(exc).__name__}: {exc}")
                self._finish(outcome, outcomes)

        tasks = [asyncio.create_task(producer())] + [asyncio.create_task(worker()) for _ in range(self.concurrency)]
        try:
            await asyncio.gather(*tasks)
        except BaseException:
            for task in tasks:
                task.cancel()
            with contextlib.suppress(BaseException):
                await asyncio.gather(*tasks, return_exceptions=True)
            raise
        finally:
            await self.journal.flush()
        return outcomes

    # -- staging a chunk: lookups of unknown references, then intents --------------------------

    async def _stage(self, batch: list[Operation], queue: asyncio.Queue, outcomes: list[Outcome]) -> None:
        creates = [op for op in batch if op.action is Action.CREATE and (op.lookup or op.resume)]
        found: dict[str, list[dict[str, Any]]] = {}
        if creates:
            try:
                found = await self._lookup([op.ref for op in creates])
            except Unresolved:
                found = {}  # each create then does its own lookup before sending
                for op in creates:
                    op.resume = True
        to_send: list[Operation] = []
        for op in batch:
            if op.action is Action.CREATE and op.ref in found:
                try:
                    adopted = await self._adopt(op, found[op.ref], writes=0, attempts=0)
                except Unresolved:
                    op.resume = True  # B1 could not be read now: the worker looks it up again first
                    adopted = op
                if isinstance(adopted, Outcome):
                    self._finish(adopted, outcomes)
                    continue
                op = adopted  # held by B1 but different: an update of the difference
            to_send.append(op)
        if to_send:
            await self.journal.intents(to_send)  # durable before any of them is sent
        for op in to_send:
            await queue.put(op)

    def _finish(self, outcome: Outcome, outcomes: list[Outcome]) -> None:
        outcomes.append(outcome)
        self.stats.add(outcome)
        self.journal.results([outcome])
        if self.on_outcome is not None:
            self.on_outcome(outcome)

    # -- one operation --------------------------------------------------------------------------

    async def _execute(self, op: Operation) -> Outcome:
        try:
            if op.action is Action.CREATE:
                return await self._create(op)
            return await self._update(op)
        except Unresolved as exc:
            return Outcome(op, Status.FAILED, error_code="unresolved", error_message=str(exc), attempts=1)

    async def _create(self, op: Operation) -> Outcome:
        target = self._target
        writes = 0
        if op.resume:  # its chunk lookup failed: ask again before the first send
            existing = (await self._lookup([op.ref])).get(op.ref)
            if existing:
                return await self._adopt_now(op, existing, writes=0, attempts=0)
        tries: list[Attempt] = []
        body = strip_reserved(op.payload)
        for attempt in range(1, self.retry.attempts + 1):
            started = time.monotonic()
            try:
                writes += 1
                entity = await self.port.create(target.entity_set, body)
            except Exception as exc:  # noqa: BLE001 - classified below
                answer = _answer(exc, started)
                kind = self._kind(exc, creating=True)
                if kind is ErrorClass.DUPLICATE:
                    existing = (await self._lookup([op.ref])).get(op.ref)
                    if existing:
                        return _settled(await self._adopt_now(op, existing, writes=writes, attempts=attempt), answer,
                                        tries)
                    if not target.key_is_ref and op.payload.get(target.key_field) is not None:
                        return _settled(await self._link_by_key(op, writes, attempt), answer, tries)
                    return self._failed(op, exc, writes, attempt, answer, tries,
                                        note=" (B1 says it exists, but no record carries the reference)")
                if kind is not ErrorClass.TRANSIENT:
                    return self._failed(op, exc, writes, attempt, answer, tries)
                await asyncio.sleep(self.retry.delay(attempt, exc))
                existing = (await self._lookup([op.ref])).get(op.ref)
                if existing:  # the write landed, its answer was lost: B1 holds exactly this payload
                    return _settled(await self._adopt_written(op, existing, writes=writes, attempts=attempt),
                                    answer, tries)
                tries.append(answer)
                last = exc
                continue
            key = entity.get(target.key_field)
            return Outcome(op, Status.SYNCED, key=key, lines=self._line_map(op, entity), writes=writes, attempts=attempt,
                           last=Attempt(201, duration_ms=_ms(started)), tries=tries)
        final = tries.pop()
        return self._failed(op, last, writes, self.retry.attempts, final, tries, note=" (gave up after retries; not in B1)")

    async def _link_by_key(self, op: Operation, writes: int, attempts: int) -> Outcome:
        """The key we send (e.g. a CardCode) is already taken in B1 by a record without our reference:
        link that record by PATCHing the payload (reference included) onto it — never a second create.
        A transient failure is retried like any write: the reference is looked up first (the PATCH may
        have landed; then the record is adopted and compared) before the PATCH is sent again."""
        target = self._target
        key = op.payload[target.key_field]
        fields = {k: v for k, v in strip_reserved(op.payload).items() if k != target.key_field}
        note = f" (linking the existing {target.key_field} {key!r})"
        tries: list[Attempt] = []
        last: BaseException | None = None
        for attempt in range(1, self.retry.attempts + 1):
            started = time.monotonic()
            try:
                writes += 1
                await self.port.patch(target.entity_set, key, fields)
            except Exception as exc:  # noqa: BLE001 - classified below
                answer = _answer(exc, started)
                if self._kind(exc) is not ErrorClass.TRANSIENT:
                    return self._failed(op, exc, writes, attempts, answer, tries, note=note)
                await asyncio.sleep(self.retry.delay(attempt, exc))
                existing = (await self._lookup([op.ref])).get(op.ref)
                if existing:  # the link landed, its answer was lost
                    return _settled(await self._adopt_now(op, existing, writes=writes, attempts=attempts), answer, tries)
                tries.append(answer)
                last = exc
                continue
            return Outcome(op, Status.SYNCED, key=key, adopted=True, writes=writes, attempts=attempts,
                           last=Attempt(204, duration_ms=_ms(started)), tries=tries)
        final = tries.pop()
        assert last is not None
        return self._failed(op, last, writes, attempts, final, tries, note=note + " (gave up after retries)")

    async def _update(self, op: Operation) -> Outcome:
        target = self._target
        writes = 0
        if op.resume and await self._applied(op):
            return Outcome(op, Status.SYNCED, key=op.key, lines=await self._lines_after_patch(op), adopted=True)
        tries: list[Attempt] = []
        body = strip_reserved(op.payload)
        # What B1 keeps out (closed ground): split before sending (a posted invoice's line coding, by the
        # linker), or once B1 refused the PATCH — then the rest is re-sent
        split: Split | None = op.context.get("split")
        refusal: Attempt | None = None
        for attempt in range(1, self.retry.attempts + 1):
            started = time.monotonic()
            try:
                writes += 1
                await self.port.patch(target.entity_set, op.key, body)
            except Exception as exc:  # noqa: BLE001 - classified below
                answer = _answer(exc, started)
                kind = self._kind(exc)
                if kind is ErrorClass.CONFLICT and attempt == 1:
                    tries.append(answer)
                    continue  # re-apply the change once (we send no If-Match, so this is rare)
                if kind is ErrorClass.BUSINESS and answer.http_status == 400 and split is None and target.lines_field:
                    split = await self._split_refused(op)
                    if split is not None:  # the document (or some rows) is closed, cancelled or posted
                        refusal = answer
                        if not split.send:
                            return self._not_applied(op, split, refusal, writes, attempt, answer, tries)
                        tries.append(answer)
                        op.payload = split.send  # journalled with the outcome: the body that was sent last
                        body = strip_reserved(op.payload)
                        continue
                if kind is not ErrorClass.TRANSIENT:
                    return self._failed(op, exc, writes, attempt, answer, tries)
                await asyncio.sleep(self.retry.delay(attempt, exc))
                if await self._applied(op):  # the PATCH landed, its answer was lost
                    return await self._patched(op, split, refusal, writes, attempt, answer, tries)
                tries.append(answer)
                last = exc
                continue
            return await self._patched(op, split, refusal, writes, attempt, Attempt(204, duration_ms=_ms(started)), tries)
        final = tries.pop()
        return self._failed(op, last, writes, self.retry.attempts, final, tries, note=" (gave up after retries)")

    async def _patched(self, op: Operation, split: Split | None, refusal: Attempt | None, writes: int, attempts: int,
                       answer: Attempt, tries: list[Attempt]) -> Outcome:
        """A PATCH that landed: synced, or — after a refusal on closed ground — the rest applied."""
        lines = await self._lines_after_patch(op)
        if split is None:
            return Outcome(op, Status.SYNCED, key=op.key, lines=lines, writes=writes, attempts=attempts, last=answer,
                           tries=tries)
        outcome = self._not_applied(op, split, refusal, writes, attempts, answer, tries)
        outcome.lines = lines
        return outcome

    def _not_applied(self, op: Operation, split: Split, refusal: Attempt | None, writes: int, attempts: int,
                     answer: Attempt, tries: list[Attempt]) -> Outcome:
        return Outcome(op, Status.NOT_APPLIED, key=op.key, error_code=refusal.b1_code if refusal else split.code,
                       error_message=split.message(refusal.b1_message if refusal else None), writes=writes,
                       attempts=attempts, last=answer, tries=tries, applied=split.applied,
                       lines=op.context.get("line_map"))

    async def _split_refused(self, op: Operation) -> Split | None:
        """After a 400 to a document PATCH: re-read the document's state and split the PATCH by what B1 can
        still take (`engine.load.closed`). None when nothing is closed where the PATCH goes (or the document
        cannot be read): the refusal stands, the record fails with B1's answer."""
        target = self._target
        lines_field = target.lines_field or ""
        try:
            doc = await self._get(op.key, select_for(op.payload, target.key_field, lines_field))
        except Unresolved:
            return None
        return split_patch(target.entity_set, op.payload, doc, lines_field=lines_field)

    # -- helpers --------------------------------------------------------------------------------

    def _kind(self, exc: BaseException, *, creating: bool = False) -> ErrorClass:
        kind = classify(exc, creating=creating)
        if kind in (ErrorClass.SESSION, ErrorClass.CREDENTIALS):
            _, code, message = error_fields(exc)
            raise RunAborted(f"SAP B1 session could not be restored: {code} {message}") from None
        return kind

    def _failed(self, op: Operation, exc: BaseException, writes: int, attempts: int, answer: Attempt | None = None,
                tries: list[Attempt] | None = None, note: str = "") -> Outcome:
        status, code, message = error_fields(exc)
        if code is None:
            code = str(status) if status is not None else type(exc).__name__
        return Outcome(op, Status.FAILED, error_code=code, error_message=f"{message}{note}", writes=writes,
                       attempts=attempts, last=answer, tries=tries or [])

    async def _lookup(self, refs: list[str]) -> dict[str, list[dict[str, Any]]]:
        """Look references up in B1 (reads: retried with back-off)."""
        target = self._target
        select = [target.key_field] if target.key_is_ref else [target.key_field, target.ref_field]

        async def find() -> dict[str, list[dict[str, Any]]]:
            self.stats.lookups += 1
            found = await self.port.find_refs(target.entity_set, target.ref_field, refs, select)
            return {ref: rows for ref, rows in found.items() if rows}

        return await self._read(find, f"look {target.ref_field} up")

    async def _get(self, key: Any, select: list[str] | None = None) -> dict[str, Any]:
        entity_set = self._target.entity_set
        return await self._read(lambda: self.port.get(entity_set, key, select), f"read {entity_set}({key!r})")

    async def _read(self, call: Callable[[], Awaitable[Any]], what: str) -> Any:
        """A read against B1, retried with back-off on transient faults; `Unresolved` when it cannot be done."""
        last: BaseException | None = None
        for attempt in range(1, self.retry.lookup_attempts + 1):
            try:
                return await call()
            except Exception as exc:  # noqa: BLE001
                if self._kind(exc) is not ErrorClass.TRANSIENT:
                    raise Unresolved(f"could not {what}: {error_fields(exc)[2]}") from exc
                last = exc
                await asyncio.sleep(self.retry.delay(attempt, exc))
        raise Unresolved(f"could not {what} in B1: {last}; the next run resolves it")

    def _held_twice(self, op: Operation, rows: list[dict[str, Any]], *, writes: int, attempts: int) -> Outcome | None:
        """The failure when more than one B1 record carries the reference (nothing is adopted then)."""
        if len(rows) <= 1:
            return None
        target = self._target
        keys = ", ".join(str(r.get(target.key_field)) for r in rows)
        return Outcome(op, Status.FAILED, error_code="duplicate_in_b1", writes=writes, attempts=attempts,
                       error_message=f"{target.ref_field} {op.ref!r} is on more than one {target.entity_set}: {keys}")

    async def _adopt_written(self, op: Operation, rows: list[dict[str, Any]], *, writes: int,
                             attempts: int) -> Outcome:
        """Our own write whose answer was lost: B1 holds exactly this payload, so it is adopted without a
        compare (only the line numbers B1 gave are read back)."""
        target = self._target
        if (failed := self._held_twice(op, rows, writes=writes, attempts=attempts)) is not None:
            return failed
        key = rows[0].get(target.key_field)
        lines = None
        if target.lines_field and op.line_refs:
            lines = self._line_map(op, await self._get(key, [target.key_field, target.lines_field]))
        return Outcome(op, Status.SYNCED, key=key, lines=lines, adopted=True, writes=writes, attempts=attempts)

    async def _adopt(self, op: Operation, rows: list[dict[str, Any]], *, writes: int,
                     attempts: int) -> Outcome | Operation:
        """A record B1 already holds under the reference: synced as it is when it matches the planned
        payload, else an update of the difference (returned as an `Operation` for the caller to send)."""
        target = self._target
        if (failed := self._held_twice(op, rows, writes=writes, attempts=attempts)) is not None:
            return failed
        key = rows[0].get(target.key_field)
        planned = op.full_payload or op.payload
        compared = comparable(planned, target)
        entity = await self._get(key, select_fields(compared, target.key_field))
        lines = self._line_map(op, entity) if target.lines_field else None
        held = held_shape(compared, entity, lines or {})
        patch, _ = diff(held, compared, line_map=lines or {})
        if not strip_reserved(patch):
            return Outcome(op, Status.SYNCED, key=key, lines=lines, adopted=True, writes=writes, attempts=attempts)
        numbers = sorted(int(m["LineNum"]) for m in entity.get(target.lines_field or "", None) or [] if "LineNum" in m)
        context = {**op.context, "line_map": lines or {}, "known_line_nums": numbers,
                   "b1_holds": {**planned, **held}}  # what is not compared counts as held (for a change not applied)
        return Operation(op.pipeline, op.ref, Action.UPDATE, patch, op.fingerprint, op.mapping_version, key=key,
                         full_payload=planned, line_refs=op.line_refs, context=context)

    async def _adopt_now(self, op: Operation, rows: list[dict[str, Any]], *, writes: int, attempts: int) -> Outcome:
        """`_adopt`, sending the difference at once when there is one."""
        adopted = await self._adopt(op, rows, writes=writes, attempts=attempts)
        if isinstance(adopted, Outcome):
            return adopted
        outcome = await self._update(adopted)
        outcome.writes += writes
        return outcome

    def _line_map(self, op: Operation, entity: dict[str, Any]) -> dict[str, int] | None:
        """Source line id -> B1 LineNum: B1 numbers created lines in the order they were sent."""
        field_name = self._target.lines_field
        if not field_name or not op.line_refs:
            return None
        lines = sorted(entity.get(field_name) or [], key=lambda line: line.get("LineNum", 0))
        return {ref: int(line["LineNum"]) for ref, line in zip(op.line_refs, lines, strict=False)}

    async def _applied(self, op: Operation) -> bool:
        """Re-read the entity and tell whether every field of the PATCH is already there."""
        target = self._target
        payload = strip_reserved(op.payload)
        fields = [f for f in payload if f != target.lines_field]
        select = [target.key_field, *fields] + ([target.lines_field] if target.lines_field in payload else [])
        entity = await self._get(op.key, select)
        if any(not same(entity.get(f), payload[f]) for f in fields):
            return False
        if target.lines_field and target.lines_field in payload:
            current = {line.get("LineNum"): line for line in entity.get(target.lines_field) or []}
            known = set(op.context.get("known_line_nums", []))
            appended = [line for num, line in current.items() if num not in known]
            for sent in payload[target.lines_field]:
                if "LineNum" in sent:
                    have = current.get(sent["LineNum"], {})
                    if any(not same(have.get(k), v) for k, v in sent.items()):
                        return False
                elif not any(all(same(line.get(k), v) for k, v in sent.items()) for line in appended):
                    return False
        return True

    async def _lines_after_patch(self, op: Operation) -> dict[str, int] | None:
        """After a PATCH that appended lines, re-read the entity: B1 numbers new lines itself."""
        target = self._target
        if not target.lines_field or not op.line_refs or target.lines_field not in op.payload:
            return op.context.get("line_map")
        if all("LineNum" in line for line in op.payload[target.lines_field]):
            return op.context.get("line_map")
        entity = await self._get(op.key, [target.key_field, target.lines_field])
        return self._line_map(op, entity)


def _answer(exc: BaseException, started: float) -> Attempt:
    """What B1 answered to a failed write (no status and no body when the connection dropped)."""
    status, code, message = error_fields(exc)
    body = getattr(exc, "body", None) or None
    return Attempt(status, code, message, body, _ms(started))


def _settled(outcome: Outcome, answer: Attempt, tries: list[Attempt]) -> Outcome:
    """An outcome reached after `answer` (e.g. found by lookup after a lost answer)."""
    outcome.last, outcome.tries = answer, tries
    return outcome


def _ms(started: float) -> float:
    return round((time.monotonic() - started) * 1000, 2)
