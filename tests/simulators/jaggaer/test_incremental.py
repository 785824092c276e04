"""Incremental reads (§4.5): last-modified filter, ordering, ties, and the engine's keyset procedure."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from simulators.jaggaer.fiql import parse_timestamp
from tests.simulators.jaggaer.conftest import PO_PATH, Api, api_for

PO_KEY = ("jepurchaseorderList", "jepurchaseorder")


def _fmt(ms: int) -> str:
    moment = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def _page(api: Api, flt: str) -> list[dict]:
    body = api.get(PO_PATH, flt=flt, start=1).json()
    assert body["returnCode"] == 0, body
    return [r["header"] for r in body["jepurchaseorderList"]["jepurchaseorder"]]


def keyset_read(api: Api, cursor: tuple[str, int], seen: set, overlap_ms: int = 60_000) -> tuple[list[dict], tuple[str, int]]:
    """The engine's procedure of §4.5, with `start=1` on every request."""
    out: list[dict] = []

    def handle(page: list[dict]) -> None:
        for header in page:
            pair = (header["purchaseOrderId"], header["lastUpdate"])
            if pair not in seen:
                seen.add(pair)
                out.append(header)

    t, x = cursor
    page = _page(api, f"lastUpdate=ge={_fmt(parse_timestamp(t) - overlap_ms)}")
    if not page:
        return out, cursor
    handle(page)
    t, x = page[-1]["lastUpdate"], page[-1]["purchaseOrderId"]
    while True:
        page = _page(api, f"lastUpdate=={t};purchaseOrderId=gt={x}")
        if page:
            handle(page)
            x = page[-1]["purchaseOrderId"]
            continue
        page = _page(api, f"lastUpdate=gt={t}")
        if not page:
            return out, (t, x)
        handle(page)
        t, x = page[-1]["lastUpdate"], page[-1]["purchaseOrderId"]


def test_seed_is_back_dated_over_the_history_window(fresh):
    orders = fresh.purchase_orders()
    now_ms = fresh.clock.now_ms()
    stamps = [parse_timestamp(po["header"]["lastUpdate"]) for po in orders]
    assert min(stamps) >= now_ms - 10 * 86_400_000 - 1000 and max(stamps) <= now_ms
    assert max(stamps) - min(stamps) > 3 * 86_400_000  # spread, not one burst
    for po in orders:
        assert po["header"]["lastUpdate"] >= po["header"]["createDate"]


def test_filter_returns_exactly_the_changed_orders_in_stamp_then_id_order(fresh):
    api = api_for(fresh)
    before = max(po["header"]["lastUpdate"] for po in fresh.purchase_orders())
    fresh.clock.advance(120)
    fresh.clock.freeze()
    ids = [po["header"]["purchaseOrderId"] for po in fresh.purchase_orders()]
    a, b, c = ids[20], ids[25], ids[3]
    for po_id in (a, b, c):  # all get the same (frozen) stamp
        fresh.change_purchase_order(po_id, note=f"changed {po_id}")
    changed = _page(api, f"lastUpdate=gt={before}")
    assert [h["purchaseOrderId"] for h in changed] == sorted([a, b, c])
    assert len({h["lastUpdate"] for h in changed}) == 1
    fresh.clock.unfreeze()
    fresh.clock.advance(1)
    fresh.change_purchase_order(a, note="changed again")
    changed = _page(api, f"lastUpdate=gt={before}")
    assert [h["purchaseOrderId"] for h in changed] == [c, b, a]
    # A change that alters nothing does not move the stamp.
    stamp = changed[-1]["lastUpdate"]
    fresh.change_purchase_order(a, note="changed again")
    assert _page(api, f"purchaseOrderId=={a}")[0]["lastUpdate"] == stamp
    api.close()


def test_keyset_read_over_ties_larger_than_a_page_loses_nothing(fresh):
    api = api_for(fresh)
    seen: set = set()
    first, cursor = keyset_read(api, ("1970-01-01T00:00:00.000Z", 0), seen)
    assert len(first) == 30
    assert {h["purchaseOrderId"] for h in first} == {po["header"]["purchaseOrderId"] for po in fresh.purchase_orders()}
    # 25 new orders sharing one millisecond (page size is 10), then a run from the stored cursor.
    fresh.clock.advance(300)
    fresh.clock.freeze()
    created = [fresh.create_purchase_order(n_lines=1)["header"]["purchaseOrderId"] for _ in range(25)]
    second, cursor = keyset_read(api, cursor, seen)
    assert [h["purchaseOrderId"] for h in second] == created
    # A record changed at the cursor's own stamp, behind the cursor's id, is caught by the overlap.
    old = first[0]["purchaseOrderId"]
    fresh.change_purchase_order(old, note="late change at the same millisecond")
    third, cursor = keyset_read(api, cursor, seen)
    assert [h["purchaseOrderId"] for h in third] == [old]
    # A run without changes processes nothing.
    fourth, _ = keyset_read(api, cursor, seen)
    assert fourth == []
    fresh.clock.unfreeze()
    api.close()


def test_stamps_never_go_backwards_when_the_clock_is_set_back(fresh):
    latest = max(po["header"]["lastUpdate"] for po in fresh.purchase_orders())
    fresh.clock.set(datetime(2001, 1, 1, tzinfo=UTC))
    po = fresh.create_purchase_order(n_lines=1)
    assert po["header"]["lastUpdate"] >= latest
    assert po["header"]["createDate"] == po["header"]["lastUpdate"]


def test_zero_history_stamps_the_whole_seed_now():
    from simulators.jaggaer import start_simulator

    with start_simulator(seed=20, random_seed=2, history_days=0) as sim:
        sim.clock.freeze()
        stamps = {po["header"]["lastUpdate"] for po in sim.purchase_orders()}
        stamps |= {inv["header"]["lastUpdate"] for inv in sim.invoices()}
        assert len(stamps) == 1
        assert sim.create_purchase_order()["header"]["lastUpdate"] >= stamps.pop()
