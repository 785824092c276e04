"""The incremental keyset read of contract §4.5: (last-modified stamp, id) cursor with an overlap window.

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

from engine.spec import JaggaerCursor

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
        parts = [int(p) if p else 0 for p in m.groups()]
        when = datetime(*parts[:3], parts[3], parts[4], parts[5], tzinfo=UTC)
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


FetchPage = Callable[[str], Awaitable[tuple[list[dict[str, Any]], int | None]]]


async def keyset_pages(fetch: FetchPage, cursor: JaggaerCursor, primary_key: str, state: KeysetState,
                       *, extra_filter: str | None = None) -> AsyncIterator[Page]:
    """Walk a list by keyset from `state`; `fetch(flt)` returns (items of page start=1, totRecords).

    `state.stamp`/`state.id` follow the walk; `state.seen` grows with every processed pair. The caller
    persists a copy only after the pages it has consumed are committed.
    """
    prefix = f"{extra_filter};" if extra_filter else ""
    if state.stamp is None:
        floor = cursor.initial
    else:
        floor = format_ms(max(0, stamp_ms(state.stamp) - int(cursor.overlap_seconds * 1000)))
    flt = f"{prefix}{cursor.filter_key}=ge={floor}"
    moving_past = True  # the last query was a `ge`/`gt` one: an empty answer ends the walk
    while True:
        items, total = await fetch(flt)
        if items:
            yield _handle(items, cursor, primary_key, state, total)
            flt = f"{prefix}{cursor.filter_key}=={state.stamp};{cursor.tiebreak_key}=gt={state.id}"  # 2a
            moving_past = False
        elif moving_past:
            return
        else:
            flt = f"{prefix}{cursor.filter_key}=gt={state.stamp}"  # 2b
            moving_past = True


def _handle(items: list[dict[str, Any]], cursor: JaggaerCursor, primary_key: str, state: KeysetState,
            total: int | None) -> Page:
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
    last = items[-1]
    state.stamp, state.id = str(dig(last, cursor.field)), str(dig(last, primary_key))
    return Page(fresh, len(items), state.stamp, state.id, added, total)
