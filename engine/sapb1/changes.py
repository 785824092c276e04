"""Reading SAP B1 changes by update stamp (business partners and any entity set with `UpdateDate`/`UpdateTime`)
with a crash-safe cursor (SL §5.5, §6, §7.1).

B1 stamps a change with `UpdateDate` (the company-local date, despite its `Z`) and `UpdateTime` (`HH:MM:SS`,
company-local): one second at best, a minute on some releases, and many changes share a stamp. The Service
Layer is asked for the date only (`UpdateDate ge '2026-11-20'`); the time is checked here (§7.1). So a read
asks for everything stamped on or after the day the window opens, and keeps what is stamped inside it:

    cursor = {"stamp": "2026-11-20T10:14:02", "seen": {"V10000": ["2026-11-20T10:14:02", "<fingerprint>"]},
              "span": 1.8}

- `stamp`: the newest stamp among the records of the last committed read (B1's own clock, local time; it is
  only ever compared with other B1 stamps).
- the window opens `overlap_seconds` + `span` before `stamp`: `span` is how long that read took, so a change
  committed while the read was under way (stamped at most `span` before the newest stamp read) is in it, and
  the overlap covers stamps shared by many changes and a late commit.
- `seen`: per key, the stamp and content fingerprint of the last version read inside the window. A record
  whose content is the one already read is not handed over again (a stamp shared with changes already read,
  a save that altered nothing, or only fields not selected). Dedupe is by (key, content fingerprint).
- pages walk by key (`CardCode gt 'V10020'`, ordered by key, `$top` = page size): no offset that a record
  created or deleted during the read could shift, and a record changed during the read keeps its place (it
  is read with its new content, or next time: its new stamp is inside the next window).

`read_changes` yields `ChangeBatch`es; the caller stages each batch's records and stores the cursor only
after they are committed (`ChangeCursor.commit`): a crash loses only an uncommitted tail, which the next read
finds again. Nothing is lost or staged twice.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import orjson

from engine.kinds import SapB1Source
from engine.sapb1.client import SapB1Client
from engine.sapb1.dates import parse_date
from engine.sapb1.errors import ServiceLayerError
from engine.sapb1.url import odata_literal

STAMP_FORMAT = "%Y-%m-%dT%H:%M:%S"
DEFAULT_INITIAL = "1970-01-01"
PAGE_SIZE = 200
# Read-only bookkeeping of a read answer: not content (a save that changes nothing moves them).
VOLATILE = ("UpdateDate", "UpdateTime", "DataVersion")
_TIME = re.compile(r"^(\d{1,2}):(\d{2})(?::(\d{2}))?(?:\.\d+)?$")
_ISO_DURATION = re.compile(r"^PT(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)(?:\.\d+)?S)?$")
_INVALID_PROPERTY = re.compile(r"Property '([A-Za-z_][A-Za-z0-9_]*)' of '[^']*' is invalid")


# ---------------------------------------------------------------- stamps and content


def parse_time(value: Any) -> tuple[int, int, int]:
    """`UpdateTime` as (hours, minutes, seconds): `"10:14:02"`, `"10:14"`, `"PT10H14M2S"` (v1 Edm.Time) or the
    table's integer `101402` / `1014` (HHMMSS / HHMM)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        number = int(value)
        if number >= 10000:
            return number // 10000, number // 100 % 100, number % 100
        return number // 100, number % 100, 0
    text = str(value).strip()
    if m := _TIME.match(text):
        return int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)
    if (m := _ISO_DURATION.match(text)) and text != "PT":
        return int(m.group(1) or 0), int(m.group(2) or 0), int(m.group(3) or 0)
    raise ValueError(f"not a SAP B1 time: {value!r}")


def stamp_of(record: Mapping[str, Any], date_field: str = "UpdateDate", time_field: str = "UpdateTime") -> str | None:
    """The record's update stamp as `YYYY-MM-DDTHH:MM:SS` (company-local); None without a date."""
    day = record.get(date_field)
    if not day:
        return None
    when = parse_date(str(day))
    raw_time = record.get(time_field)
    hours, minutes, seconds = parse_time(raw_time) if raw_time not in (None, "") else (0, 0, 0)
    return f"{when.isoformat()}T{hours:02d}:{minutes:02d}:{seconds:02d}"


def stamp_datetime(stamp: str) -> datetime:
    """A stamp of `stamp_of` as a naive datetime (company-local)."""
    return datetime.strptime(stamp, STAMP_FORMAT)


def clean(record: Mapping[str, Any]) -> dict[str, Any]:
    """The record without OData annotations (`@odata.etag`, `odata.metadata`, ...)."""
    return {k: v for k, v in record.items() if not k.startswith("@") and not k.startswith("odata.")}


def content_fingerprint(record: Mapping[str, Any], volatile: Iterable[str] = VOLATILE) -> str:
    """Hash of the record's content: canonical JSON without annotations and update stamps."""
    skip = set(volatile)
    content = {k: v for k, v in clean(record).items() if k not in skip}
    return hashlib.sha256(orjson.dumps(content, option=orjson.OPT_SORT_KEYS, default=str)).hexdigest()[:32]


# ---------------------------------------------------------------- the cursor


