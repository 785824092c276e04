"""Realistic, repeatable demo data for one tenant (reference §4.5 back-dated seeding, §8 relations).

`seed_tenant(store, n_orders, random_seed, history_days)` creates suppliers, purchase orders with
lines and invoices against them (full, partial, price variance, no PO, credit memos). Creation and
last-modified stamps are spread over the `history_days` before the clock's current time; ids grow
with creation time. Same `random_seed` (and clock) -> same data.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from simulators.jaggaer.catalog import (
    AP_CLERKS,
    BILL_TO,
    BUSINESS_UNITS,
    COMMODITIES,
    ITEMS_BY_COMMODITY,
    NAME_STEMS,
    NAME_TAILS,
    PAYMENT_TERMS,
    PLACES,
    REQUESTORS,
    SHIP_TO,
    STREETS,
    TRADES,
    UNKNOWN_ACCOUNT,
    CatalogItem,
)
from simulators.jaggaer.store import (
    DAY_MS,
    Address,
    Invoice,
    InvoiceLine,
    OrderLine,
    Person,
    PurchaseOrder,
    Split,
    Supplier,
    TenantStore,
)

HOUR_MS = 3_600_000
LONG_DESCRIPTION_WART = (
    "Replacement parts kit as per quotation, including all fittings, gaskets, seals, fasteners and "
    "consumables required for the overhaul of line 3 packaging machine, delivery in two lots, "
    "supplier to confirm lead time and provide material certificates for every lot delivered on site "
    "before installation; see attached drawing revision C and the maintenance plan for details."
)
SPLIT_SHARES = ((60.0, 40.0), (50.0, 50.0), (70.0, 30.0), (80.0, 20.0))

BILL_TO_ADDRESSES = tuple(Address((street,), city, state, postal, "United States", "US", code)
                          for code, street, city, state, postal in BILL_TO)
SHIP_TO_ADDRESSES = tuple(Address((street,), city, state, postal, "United States", "US", code)
                          for code, street, city, state, postal in SHIP_TO)
PEOPLE = tuple(Person(u, f, last, f"{u}@buyer.example") for u, f, last in REQUESTORS)


@dataclass
class Generator:
    """Makes records for one tenant store; also used by the admin endpoint to create new ones."""

    store: TenantStore
    rng: random.Random
    dirty_rate: float = 0.0
    _splits: dict[tuple, tuple[Split, ...]] = field(default_factory=dict)
    _trade_of: dict[int, int] = field(default_factory=dict)

    # -- suppliers -----------------------------------------------------------------------------

    def supplier(self, index: int, registration_ms: int, last_ms: int) -> Supplier:
        rng = self.rng
        trade = index % len(TRADES)
        stem = NAME_STEMS[(index * 7) % len(NAME_STEMS)]
        tail = NAME_TAILS[(index // len(NAME_STEMS)) % len(NAME_TAILS)]
        city, state, postal, _country, iso, currency, legal = PLACES[0 if rng.random() < 0.6 else rng.randrange(len(PLACES))]
        name = f"{stem} {TRADES[trade][0]}{tail}"
        slug = "".join(ch for ch in f"{stem}{TRADES[trade][0]}".lower() if ch.isalnum())
        duns = f"{rng.randrange(10**8, 10**9):09d}" if rng.random() < 0.55 else ""
        ext_code = f"V{10000 + index * 10}"
        if self._dirty():
            ext_code = f"{ext_code}-LEGACY-{index:04d}"  # wart: longer than B1's 15-char CardCode
        if iso == "US":
            fiscal, vat = f"{rng.randrange(10, 99)}-{rng.randrange(10**6, 10**7)}", ""
        elif iso in ("DE", "GB"):
            vat = f"{iso}{rng.randrange(10**8, 10**9)}"
            fiscal = vat
        else:
            fiscal, vat = f"{rng.randrange(10**8, 10**9)}RT0001", ""
        phone_cc = {"US": "+1", "CA": "+1", "DE": "+49", "GB": "+44"}.get(iso, "+1")
        info = {
            "companyName": name,
            "type": "SELLER",
            "status": "ACTIVE" if rng.random() < 0.97 else "INACTIVE",
            "extCode": ext_code,
            "extUniqueCode": duns,
            "dAndBCode": duns,
            "fiscalCode": fiscal,
            "euVat": vat,
            "bizLegalStruct": legal,
            "bizEmail": f"orders@{slug}.example",
            "bizPhone": f"{phone_cc} {rng.randrange(200, 999)} 555 {rng.randrange(100, 999):04d}",
            "bizFax": "",
            "webSite": f"https://{slug}.example",
            "address": f"{rng.randrange(10, 9900)} {rng.choice(STREETS)}",
            "zip": postal,
            "city": city,
            "province": state,
            "isoCountry": iso,
            "currency": currency,
            "standardPaymentTermsCode": rng.choice(tuple(PAYMENT_TERMS)) if rng.random() < 0.4 else "Net 30",
        }
        first, last = rng.choice(("Alex", "Sam", "Chris", "Pat", "Jordan")), rng.choice(("Miller", "Brown", "Weber", "Smith"))
        user = Person(f"{slug[:10]}.{first.lower()}", first, last, f"{first.lower()}.{last.lower()}@{slug}.example")
        supplier = Supplier(self.store.next_id("supplier"), info, registration_ms, last_ms, self.store.next_id("remit"), user)
        self._trade_of[supplier.id] = trade
        return supplier

    def buyer_company(self, registration_ms: int) -> Supplier:
        info = {
            "companyName": "Demo Manufacturing Co.", "type": "BUYER", "status": "ACTIVE", "extCode": "",
            "extUniqueCode": "", "dAndBCode": "", "fiscalCode": "34-5550101", "euVat": "", "bizLegalStruct": "Corporation",
            "bizEmail": "procurement@buyer.example", "bizPhone": "+1 419 555 0100", "bizFax": "",
            "webSite": "https://buyer.example", "address": "1 Works Rd", "zip": "43604", "city": "Toledo",
            "province": "OH", "isoCountry": "US", "currency": "USD", "standardPaymentTermsCode": "Net 30",
        }
        return Supplier(self.store.next_id("supplier"), info, registration_ms, registration_ms, 0,
                        Person("admin", "Procurement", "Admin", "procurement@buyer.example"))

    def commodities_of(self, supplier_id: int) -> tuple[str, ...]:
        trade = self._trade_of.get(supplier_id)
        if trade is None:
            trade = supplier_id % len(TRADES)
        return TRADES[trade][1]

    # -- order lines ---------------------------------------------------------------------------

    def _dirty(self) -> bool:
        return self.dirty_rate > 0 and self.rng.random() < self.dirty_rate

    def splits_for(self, commodity: str, cost_centre: str | None = None, account: str | None = None,
                   allow_split: bool = True) -> tuple[Split, ...]:
        rng = self.rng
        info = COMMODITIES[commodity]
        account = account or info.account
        blank_project = rng.random() < 0.15
        if allow_split and cost_centre is None and len(info.cost_centres) > 1 and rng.random() < 0.1:
            first, second = rng.sample(info.cost_centres, 2)
            share = rng.choice(SPLIT_SHARES)
            key: tuple = (account, first, second, share, blank_project)
            parts = (Split(account, first, share[0], blank_project), Split(account, second, share[1], blank_project))
        else:
            cc = cost_centre or rng.choice(info.cost_centres)
            key = (account, cc, blank_project)
            parts = (Split(account, cc, 100.0, blank_project),)
        return self._splits.setdefault(key, parts)

    def order_line(self, number: int, item: CatalogItem, order_ms: int, ship_to: Address,
                   qty: float | None = None, price: float | None = None, business_unit: str = "0001") -> OrderLine:
        rng = self.rng
        if qty is None:
            qty = rng.randint(item.qty_low, item.qty_high)
            if item.uom == "KG":
                qty = max(10, round(qty, -1))
        if price is None:
            price = round(rng.uniform(item.price_low, item.price_high), 2)
        splits = self.splits_for(item.commodity)
        description = None
        if self._dirty():
            if rng.random() < 0.5:
                splits = tuple(s._replace(account=UNKNOWN_ACCOUNT[0]) for s in splits)
            else:
                description = LONG_DESCRIPTION_WART
        taxable = item.product_type == "CatalogItem" and rng.random() < 0.25
        return OrderLine(
            self.store.next_id("po_line"), number, item, float(qty), float(price),
            order_ms + rng.randint(5, 30) * DAY_MS, taxable,
            ship_to if rng.random() < 0.75 else None, splits, business_unit, description=description,
        )

    def order(self, supplier: Supplier, create_ms: int, n_lines: int | None = None, workflow: str = "Completed") -> PurchaseOrder:
        rng = self.rng
        commodities = self.commodities_of(supplier.id)
        ship_to = rng.choice(SHIP_TO_ADDRESSES)
        order_ms = create_ms - create_ms % DAY_MS
        business_unit = BUSINESS_UNITS[0] if rng.random() < 0.8 else BUSINESS_UNITS[1]
        if n_lines is None:
            n_lines = rng.choices((1, 2, 3, 4, 5, 6), cum_weights=(15, 40, 65, 83, 93, 100))[0]
        lines = []
        for number in range(1, n_lines + 1):
            item = rng.choice(ITEMS_BY_COMMODITY[rng.choice(commodities)])
            lines.append(self.order_line(number, item, order_ms, ship_to, business_unit=business_unit))
        shipping = round(rng.uniform(15, 180), 2) if rng.random() < 0.2 else 0
        po = PurchaseOrder(
            self.store.next_id("po"), self.store.next_id("po_number"), create_ms, order_ms, business_unit,
            rng.choice(PEOPLE), supplier.ref, BILL_TO_ADDRESSES[0], ship_to, lines, workflow=workflow,
            note=f"Deliver to {ship_to.code.split('-')[0].lower()} receiving" if rng.random() < 0.3 else None,
            charges=(0, shipping, 0, 0),
        )
        return po

    # -- invoices ------------------------------------------------------------------------------

    def invoice_from_order(self, po: PurchaseOrder, create_ms: int, quantities: dict[int, float],
                           prices: dict[int, float] | None = None, invoice_type: str = "Invoice") -> Invoice:
        """An invoice billing `quantities` (order line number -> quantity) of `po`."""
        prices = prices or {}
        lines: list[InvoiceLine] = []
        by_number = {line.number: line for line in po.lines}
        for number, qty in quantities.items():
            ol = by_number[number]
            price = prices.get(number, ol.price)
            lines.append(InvoiceLine(
                0, len(lines) + 1, ol.description or ol.item.description, ol.item.uom, "NonCatalogItem",
                po.po_number, ol.number, qty, price, ol.taxable, ol.splits, ol.business_unit,
                ol.ship_to or po.ship_to,
                tolerance="Exact" if price == ol.price else "Out of Tolerance",
                po_match="Fully Matched" if abs(qty) >= ol.qty else "Partially Matched",
            ))
        inv = self._invoice(po.supplier, create_ms, lines, invoice_type, po.business_unit, po.order_ms)
        inv.po_id = po.id
        inv.match_status = "Matched" if all(line.tolerance == "Exact" for line in lines) else "Unmatched"
        return inv

    def non_po_invoice(self, supplier: Supplier, create_ms: int, n_lines: int | None = None) -> Invoice:
        rng = self.rng
        commodities = self.commodities_of(supplier.id)
        lines = []
        for number in range(1, (n_lines or rng.randint(1, 3)) + 1):
            item = rng.choice(ITEMS_BY_COMMODITY[rng.choice(commodities)])
            qty = float(rng.randint(item.qty_low, max(item.qty_low, item.qty_high // 4)))
            price = round(rng.uniform(item.price_low, item.price_high), 2)
            splits = self.splits_for(item.commodity, allow_split=False)
            description = item.description
            if self._dirty():
                if rng.random() < 0.5:
                    splits = tuple(s._replace(account=UNKNOWN_ACCOUNT[0]) for s in splits)
                else:
                    description = LONG_DESCRIPTION_WART
            lines.append(InvoiceLine(0, number, description, item.uom, "NonCatalogItem", None, None, qty, price,
                                     False, splits, "0001", BILL_TO_ADDRESSES[0]))
        inv = self._invoice(supplier.ref, create_ms, lines, "Invoice", "0001", create_ms - 30 * DAY_MS)
        inv.match_status = "Do Not Match"
        inv.source = "Form Request" if rng.random() < 0.6 else "Manual"
        return inv

    def credit_memo(self, original: Invoice, create_ms: int) -> Invoice:
        """Credits part of one line of `original` (same supplier, negative quantity)."""
        rng = self.rng
        src = rng.choice(original.lines)
        qty = -max(1.0, float(int(abs(src.qty) * rng.uniform(0.1, 0.5))))
        line = InvoiceLine(0, 1, src.description, src.uom, src.product_type, src.po_number, src.po_line, qty,
                           src.price, src.taxable, src.splits, src.business_unit, src.ship_to,
                           po_match="Partially Matched")
        inv = self._invoice(original.supplier, create_ms, [line], "Credit memo", original.business_unit, original.invoice_ms)
        inv.po_id = original.po_id
        inv.match_status = original.match_status if src.po_number else "Do Not Match"
        return inv

    def _invoice(self, supplier_ref, create_ms: int, lines: list[InvoiceLine], invoice_type: str,
                 business_unit: str | None, not_before_ms: int) -> Invoice:
        rng = self.rng
        invoice_ms = max(not_before_ms - not_before_ms % DAY_MS, create_ms - create_ms % DAY_MS - rng.randint(0, 3) * DAY_MS)
        clerk = rng.choice(AP_CLERKS)
        prefix = "CM-" if invoice_type == "Credit memo" else "INV-"
        inv = Invoice(0, 0, supplier_ref, create_ms, invoice_ms, lines, clerk, BILL_TO_ADDRESSES[0],
                      lines[0].ship_to if lines else BILL_TO_ADDRESSES[0],
                      f"{prefix}{rng.randrange(10000, 99999)}", "", type=invoice_type,
                      source=rng.choices(("Manual", "Form Request", "Automated"), cum_weights=(55, 90, 100))[0],
                      business_unit=business_unit)
        # Rare omissions seen in the real samples (missing keys, not warts).
        if rng.random() < 0.015:
            inv.supplier_invoice_number = None
        if rng.random() < 0.08:
            inv.business_unit = None
        inv.invoiced_by_bu = rng.random() >= 0.03
        if rng.random() < 0.06:
            inv.early_payment = None
        if rng.random() < 0.01:
            inv.has_total = False
        if rng.random() < 0.09:
            inv.withholding = 0
        inv.supplier_tax = rng.random() < 0.2
        return inv

    def assign_invoice_ids(self, inv: Invoice) -> None:
        inv.id = self.store.next_id("invoice")
        inv.number = self.store.next_id("invoice_number")
        from simulators.jaggaer.render import day

        inv.name = f"{day(inv.create_ms)[:10]} {inv.invoiced_by} {inv.number % 100:02d}"
        for line in inv.lines:
            line.id = self.store.next_id("invoice_line")


def seed_tenant(store: TenantStore, n_orders: int, random_seed: int | None = None, history_days: float = 30,
                dirty_rate: float = 0.0) -> Generator:
    """Fill an empty `store` with `n_orders` purchase orders and suppliers and invoices in proportion."""
    rng = random.Random(random_seed)
    gen = Generator(store, rng, dirty_rate)
    now = store.clock.now_ms()
    span = max(0, int(history_days * DAY_MS))
    start = now - span

    def stamp_between(low: int, high: int) -> int:
        return low if high <= low else rng.randint(low, high)

    # Suppliers: registered long ago; about 60 % changed inside the history window.
    buyer = gen.buyer_company(start - 3000 * DAY_MS)
    n_suppliers = max(6, n_orders // 40)
    suppliers = []
    for index in range(n_suppliers):
        reg = start - rng.randint(30, 2500) * DAY_MS if span else now
        last = stamp_between(start, now) if rng.random() < 0.6 or not span else stamp_between(reg, start)
        suppliers.append(gen.supplier(index, reg, last))
    store.suppliers.extend_sorted([buyer, *suppliers])
    sellers = [s for s in suppliers if s.info["status"] == "ACTIVE"] or suppliers
    cum_weights = []
    total = 0.0
    for i in range(len(sellers)):
        total += 1.0 / (i + 1) ** 0.7
        cum_weights.append(total)

    # Orders, in creation order so ids grow with time.
    creates = sorted(stamp_between(start, now) for _ in range(n_orders))
    orders: list[PurchaseOrder] = []
    plans: list[tuple[int, int, object]] = []  # (create_ms, tie, builder)
    recent = now - 2 * DAY_MS
    for create_ms in creates:
        supplier = rng.choices(sellers, cum_weights=cum_weights)[0]
        pending = (create_ms > now - DAY_MS and rng.random() < 0.25) or rng.random() < 0.01
        po = gen.order(supplier, create_ms, workflow="Pending" if pending else "Completed")
        po.last_ms = min(now, create_ms + int(rng.random() ** 3 * 2 * DAY_MS)) if span else now
        orders.append(po)
        if pending:
            continue
        if rng.random() < 0.02:
            po.status = "Cancelled"
            for line in po.lines:
                line.status = "Cancelled"
            continue
        _plan_invoices(gen, po, now, span, plans)
    store.orders.extend_sorted(orders)

    # Invoices without an order.
    for _ in range(n_orders // 10):
        create_ms = stamp_between(start, now)
        supplier = rng.choices(sellers, cum_weights=cum_weights)[0]
        plans.append((create_ms, len(plans), ("nonpo", supplier)))

    plans.sort(key=lambda p: (p[0], p[1]))
    invoices: list[Invoice] = []
    memo_plans: list[tuple[int, Invoice]] = []
    for create_ms, _tie, plan in plans:
        kind = plan[0]
        if kind == "po":
            _, po, quantities, prices = plan
            inv = gen.invoice_from_order(po, create_ms, quantities, prices)
        else:
            inv = gen.non_po_invoice(plan[1], create_ms)
        invoices.append(inv)
        if rng.random() < 0.02:
            memo_ms = create_ms + rng.randint(1, 10) * DAY_MS if span else create_ms
            if memo_ms <= now:
                memo_plans.append((memo_ms, inv))
    for memo_ms, original in memo_plans:
        invoices.append(gen.credit_memo(original, memo_ms))
    invoices.sort(key=lambda inv: inv.create_ms)
    for inv in invoices:
        gen.assign_invoice_ids(inv)
        inv.last_ms = min(now, inv.create_ms + int(rng.random() ** 2 * 12 * HOUR_MS)) if span else now
        if inv.create_ms > recent and rng.random() < 0.3:
            inv.workflow = "Pending"
            inv.payment_status = "InProcess"
        elif rng.random() < 0.02:
            inv.payment_status = "InProcess"
    store.invoices.extend_sorted(invoices)
    store.note_seed_stamp(now)
    return gen


def _plan_invoices(gen: Generator, po: PurchaseOrder, now: int, span: int, plans: list) -> None:
    """Decide how `po` is billed: full, partial (maybe completed later), price variance, or not yet."""
    rng = gen.rng
    delay = int(rng.uniform(0.02, 0.6) * min(span, 40 * DAY_MS))
    first_ms = po.create_ms + delay
    if first_ms > now:
        return
    roll = rng.random()
    full = {line.number: line.qty for line in po.lines}
    if roll < 0.55:
        plans.append((first_ms, len(plans), ("po", po, full, None)))
        last_ms = first_ms
    elif roll < 0.78:
        part = {n: max(1.0, float(int(q * rng.uniform(0.3, 0.7)))) if q > 1 else q for n, q in full.items()}
        if len(part) > 1 and rng.random() < 0.4:
            part.pop(rng.choice(list(part)))
        plans.append((first_ms, len(plans), ("po", po, part, None)))
        last_ms = first_ms
        second_ms = first_ms + int(rng.uniform(0.1, 0.5) * min(span, 20 * DAY_MS))
        rest = {n: round(q - part.get(n, 0), 2) for n, q in full.items() if q - part.get(n, 0) > 0}
        if rest and second_ms <= now and rng.random() < 0.6:
            plans.append((second_ms, len(plans), ("po", po, rest, None)))
            last_ms = second_ms
        else:
            return
    elif roll < 0.86:
        number = rng.choice(list(full))
        price = next(line.price for line in po.lines if line.number == number)
        variance = round(price * (1 + rng.choice((-1, 1)) * rng.uniform(0.02, 0.12)), 2)
        plans.append((first_ms, len(plans), ("po", po, full, {number: variance})))
        last_ms = first_ms
    else:
        return
    if span and last_ms < now - 7 * DAY_MS and rng.random() < 0.6:
        po.status = "Closed"
        for line in po.lines:
            line.status = "Closed"
        po.last_ms = max(po.last_ms, min(now, last_ms + rng.randint(1, 48) * HOUR_MS))
