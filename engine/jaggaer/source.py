"""A J1P source: the keyset walk of a list plus per-record detail reads with bounded concurrency.

`read_source` is an async generator of `Batch`es, one per list page, in page order. Detail reads of a
page start as soon as the page arrives and the walk goes on meanwhile (at most `ahead` pages in
flight), so the connection pool stays busy across page boundaries. A detail read J1P refuses for that
record (a returnCode, a 4xx) turns into a quarantine entry; a read whose retries ran out on transient
faults, like a list read that fails, raises J1PError: the caller fails the source without advancing its
cursor past it, so the next run reads the record again (a change is never skipped).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from engine.jaggaer.client import J1PClient, J1PError
from engine.jaggaer.keyset import KeysetState, dig, keyset_pages
from engine.kinds import JaggaerSource


@dataclass
class Failed:
    """A record whose read failed for good (it is quarantined with this reason)."""

    key: str
    reason: str
    record: Any


@dataclass
class Batch:
    """The outcome of one list page: records to stage (key, stamp, raw record), failures, cursor after it."""

    records: list[tuple[str, str, dict[str, Any], bytes | None]]  # key, stamp, record, raw body (detail reads)
    failed: list[Failed]
    fetched: int
    stamp: str
    id: str
    seen_added: dict[str, str]
    total: int | None = None
    pages: int = 1
    extra: dict[str, Any] = field(default_factory=dict)


async def read_source(client: J1PClient, src: JaggaerSource, state: KeysetState, *, ahead: int = 2
                      ) -> AsyncIterator[Batch]:
    cursor = src.cursor
    sem = asyncio.Semaphore(client.settings.max_concurrency)

    async def fetch_list(flt: str) -> tuple[list[dict[str, Any]], int | None]:
        body = await client.get(src.list, {"flt": flt, "start": "1"})
        items = dig(body, src.records)
        if items is None:
            items = []
        if not isinstance(items, list):
            raise J1PError(f"{src.list}: '{src.records}' in the answer is not a list", path=src.list)
        total = body.get("totRecords")
        return items, int(total) if isinstance(total, int | str) and str(total).isdigit() else None

    async def detail(item: dict[str, Any]) -> tuple[str, str, dict[str, Any], bytes | None] | Failed:
        key = str(dig(item, src.primary_key))
        if src.detail is None:
            return key, str(dig(item, cursor.field)), item, None
        async with sem:
            try:
                record, raw = await client.get_raw(src.detail.replace("{id}", key))
            except J1PError as exc:
                if exc.transient:  # not the record's fault: fail the source, the cursor stays before it
                    raise
                reason = f"returnCode {exc.code}: {exc.return_message}" if exc.code else str(exc)
                return Failed(key, f"detail read failed: {reason}", item)
        stamp = dig(record, cursor.field) or dig(item, cursor.field)
        return key, str(stamp), record, raw

    pending: deque[tuple[Any, list[asyncio.Task[Any]]]] = deque()

    async def finish(page: Any, tasks: list[asyncio.Task[Any]]) -> Batch:
        results = await asyncio.gather(*tasks)
        good = [r for r in results if not isinstance(r, Failed)]
        bad = [r for r in results if isinstance(r, Failed)]
        return Batch(good, bad, page.fetched, page.stamp, page.id, page.seen_added, page.total)

    try:
        async for page in keyset_pages(fetch_list, cursor, src.primary_key, state, extra_filter=src.filter):
            pending.append((page, [asyncio.ensure_future(detail(item)) for item in page.items]))
            while len(pending) > ahead:
                yield await finish(*pending.popleft())
        while pending:
            yield await finish(*pending.popleft())
    finally:
        for _, tasks in pending:
            for task in tasks:
                task.cancel()