@dataclass
class ChangeCursor:
    """Where the last committed read of a B1 source stopped (see the module text)."""

    stamp: str | None = None
    seen: dict[str, list[str]] = field(default_factory=dict)  # key -> [stamp, content fingerprint]
    span: float = 0.0  # seconds the read that set `stamp` took

    def floor(self, overlap_seconds: float) -> datetime | None:
        """Where the next read's window opens (None: read everything from the initial date)."""
        if self.stamp is None:
            return None
        return stamp_datetime(self.stamp) - timedelta(seconds=float(overlap_seconds) + max(0.0, self.span))

    def prune(self, overlap_seconds: float) -> None:
        """Keep only the `seen` entries still inside the window."""
        floor = self.floor(overlap_seconds)
        if floor is None:
            return
        cut = floor.strftime(STAMP_FORMAT)
        self.seen = {k: v for k, v in self.seen.items() if v and (v[0] or "") >= cut}

    def commit(self, batch_seen: Mapping[str, list[str]], *, stamp: str | None = None, span: float | None = None,
               overlap_seconds: float = 60.0) -> None:
        """Take the `seen` pairs of staged records; at the end of a read also its newest stamp and duration."""
        self.seen.update(batch_seen)
        if stamp is not None and (self.stamp is None or stamp > self.stamp):
            self.stamp = stamp
            if span is not None:
                self.span = span
            self.prune(overlap_seconds)

    def to_json(self) -> dict[str, Any]:
        return {"kind": "sapb1", "stamp": self.stamp, "seen": self.seen, "span": round(self.span, 3)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> ChangeCursor:
        if not data:
            return cls()
        return cls(data.get("stamp"), {str(k): list(v) for k, v in (data.get("seen") or {}).items()},
                   float(data.get("span") or 0.0))


# ---------------------------------------------------------------- the read


@dataclass
class ChangeBatch:
    """One page of a read: the changed records to stage, and what the cursor learns once they are committed."""

    records: list[tuple[str, str, dict[str, Any]]]  # key, stamp, record (annotations removed)
    seen: dict[str, list[str]]  # key -> [stamp, fingerprint] of every record of the page inside the window
    fetched: int  # records the page held (inside the window or not)
    newest: str | None  # the newest stamp of the page
    last: bool = False  # the read ends with this page: `stamp` and `span` below are the read's
    stamp: str | None = None
    span: float = 0.0
    dropped_fields: tuple[str, ...] = ()  # selected user fields B1 does not have (yet): read without them


async def read_changes(client: SapB1Client, source: SapB1Source, cursor: ChangeCursor, *,
                       page_size: int = PAGE_SIZE) -> AsyncIterator[ChangeBatch]:
    """Walk the records changed since `cursor` (not modified: the caller commits), one batch per page: the
    pipeline's `source:` (entity set, key, stamp fields, extra `$filter`, fields to select)."""
    started = time.monotonic()
    floor = cursor.floor(source.overlap_seconds)
    day: date = floor.date() if floor is not None else parse_date(source.initial or DEFAULT_INITIAL)
    cut = floor.strftime(STAMP_FORMAT) if floor is not None else None
    window = f"{source.date_field} ge '{day.isoformat()}'"
    base = f"({source.filter}) and {window}" if source.filter else window
    # the key and the stamps are needed whatever the pipeline selects
    select = list(dict.fromkeys([source.primary_key, source.date_field, source.time_field, *source.select])) \
        if source.select else None
    dropped: list[str] = []
    newest: str | None = None
    after: Any = None
    while True:
        flt = base if after is None else f"{base} and {source.primary_key} gt {odata_literal(after)}"
        rows, select = await _page(client, source, flt, select, page_size, dropped)
        batch = ChangeBatch([], {}, len(rows), None, dropped_fields=tuple(dropped))
        for raw in rows:
            record = clean(raw)
            key = record.get(source.primary_key)
            if key is None:
                raise ServiceLayerError(200, None, f"{source.entity}: a record without {source.primary_key}",
                                        method="GET", path=source.entity)
            key = str(key)
            stamp = stamp_of(record, source.date_field, source.time_field) or (cut or f"{day.isoformat()}T00:00:00")
            if cut is not None and stamp < cut:
                continue  # stamped before the window: read by an earlier run
            fp = content_fingerprint(record, (source.date_field, source.time_field, "DataVersion"))
            batch.seen[key] = [stamp, fp]
            batch.newest = stamp if batch.newest is None or stamp > batch.newest else batch.newest
            previous = cursor.seen.get(key)
            if previous is not None and len(previous) > 1 and previous[1] == fp:
                continue  # this very content was read before
            batch.records.append((key, stamp, record))
        if batch.newest is not None and (newest is None or batch.newest > newest):
            newest = batch.newest
        after = rows[-1].get(source.primary_key) if rows else None
        batch.last = len(rows) < page_size
        if batch.last:
            batch.stamp, batch.span = newest, time.monotonic() - started
        yield batch
        if batch.last:
            return


async def _page(client: SapB1Client, source: SapB1Source, flt: str, select: list[str] | None, page_size: int,
                dropped: list[str]) -> tuple[list[dict[str, Any]], list[str] | None]:
    """One page (`$top`), ordered by key. A selected user field B1 does not have yet (`U_...` is created by the
    first run that writes) is dropped from `$select` once, not an error: no record can carry it."""
    while True:
        try:
            rows = [row async for row in client.query(source.entity, filter=flt, select=select,
                                                      orderby=source.primary_key, top=page_size, page_size=page_size)]
            return rows, select
        except ServiceLayerError as exc:
            match = _INVALID_PROPERTY.search(exc.message or "") if exc.status == 400 else None
            name = match.group(1) if match else None
            if not (select and name and name.startswith("U_") and name in select):
                raise
            select = [f for f in select if f != name]
            dropped.append(name)
