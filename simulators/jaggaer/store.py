"""Compact in-memory storage of one tenant: suppliers, purchase orders, invoices.

Records are small `__slots__` objects holding scalars and shared tuples (addresses, catalogue items,
accounting splits, supplier snapshots); `render.py` turns them into the API's JSON shapes on demand.
That keeps 100,000 orders with their lines and invoices in a few hundred MB.

Stamps are integer milliseconds since the epoch (UTC). `TenantStore.stamp()` hands out the clock's
time, never earlier than a stamp already handed out (reference §4.5).
"""

from __future__ import annotations

import bisect
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any, NamedTuple

DAY_MS = 86_400_000


class SimClock:
    """The clock that stamps last-modified times: system time, or frozen / set / advanced."""

    def __init__(self) -> None:
        self._offset_ms = 0
        self._frozen_ms: int | None = None

    @staticmethod
    def _real_ms() -> int:
        return int(time.time() * 1000)

    def now_ms(self) -> int:
        if self._frozen_ms is not None:
            return self._frozen_ms
        return self._real_ms() + self._offset_ms

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.now_ms() / 1000, UTC)

    @property
    def frozen(self) -> bool:
        return self._frozen_ms is not None

    def freeze(self, at: datetime | None = None) -> None:
        """Stop the clock (at `at`, or now)."""
        self._frozen_ms = to_ms(at) if at is not None else self.now_ms()

    def unfreeze(self) -> None:
        """Let the clock run again from where it stands."""
        if self._frozen_ms is not None:
            self._offset_ms = self._frozen_ms - self._real_ms()
            self._frozen_ms = None

    def set(self, at: datetime) -> None:
        """Put the clock at `at` (frozen stays frozen). Stamps never go backwards anyway."""
        ms = to_ms(at)
        if self._frozen_ms is not None:
            self._frozen_ms = ms
        else:
            self._offset_ms = ms - self._real_ms()

    def advance(self, seconds: float) -> None:
        delta = int(seconds * 1000)
        if self._frozen_ms is not None:
            self._frozen_ms += delta
        else:
            self._offset_ms += delta

    def as_dict(self) -> dict[str, Any]:
        from simulators.jaggaer.render import ts

        return {"now": ts(self.now_ms()), "frozen": self.frozen, "offsetMs": self._offset_ms}


def to_ms(at: datetime) -> int:
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return int(at.timestamp() * 1000)


# -- shared value tuples -----------------------------------------------------------------------


class Address(NamedTuple):
    lines: tuple[str, ...]
    city: str
    state: str
    postal_code: str
    country: str
    iso_country: str
    code: str | None = None


class Split(NamedTuple):
    """One share of a line's accounting: GL account, cost centre, percent of price."""

    account: str
    cost_centre: str
    percent: float = 100.0
    blank_project: bool = False  # render an empty `Project` segment (only `internalName`)


class SupplierRef(NamedTuple):
    """What an order or invoice carries about its supplier (a snapshot taken when it was made)."""

    id: int
    name: str
    number: str
    duns: str | None
    address: Address
    currency: str
    terms: str
    remit_id: int


class Person(NamedTuple):
    username: str
    first_name: str
    last_name: str
    email: str


# -- records -----------------------------------------------------------------------------------

COMPANY_FIELDS = (
    "companyName", "type", "status", "extCode", "extUniqueCode", "dAndBCode", "fiscalCode", "euVat",
    "bizLegalStruct", "bizEmail", "bizPhone", "bizFax", "webSite", "address", "zip", "city",
    "province", "isoCountry", "currency", "standardPaymentTermsCode",
)


class Supplier:
    """A company profile. `info` holds the string fields of COMPANY_FIELDS in that order."""

    __slots__ = ("id", "info", "registration_ms", "last_ms", "ref", "remit_id", "user")

    def __init__(self, id: int, info: dict[str, str], registration_ms: int, last_ms: int, remit_id: int,
                 user: Person | None = None) -> None:
        self.id = id
        self.info = info
        self.registration_ms = registration_ms
        self.last_ms = last_ms
        self.remit_id = remit_id
        self.user = user
        self.ref = self.snapshot()

    def snapshot(self) -> SupplierRef:
        info = self.info
        street = info.get("address", "")
        address = Address((street,) if street else (), info.get("city", ""), info.get("province", ""),
                          info.get("zip", ""), country_name(info.get("isoCountry", "")), info.get("isoCountry", ""))
        return SupplierRef(self.id, info.get("companyName", ""), info.get("extCode", ""),
                           info.get("dAndBCode") or None, address, info.get("currency") or "USD",
                           info.get("standardPaymentTermsCode") or "Net 30", self.remit_id)


