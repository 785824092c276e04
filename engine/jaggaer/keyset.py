"""The incremental keyset read of J1P §4.5: (last-modified stamp, id) cursor with an overlap window.

Every request starts at `start=1`; a changed record always moves to the end of the (stamp, id) order,
so nothing slips behind the cursor while we read. The overlap re-reads records stamped shortly before
the cursor, and `seen` (id -> stamp already processed) skips those we have handled.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from engine.kinds import JaggaerCursor

EPOCH = "1970-01-01T00:00:00.000Z"


def dig(record: Any, dotted: str) -> Any:
    """`header.lastUpdate` -> record['header']['lastUpdate'] (None when absent)."""
    for part in dotted.split("."):
        if not isinstance(record, dict):
            return None
        record = record.get(part)
    return record


_COMPACT = re.compile(r"^(\d{4})(\d{2})(\d{2})(?:(\d{2})(\d{2})(\d{2}))?$")


def stamp_ms(stamp: str) -> int:
    """Milliseconds since the epoch of a J1P stamp: ISO 8601 (Z or offset), `YYYYMMDD` or `YYYYMMDDHHMMSS` (§4.7)."""
    text = str(stamp).strip()
    if m := _COMPACT.match(text):
        year, month, day, hour, minute, second = (int(p) if p else 0 for p in m.groups())
        when = datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    else:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
    return int((when - datetime(1970, 1, 1, tzinfo=UTC)) / timedelta(milliseconds=1))


def format_ms(ms: int) -> str:
    when = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


@dataclass
class KeysetState:
    """Where the last committed read stopped: stamp T as the server sent it, id X, and `seen`."""

    stamp: str | None = None
    id: str | None = None
    seen: dict[str, str] = field(default_factory=dict)

    def prune(self, overlap_seconds: float) -> None:
        """Keep only the `seen` pairs still inside the overlap window behind T."""
        if self.stamp is None:
            self.seen.clear()
            return
        floor = stamp_ms(self.stamp) - int(overlap_seconds * 1000)
        self.seen = {k: v for k, v in self.seen.items() if _safe_ms(v) >= floor}

    def to_json(self) -> dict[str, Any]:
        return {"stamp": self.stamp, "id": self.id, "seen": self.seen}

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> KeysetState:
        if not data:
            return cls()
        return cls(data.get("stamp"), data.get("id"), dict(data.get("seen") or {}))


def _safe_ms(stamp: str) -> int:
    try:
        return stamp_ms(stamp)
    except ValueError:
        return 0


@dataclass
class Page:
    """One list page after the `seen` filter: the items to process, and the cursor after it."""

    items: list[dict[str, Any]]
    fetched: int
    stamp: str
    id: str
    seen_added: dict[str, str]
    total: int | None = None
    last: Any = None


FetchPage = Callable[[str], Awaitable[tuple[list[dict[str, Any]], int | None]]]

Position = tuple[int, int | str]


def position(stamp: str, rid: str) -> Position:
    """Sort key of the server's (last-modified, id) order: instants, ids as integers."""
    return stamp_ms(stamp), int(rid) if str(rid).isdigit() else str(rid)


async def keyset_pages(fetch: FetchPage, cursor: JaggaerCursor, primary_key: str, state: KeysetState,
                       *, extra_filter: str | None = None) -> AsyncIterator[Page]:
    """Walk a list by keyset from `state`; `fetch(flt)` returns (items of page start=1, totRecords).

    The contract's procedure (§4.5) with one saving: instead of asking `==T;id=gt=X` and then `=gt=T`
    after every page (two list requests per page), ask `=ge=T` — the records at T already read come
    back first and are skipped as `seen`, the rest is the next page. Only when a page holds nothing past
    (T, X) — more records share T than fit a page — does the walk fall back to the contract's
    `==T;id=gt=X` steps. Same operators, same start=1, timestamps passed back as sent; a page that
    holds every match (`totRecords`) ends the walk without another request.

    `state.stamp`/`state.id` follow the walk (never backwards); `state.seen` grows with every
    processed pair. The caller persists a copy only after the pages it has consumed are committed.
    """
    prefix = f"{extra_filter};" if extra_filter else ""
    key, tie = cursor.filter_key, cursor.tiebreak_key
    if state.stamp is None:
        floor = cursor.initial
    else:
        floor = format_ms(max(0, stamp_ms(state.stamp) - int(cursor.overlap_seconds * 1000)))
    flt, mode = f"{prefix}{key}=ge={floor}", "range"
    walk: tuple[Position, str, str] | None = None  # position of the last record read in this walk
    while True:
        items, total = await fetch(flt)
        if not items:
            if mode == "tie":  # no more records at T: move past it (contract step 2b)
                flt, mode = f"{prefix}{key}=gt={walk[1]}", "range"  # type: ignore[index]
                continue
            return
        before = walk
        page = _handle(items, cursor, primary_key, state)
        page.total = total
        last = page.last
        if walk is None or last[0] > walk[0]:
            walk = last
        _advance(state, walk)
        page.stamp, page.id = state.stamp or walk[1], state.id or walk[2]
        yield page
        if mode == "range" and total is not None and total <= len(items):
            return  # this page held every record matching at the time of the request
        if mode == "range" and before is not None and walk[0] <= before[0]:
            mode = "tie"  # a page full of records at T already read: finish T by id (contract step 2a)
        flt = f"{prefix}{key}=={walk[1]};{tie}=gt={walk[2]}" if mode == "tie" else f"{prefix}{key}=ge={walk[1]}"


def _advance(state: KeysetState, walk: tuple[Position, str, str]) -> None:
    if state.stamp is None or state.id is None or walk[0] > position(state.stamp, state.id):
        state.stamp, state.id = walk[1], walk[2]


def _handle(items: list[dict[str, Any]], cursor: JaggaerCursor, primary_key: str, state: KeysetState) -> Page:
    fresh, added = [], {}
    for item in items:
        rid, stamp = dig(item, primary_key), dig(item, cursor.field)
        if rid is None or stamp is None:
            raise ValueError(f"list item without {primary_key!r} or {cursor.field!r}")
        rid, stamp = str(rid), str(stamp)
        if state.seen.get(rid) == stamp:
            continue
        state.seen[rid] = stamp
        added[rid] = stamp
        fresh.append(item)
    last_stamp, last_id = str(dig(items[-1], cursor.field)), str(dig(items[-1], primary_key))
    page = Page(fresh, len(items), last_stamp, last_id, added)
    page.last = (position(last_stamp, last_id), last_stamp, last_id)
    return page
