"""Writing JAGGAER: the company-profile UPDATE (J1P §6.3) under the `returnCode` rules (§4.6, §9), and the
loader that sends a plan's updates with the same ledger, audit and exactly-once rules as the SAP B1 side.

    async with CompanyProfileWriter(settings) as writer:
        answer = await writer.update({"company": {"operationCode": "UPDATE", "sendEMail": "0",
                                                  "companyInfo": {"bravoId": "20417", "bizEmail": "ap@x.example"}}})

Outcome of one UPDATE (a single-record request, §4.6):

- `returnCode` 0: synced. `1` and `-996` (success with warnings): synced, the warning kept in the audit.
- `-998`, HTTP 429 (its `Retry-After` honoured), 5xx, a dropped connection or a timeout: retried with back-off.
  An UPDATE is idempotent (same values, no change, §6.3), so an answer that was lost is simply re-sent.
  When the retry budget is spent the record stays in flight (not failed): the next run sends it again.
- `2`, any other code, or an HTTP 4xx other than 401/429: only that record fails, with the code and the
  message verbatim, for `replay`; never retried by a plain run.
- 401: one fresh token and one replay (§3.4); refused again, or the tenant unreachable for the whole budget:
  the write-back stops (`AuthFailed` / `HostUnreachable`), leaving unsent records as they were.

`CompanyProfileLoader` journals like the SAP B1 loader: the intents of a chunk (ledger `in_flight` + an `intent`
event) are committed before any of its UPDATEs is sent; outcomes (one event per attempt) after. A crash
leaves intents in flight, which the next run plans and sends again (JAGGAER holding the values by then, the
both-ways filter finds nothing left to send, and the record is synced without a write).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from engine.jaggaer.client import AuthFailed, J1PClient, J1PError, _Transient
from engine.load.model import Attempt, LoadStats
from engine.state import db, ledger

COMPANY_PROFILES = "/j1p/api/public/ja/v1/companyprofiles"
TARGET_ENTITY = "companyprofiles"
UNRESOLVED = "unresolved"  # outcome code: gave up on transient faults, the record stays in flight


@dataclass
class UpdateAnswer:
    """What became of one UPDATE."""

    status: str  # synced | failed | in_flight (transient faults outlasted the retries)
    code: str | None = None  # returnCode (a warning on success, the failure's code), or the HTTP status
    message: str | None = None
    http_status: int | None = None
    bravo_id: Any = None
    writes: int = 0
    duration_ms: float | None = None
    tries: list[Attempt] = field(default_factory=list)  # earlier answers that did not settle it


class CompanyProfileWriter(J1PClient):
    """A `J1PClient` that also POSTs company-profile UPDATEs (same token, retry budget and reachability)."""

    async def update(self, body: dict[str, Any], path: str = COMPANY_PROFILES) -> UpdateAnswer:
        backoff = self.settings.backoff
        tries: list[Attempt] = []
        payload = orjson.dumps(body)
        for attempt in range(1, backoff.attempts + 1):
            started = time.monotonic()
            try:
                answer, status = await self._post_once(path, payload)
            except _Transient as exc:
                tries.append(Attempt(_status_of(exc), _code_of(exc), exc.reason, None, _ms(started)))
                if attempt == backoff.attempts:
                    last = tries.pop()
                    return UpdateAnswer("in_flight", UNRESOLVED, f"gave up after {attempt} attempts: {last.b1_message}; "
                                        "the next run sends it again", last.http_status, writes=attempt,
                                        duration_ms=last.duration_ms, tries=tries)
                self.counters.retries += 1
                await asyncio.sleep(backoff.delay(attempt, exc.retry_after))
                continue
            except AuthFailed:
                raise
            except J1PError as exc:
                if type(exc) is not J1PError:  # HostUnreachable: the tenant is gone, stop the write-back
                    raise
                return UpdateAnswer("failed", exc.code, exc.return_message or str(exc), _http_of(exc),
                                    writes=attempt, duration_ms=_ms(started), tries=tries)
            code = str(answer.get("returnCode", "0"))
            warning = code != "0"
            return UpdateAnswer("synced", code if warning else None,
                                str(answer.get("returnMessage", "")) if warning else None, status,
                                answer.get("bravoId"), writes=attempt, duration_ms=_ms(started), tries=tries)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _post_once(self, path: str, payload: bytes) -> tuple[dict[str, Any], int]:
        response = await self._send_once("POST", path, content=payload, headers={"Content-Type": "application/json"})
        return self._outcome(response, path), response.status_code


def _status_of(exc: _Transient) -> int | None:
    reason = exc.reason
    if reason.startswith("rate limited"):
        return 429
    if reason.startswith("HTTP "):
        try:
            return int(reason.split()[1])
        except (IndexError, ValueError):
            return None
    if "returnCode -998" in reason:
        return 200
    return None


def _code_of(exc: _Transient) -> str | None:
    return "-998" if "returnCode -998" in exc.reason else (str(_status_of(exc)) if _status_of(exc) else None)


def _http_of(exc: J1PError) -> int | None:
    text = str(exc)
    marker = ": HTTP "
    if marker in text:
        try:
            return int(text.split(marker, 1)[1].split(",")[0].split()[0])
        except (IndexError, ValueError):
            return None
    return 200 if exc.code else None


def _ms(started: float) -> float:
    return round((time.monotonic() - started) * 1000, 2)


# ---------------------------------------------------------------- the loader


@dataclass
class WriteItem:
    """One UPDATE to send: `body` goes to JAGGAER; `payload` (the whole rendering) becomes the ledger's base."""

    pipeline: str
    ref: str  # external reference (the SAP B1 key, e.g. the CardCode)
    body: dict[str, Any]
    payload: dict[str, Any]
    fingerprint: str
    mapping_version: str
    target_key: str | None = None  # the JAGGAER id (bravoId)
    record_key: str | None = None
    plan_hash: str | None = None