def country_name(iso: str) -> str:
    from simulators.jaggaer.catalog import PLACES

    for place in PLACES:
        if place[4] == iso:
            return place[3]
    return iso


class OrderLine:
    __slots__ = ("id", "number", "status", "item", "description", "qty", "price", "delivery_ms", "taxable",
                 "capex", "ship_to", "splits", "business_unit")

    def __init__(self, id: int, number: int, item: Any, qty: float, price: float, delivery_ms: int,
                 taxable: bool, ship_to: Address | None, splits: tuple[Split, ...], business_unit: str,
                 description: str | None = None, capex: bool = False, status: str = "Open") -> None:
        self.id = id
        self.number = number
        self.status = status
        self.item = item
        self.description = description  # overrides item.description when set
        self.qty = qty
        self.price = price
        self.delivery_ms = delivery_ms
        self.taxable = taxable
        self.capex = capex
        self.ship_to = ship_to
        self.splits = splits
        self.business_unit = business_unit


class PurchaseOrder:
    __slots__ = ("id", "number", "revision", "status", "workflow", "last_ms", "create_ms", "order_ms",
                 "business_unit", "requestor", "supplier", "bill_to", "ship_to", "charges", "note",
                 "lines", "next_line")

    def __init__(self, id: int, number: int, create_ms: int, order_ms: int, business_unit: str,
                 requestor: Person, supplier: SupplierRef, bill_to: Address, ship_to: Address,
                 lines: list[OrderLine], workflow: str = "Completed", note: str | None = None,
                 charges: tuple[float, float, float, float] = (0, 0, 0, 0)) -> None:
        self.id = id
        self.number = number
        self.revision = 0
        self.status = "Open"
        self.workflow = workflow
        self.last_ms = create_ms
        self.create_ms = create_ms
        self.order_ms = order_ms
        self.business_unit = business_unit
        self.requestor = requestor
        self.supplier = supplier
        self.bill_to = bill_to
        self.ship_to = ship_to
        self.charges = charges  # taxCharge2, shippingCharge, handlingCharge, discountAmount
        self.note = note
        self.lines = lines
        self.next_line = len(lines) + 1

    @property
    def po_number(self) -> str:
        return f"{self.number:010d}"


class InvoiceLine:
    __slots__ = ("id", "number", "description", "uom", "product_type", "po_number", "po_line", "qty",
                 "price", "taxable", "splits", "business_unit", "ship_to", "tolerance", "po_match")

    def __init__(self, id: int, number: int, description: str, uom: str, product_type: str,
                 po_number: str | None, po_line: int | None, qty: float, price: float, taxable: bool,
                 splits: tuple[Split, ...], business_unit: str, ship_to: Address,
                 tolerance: str = "Exact", po_match: str = "Fully Matched") -> None:
        self.id = id
        self.number = number
        self.description = description
        self.uom = uom
        self.product_type = product_type
        self.po_number = po_number
        self.po_line = po_line
        self.qty = qty
        self.price = price
        self.taxable = taxable
        self.splits = splits
        self.business_unit = business_unit
        self.ship_to = ship_to
        self.tolerance = tolerance
        self.po_match = po_match


class Invoice:
    __slots__ = ("id", "number", "supplier_invoice_number", "name", "type", "line_type", "source",
                 "payment_status", "workflow", "match_status", "last_ms", "create_ms", "invoice_ms",
                 "accounting_ms", "invoiced_by", "invoiced_by_bu", "business_unit", "supplier", "bill_to",
                 "ship_to", "charges", "early_payment", "withholding", "supplier_tax", "has_total",
                 "lines", "po_id")

    def __init__(self, id: int, number: int, supplier: SupplierRef, create_ms: int, invoice_ms: int,
                 lines: list[InvoiceLine], invoiced_by: str, bill_to: Address, ship_to: Address,
                 supplier_invoice_number: str | None, name: str, type: str = "Invoice",
                 source: str = "Manual", workflow: str = "Completed", payment_status: str = "Payable",
                 match_status: str = "Matched", business_unit: str | None = "0001", po_id: int | None = None) -> None:
        self.id = id
        self.number = number
        self.supplier_invoice_number = supplier_invoice_number
        self.name = name
        self.type = type
        self.line_type = "PO" if any(line.po_number for line in lines) else "Non-PO"
        self.source = source
        self.payment_status = payment_status
        self.workflow = workflow
        self.match_status = match_status
        self.last_ms = create_ms
        self.create_ms = create_ms
        self.invoice_ms = invoice_ms
        self.accounting_ms = create_ms - create_ms % DAY_MS
        self.invoiced_by = invoiced_by
        self.invoiced_by_bu = True
        self.business_unit = business_unit
        self.supplier = supplier
        self.bill_to = bill_to
        self.ship_to = ship_to
        self.charges = (0, 0, 0, 0)  # taxCharge2, shippingCharge, handlingCharge, discountAmount
        self.early_payment: float | None = 0
        self.withholding: float | None = None
        self.supplier_tax = False
        self.has_total = True
        self.lines = lines
        self.po_id = po_id

    @property
    def invoice_number(self) -> str:
        return f"I{self.number:05d}"


