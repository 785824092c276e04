"""The keyset read of contract §4.5 in isolation, against an in-memory list that applies `flt` the way
the contract says (sorted by (stamp, id), page of `size` from start=1)."""

from __future__ import annotations

import asyncio
import re
from typing import Any

from engine.jaggaer.keyset import KeysetState, format_ms, keyset_pages, stamp_ms
from engine.kinds import JaggaerCursor

CURSOR = JaggaerCursor(filter_key="LASTMODTIME", field="returnCompanyInfo.lastModTime", tiebreak_key="BRAVOID",
                       overlap_seconds=60)


def t(second: int) -> str:
    return f"2024-05-02T13:{second // 60:02d}:{second % 60:02d}.000Z"


class Tenant:
    def __init__(self, size: int = 3) -> None:
        self.size = size
        self.rows: dict[int, str] = {}
        self.queries: list[str] = []
        self.on_query: Any = None

    def fetch(self, flt: str) -> tuple[list[dict[str, Any]], int]:
        self.queries.append(flt)
        if self.on_query:
            self.on_query(len(self.queries))
        rows = sorted(self.rows.items(), key=lambda kv: (stamp_ms(kv[1]), kv[0]))
        for c in flt.split(";"):
            k, op, v = re.fullmatch(r"(\w+)(==|=ge=|=gt=)(.+)", c).groups()  # type: ignore[union-attr]
            if k == "TYPE":
                continue
            if k == "BRAVOID":
                rows = [r for r in rows if r[0] > int(v)]
                continue
            ops = {"==": lambda a, b: a == b, "=ge=": lambda a, b: a >= b, "=gt=": lambda a, b: a > b}
            rows = [r for r in rows if ops[op](stamp_ms(r[1]), stamp_ms(v))]
        page = [{"returnCompanyInfo": {"bravoId": str(i), "lastModTime": s}} for i, s in rows[:self.size]]
        return page, len(rows)

    def walk(self, state: KeysetState) -> list[str]:
        async def fetch(flt: str) -> tuple[list[dict[str, Any]], int]:
            return self.fetch(flt)

        async def run() -> list[str]:
            return [i["returnCompanyInfo"]["bravoId"]
                    async for p in keyset_pages(fetch, CURSOR, "returnCompanyInfo.bravoId", state, extra_filter="TYPE==SELLER")
                    for i in p.items]

        return asyncio.run(run())


def test_one_list_request_per_page_and_every_record_once() -> None:
    tenant = Tenant(size=3)
    for i in range(1, 10):
        tenant.rows[i] = t(i)
    state = KeysetState()
    got = tenant.walk(state)
    assert got == [str(i) for i in range(1, 10)]
    assert tenant.queries == [
        "TYPE==SELLER;LASTMODTIME=ge=1970-01-01T00:00:00.000Z",
        f"TYPE==SELLER;LASTMODTIME=ge={t(3)}",
        f"TYPE==SELLER;LASTMODTIME=ge={t(5)}",
        f"TYPE==SELLER;LASTMODTIME=ge={t(7)}",  # 3 records match: this page holds them all, the walk ends
    ]
    assert (state.stamp, state.id) == (t(9), "9")


def test_more_ties_than_a_page_fall_back_to_id_steps() -> None:
    tenant = Tenant(size=3)
    for i in range(1, 9):
        tenant.rows[i] = t(5)  # eight records, one stamp
    tenant.rows[20] = t(6)
    got = tenant.walk(KeysetState())
    assert sorted(got, key=int) == [str(i) for i in [*range(1, 9), 20]] and len(got) == 9
    assert f"TYPE==SELLER;LASTMODTIME=={t(5)};BRAVOID=gt=3" in tenant.queries
    assert f"TYPE==SELLER;LASTMODTIME=gt={t(5)}" in tenant.queries


def test_changes_during_the_walk_are_read() -> None:
    tenant = Tenant(size=2)
    for i in range(1, 8):
        tenant.rows[i] = t(i)

    def change(n: int) -> None:
        if n == 2:
            tenant.rows[1] = t(100)  # read already: moves to the end
            tenant.rows[6] = t(101)  # not read yet: moves to the end

    tenant.on_query = change
    got = tenant.walk(KeysetState())
    assert sorted(set(got), key=int) == [str(i) for i in range(1, 8)]
    assert got.count("1") == 2  # read again with its new stamp


def test_reentry_with_overlap_skips_seen_pairs() -> None:
    tenant = Tenant(size=5)
    tenant.rows.update({1: t(30), 2: t(67), 5: t(67), 9: t(5)})  # 9: before the window
    state = KeysetState(t(67), "2", {"1": t(30), "2": t(67)})
    got = tenant.walk(state)
    assert tenant.queries[0] == f"TYPE==SELLER;LASTMODTIME=ge={t(7)}"
    assert got == ["5"]
    assert (state.stamp, state.id) == (t(67), "5")


def test_prune_keeps_only_the_overlap_window() -> None:
    state = KeysetState(t(130), "9", {"1": t(60), "2": t(71)})
    state.prune(60)
    assert state.seen == {"2": t(71)}


def test_stamp_formats() -> None:
    iso = stamp_ms("2024-05-02T13:42:07.118Z")
    assert format_ms(iso) == "2024-05-02T13:42:07.118Z"
    assert stamp_ms("2024-05-02T15:42:07.118+02:00") == iso
    assert stamp_ms("20240502134207") == stamp_ms("2024-05-02T13:42:07Z")
    assert stamp_ms("20240502") == stamp_ms("2024-05-02T00:00:00.000Z")