@dataclass
class WriteOutcome:
    item: WriteItem
    answer: UpdateAnswer


class CompanyProfileLoader:
    """Sends `WriteItem`s with bounded concurrency: intents committed per chunk before its sends, outcomes after."""

    def __init__(self, writer: CompanyProfileWriter, state: Any, run_id: str, *, concurrency: int = 8,
                 chunk: int = 50, on_outcome: Callable[[WriteOutcome], None] | None = None) -> None:
        self.writer = writer
        self.state = state
        self.run_id = run_id
        self.concurrency = max(1, concurrency)
        self.chunk = max(1, chunk)
        self.on_outcome = on_outcome
        self.stats = LoadStats()

    async def load(self, items: Sequence[WriteItem]) -> list[WriteOutcome]:
        outcomes: list[WriteOutcome] = []
        slots = asyncio.Semaphore(self.concurrency)

        async def send(item: WriteItem) -> WriteOutcome:
            async with slots:
                return WriteOutcome(item, await self.writer.update(item.body))

        with db.connect(self.state) as conn:
            ledger.upgrade_tables(conn)
        for start in range(0, len(items), self.chunk):
            chunk = list(items[start:start + self.chunk])
            with db.connect(self.state) as conn:  # durable before any of them is sent
                ledger.record_intent(conn, self.run_id, [ledger.Intent(
                    i.pipeline, i.ref, "update", i.body, i.fingerprint, i.mapping_version, record_key=i.record_key,
                    target_entity=TARGET_ENTITY, target_key=i.target_key) for i in chunk])
            tasks = [asyncio.ensure_future(send(i)) for i in chunk]
            try:
                done = await asyncio.gather(*tasks)
            except BaseException:
                for task in tasks:
                    task.cancel()
                finished = [t.result() for t in tasks if t.done() and not t.cancelled() and t.exception() is None]
                self._journal(finished, outcomes)  # what is known is kept; the rest stays in flight
                raise
            self._journal(list(done), outcomes)
        return outcomes

    def _journal(self, done: list[WriteOutcome], outcomes: list[WriteOutcome]) -> None:
        if not done:
            return
        with db.connect(self.state) as conn:
            ledger.record_result(conn, self.run_id, [_result(o) for o in done])
        for o in done:
            outcomes.append(o)
            a = o.answer
            self.stats.writes += a.writes
            self.stats.retries += max(0, a.writes - 1)
            if a.status == "synced":
                self.stats.updated += 1
            else:
                self.stats.failed += 1
            if self.on_outcome is not None:
                self.on_outcome(o)


def _result(o: WriteOutcome) -> ledger.Result:
    item, a = o.item, o.answer
    synced = a.status == "synced"
    return ledger.Result(
        item.pipeline, item.ref, "update", a.status,
        target_key=item.target_key, fingerprint=item.fingerprint if synced else None,
        payload=item.payload if synced else None, mapping_version=item.mapping_version,
        http_status=a.http_status, b1_code=a.code, b1_message=a.message, duration_ms=a.duration_ms,
        writes=a.writes, attempts=a.writes, record_key=item.record_key, target_entity=TARGET_ENTITY,
        plan_hash=item.plan_hash if synced else None, tries=list(a.tries),
    )