# -- collections and queries -------------------------------------------------------------------

Predicate = Callable[[Any], bool]


class Collection:
    """Records of one kind, kept in id order, with a lazily rebuilt (last-modified, id) index."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.by_id: dict[int, Any] = {}
        self.ordered: list[Any] = []  # ascending id (ids are handed out in increasing order)
        self.version = 0
        self._stamp_index: tuple[int, list[tuple[int, int]], list[Any]] | None = None
        self._cache: OrderedDict[tuple[Any, ...], list[Any]] = OrderedDict()

    def __len__(self) -> int:
        return len(self.ordered)

    def add(self, record: Any) -> None:
        if self.ordered and record.id <= self.ordered[-1].id:
            bisect.insort(self.ordered, record, key=lambda r: r.id)
        else:
            self.ordered.append(record)
        self.by_id[record.id] = record
        self.touch()

    def extend_sorted(self, records: Iterable[Any]) -> None:
        """Bulk load records already in ascending id order (the seed)."""
        for record in records:
            self.ordered.append(record)
            self.by_id[record.id] = record
        self.touch()

    def touch(self) -> None:
        self.version += 1
        self._cache.clear()

    def get(self, id: int) -> Any | None:
        return self.by_id.get(id)

    def by_stamp(self) -> tuple[list[tuple[int, int]], list[Any]]:
        index = self._stamp_index
        if index is None or index[0] != self.version:
            records = sorted(self.ordered, key=lambda r: (r.last_ms, r.id))
            keys = [(r.last_ms, r.id) for r in records]
            self._stamp_index = index = (self.version, keys, records)
        return index[1], index[2]

    def query(self, cache_key: Any, stamp_range: tuple[int | None, bool, int | None, bool] | None,
              predicates: list[Predicate]) -> list[Any]:
        """Matching records: by (last-modified, id) when `stamp_range` is given, else by id.

        `stamp_range` = (low, low_inclusive, high, high_inclusive); None bounds are open.
        Results are cached per filter until the collection changes, so paging costs one scan.
        """
        key = (cache_key, self.version)
        hit = self._cache.get(key)
        if hit is not None:
            self._cache.move_to_end(key)
            return hit
        if stamp_range is None:
            candidates: Iterable[Any] = self.ordered
        else:
            keys, records = self.by_stamp()
            low, low_inc, high, high_inc = stamp_range
            start = 0
            if low is not None:
                start = bisect.bisect_left(keys, (low, -1)) if low_inc else bisect.bisect_left(keys, (low + 1, -1))
            end = len(keys)
            if high is not None:
                end = bisect.bisect_left(keys, (high + 1, -1)) if high_inc else bisect.bisect_left(keys, (high, -1))
            candidates = records[start:end]
        if predicates:
            result = [r for r in candidates if all(p(r) for p in predicates)]
        else:
            result = candidates if isinstance(candidates, list) else list(candidates)
        self._cache[key] = result
        while len(self._cache) > 16:
            self._cache.popitem(last=False)
        return result


class TenantStore:
    """One tenant's data, its id sequences and its last-modified stamp source."""

    def __init__(self, clock: SimClock, salt: str = "demo") -> None:
        self.clock = clock
        self.salt = salt  # makes derived values (request UUIDs) differ between tenants
        self.suppliers = Collection("companyprofiles")
        self.orders = Collection("purchaseorders")
        self.invoices = Collection("invoices")
        self.last_stamp = 0
        self.seq = {
            "supplier": 20000, "remit": 77000, "po": 3120000, "po_number": 0, "po_line": 5500000,
            "invoice": 2600000, "invoice_number": 0, "invoice_line": 9100000,
        }

    def next_id(self, name: str) -> int:
        self.seq[name] += 1
        return self.seq[name]

    def stamp(self) -> int:
        """The current clock in ms, never earlier than a stamp already handed out."""
        now = max(self.clock.now_ms(), self.last_stamp)
        self.last_stamp = now
        return now

    def note_seed_stamp(self, ms: int) -> None:
        self.last_stamp = max(self.last_stamp, ms)

    def active_suppliers(self) -> list[Supplier]:
        return [s for s in self.suppliers.ordered if s.info.get("type") == "SELLER" and s.info.get("status") == "ACTIVE"]
