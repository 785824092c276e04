"""Changes to a tenant's data: company-profile update (§6.3) and the admin create/modify operations.

Every change that alters something moves the record's last-modified stamp (`store.stamp()`); a
change that alters nothing leaves it alone (§4.5). Change keys are the API's field names
(`workflowStatus`, `lines`, ...); snake_case spellings (`workflow_status`) are accepted too.
"""

from __future__ import annotations

import re
from typing import Any

from simulators.jaggaer.catalog import COMMODITIES, ITEMS, ITEMS_BY_COMMODITY, PAYMENT_TERMS
from simulators.jaggaer.fiql import parse_timestamp
from simulators.jaggaer.generator import Generator
from simulators.jaggaer.store import (
    COMPANY_FIELDS,
    DAY_MS,
    Invoice,
    InvoiceLine,
    OrderLine,
    PurchaseOrder,
    Split,
    Supplier,
    TenantStore,
)

READ_ONLY = {"bravoId", "type", "registrationDate", "lastModTime"}
USER_FIELDS = {"userAlias", "userName", "userSurName", "userEmail", "userPhone", "userFax", "userMobPhone",
               "userExtCode", "userBusinessUnitCode", "userDivisionCode", "ssoCodeData"}
UPDATABLE = set(COMPANY_FIELDS) - {"type"}


class InvalidField(ValueError):
    """`Invalid value for field <name>`."""

    def __init__(self, name: str) -> None:
        super().__init__(f"Invalid value for field {name}")
        self.field = name


class NotFound(KeyError):
    def __init__(self, kind: str, id: Any) -> None:
        super().__init__(f"{kind} not found: {id}")
        self.kind = kind
        self.id = id

    def __str__(self) -> str:
        return self.args[0]


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def normalise(changes: dict[str, Any]) -> dict[str, Any]:
    return {camel(k): v for k, v in changes.items()}


# -- company profiles ---------------------------------------------------------------------------


def _validate_company_value(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise InvalidField(name)
    if value == "":
        if name == "companyName":
            raise InvalidField(name)
        return value
    checks = {
        "isoCountry": lambda v: re.fullmatch(r"[A-Z]{2}", v),
        "currency": lambda v: re.fullmatch(r"[A-Z]{3}", v),
        "bizEmail": lambda v: "@" in v,
        "standardPaymentTermsCode": lambda v: v in PAYMENT_TERMS,
        "status": lambda v: v in ("ACTIVE", "INACTIVE"),
    }
    check = checks.get(name)
    if check is not None and not check(value):
        raise InvalidField(name)
    return value


def company_changes(info: dict[str, Any]) -> tuple[dict[str, str], list[str]]:
    """Validated new values (absent/null = unchanged, "" = clear) and the unknown keys, or InvalidField."""
    new: dict[str, str] = {}
    unknown: list[str] = []
    for name, value in info.items():
        if name in READ_ONLY or name in USER_FIELDS:
            continue
        if name not in UPDATABLE:
            unknown.append(name)
            continue
        if value is None:
            continue
        new[name] = _validate_company_value(name, value)
    return new, unknown


def update_company(store: TenantStore, supplier: Supplier, new: dict[str, str]) -> bool:
    """Apply validated values; True when something changed (and the stamp moved)."""
    changed = {k: v for k, v in new.items() if supplier.info.get(k) != v}
    if not changed:
        return False
    supplier.info.update(changed)
    supplier.last_ms = store.stamp()
    supplier.ref = supplier.snapshot()
    store.suppliers.touch()
    return True


def create_company(store: TenantStore, new: dict[str, str], company_type: str = "SELLER") -> Supplier:
    if not new.get("companyName"):
        raise ValueError("Missing mandatory field: companyName")
    now = store.stamp()
    info = {name: "" for name in COMPANY_FIELDS}
    info.update({"type": company_type, "status": "ACTIVE", "currency": "USD", "standardPaymentTermsCode": "Net 30"})
    info.update(new)
    supplier = Supplier(store.next_id("supplier"), info, now, now, store.next_id("remit"))
    store.suppliers.add(supplier)
    return supplier


def get_supplier(store: TenantStore, bravo_id: Any) -> Supplier:
    try:
        supplier = store.suppliers.get(int(bravo_id))
    except (TypeError, ValueError):
        supplier = None
    if supplier is None:
        raise NotFound("Company", bravo_id)
    return supplier


# -- purchase orders -----------------------------------------------------------------------------


def get_order(store: TenantStore, po_id: Any) -> PurchaseOrder:
    try:
        po = store.orders.get(int(po_id))
    except (TypeError, ValueError):
        po = None
    if po is None:
        raise NotFound("Purchase order", po_id)
    return po


def _item_for(gen: Generator, spec: dict[str, Any], commodities: tuple[str, ...]):
    spec = normalise(spec)
    item = None
    if spec.get("catalogNumber"):
        item = next((i for i in ITEMS if i.catalog_number == spec["catalogNumber"]), None)
    if item is None and spec.get("commodityCode"):
        code = spec["commodityCode"]
        if code not in COMMODITIES:
            raise InvalidField("commodityCode")
        item = gen.rng.choice(ITEMS_BY_COMMODITY[code])
    if item is None:
        item = gen.rng.choice(ITEMS_BY_COMMODITY[gen.rng.choice(commodities)])
    if spec.get("unitOfMeasure"):
        item = item._replace(uom=str(spec["unitOfMeasure"]))
    return item, spec


def _splits(gen: Generator, commodity: str, spec: dict[str, Any], current: tuple[Split, ...] | None = None) -> tuple[Split, ...]:
    account, cost_centre = spec.get("account"), spec.get("costCenter")
    if account is None and cost_centre is None:
        return current if current is not None else gen.splits_for(commodity)
    base = current[0] if current else gen.splits_for(commodity, allow_split=False)[0]
    return (Split(str(account or base.account), str(cost_centre or base.cost_centre), 100.0, base.blank_project),)


def _new_order_line(gen: Generator, po: PurchaseOrder, spec: dict[str, Any], number: int) -> OrderLine:
    item, spec = _item_for(gen, spec, gen.commodities_of(po.supplier.id))
    line = gen.order_line(number, item, po.order_ms, po.ship_to,
                          qty=_number(spec, "quantity"), price=_number(spec, "unitPrice"), business_unit=po.business_unit)
    line.splits = _splits(gen, item.commodity, spec, line.splits if "account" not in spec and "costCenter" not in spec else None)
    if spec.get("description"):
        line.description = str(spec["description"])
    return line


def _number(spec: dict[str, Any], name: str) -> float | None:
    value = spec.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidField(name)
    return float(value)


def create_order(store: TenantStore, gen: Generator, supplier_id: Any = None, lines: list[dict] | None = None,
                 n_lines: int | None = None, workflow_status: str = "Completed", note: str | None = None) -> PurchaseOrder:
    if supplier_id is None:
        supplier = gen.rng.choice(store.active_suppliers())
    else:
        supplier = get_supplier(store, supplier_id)
    now = store.stamp()
    if workflow_status not in ("Pending", "Completed"):
        raise InvalidField("workflowStatus")
    po = gen.order(supplier, now, n_lines=len(lines) if lines else n_lines, workflow=workflow_status)
    po.note = note if note is not None else po.note
    if lines:
        po.lines = [_new_order_line(gen, po, spec, i + 1) for i, spec in enumerate(lines)]
        po.next_line = len(po.lines) + 1
    po.last_ms = now
    store.orders.add(po)
    return po


def change_order(store: TenantStore, gen: Generator, po_id: Any, changes: dict[str, Any]) -> PurchaseOrder:
    """Apply header/line changes; line or amount changes make a change order (revision + 1)."""
    po = get_order(store, po_id)
    changes = normalise(changes)
    revision = False
    changed = False
    status = changes.pop("poStatus", None)
    if "workflowStatus" in changes:
        value = changes.pop("workflowStatus")
        if value not in ("Pending", "Completed"):
            raise InvalidField("workflowStatus")
        if value != po.workflow:
            po.workflow, changed = value, True
    if "note" in changes:
        value = changes.pop("note")
        if value != po.note:
            po.note, changed = value, True
    charge_names = ("taxCharge2", "shippingCharge", "handlingCharge", "discountAmount")
    charges = list(po.charges)
    for i, name in enumerate(charge_names):
        if name in changes:
            value = _number(changes, name)
            changes.pop(name)
            if value is not None and value != charges[i]:
                charges[i], revision = value, True
    po.charges = tuple(charges)  # type: ignore[assignment]
    by_number = {line.number: line for line in po.lines}
    for spec in changes.pop("lines", None) or []:
        spec = normalise(spec)
        line = by_number.get(spec.get("lineNumber"))  # type: ignore[arg-type]
        if line is None:
            raise InvalidField("lineNumber")
        revision |= _change_order_line(gen, line, spec)
    for spec in changes.pop("addLines", None) or []:
        po.lines.append(_new_order_line(gen, po, spec, po.next_line))
        po.next_line += 1
        revision = True
    if changes:
        raise InvalidField(sorted(changes)[0])
    if revision:
        po.revision += 1
    if revision or changed:
        po.last_ms = store.stamp()
        store.orders.touch()
    if status == "Closed":
        close_order(store, po.id)
    elif status == "Cancelled":
        cancel_order(store, po.id)
    elif status not in (None, po.status):
        raise InvalidField("poStatus")
    return po


def _change_order_line(gen: Generator, line: OrderLine, spec: dict[str, Any]) -> bool:
    before = (line.qty, line.price, line.description, line.splits, line.delivery_ms, line.status)
    if "quantity" in spec:
        line.qty = _number(spec, "quantity") or 0.0
    if "unitPrice" in spec:
        line.price = _number(spec, "unitPrice") or 0.0
    if "description" in spec:
        line.description = spec["description"]
    if "account" in spec or "costCenter" in spec:
        line.splits = _splits(gen, line.item.commodity, spec, line.splits)
    if "requestedDeliveryDate" in spec:
        try:
            ms = parse_timestamp(str(spec["requestedDeliveryDate"]))
        except ValueError:
            raise InvalidField("requestedDeliveryDate") from None
        line.delivery_ms = ms - ms % DAY_MS
    if "lineStatus" in spec:
        if spec["lineStatus"] not in ("Open", "Closed", "Cancelled"):
            raise InvalidField("lineStatus")
        line.status = spec["lineStatus"]
    return before != (line.qty, line.price, line.description, line.splits, line.delivery_ms, line.status)


def _set_order_status(store: TenantStore, po_id: Any, status: str) -> PurchaseOrder:
    po = get_order(store, po_id)
    if po.status == status:
        return po
    po.status = status
    for line in po.lines:
        if line.status == "Open":
            line.status = status
    po.last_ms = store.stamp()
    store.orders.touch()
    return po


def close_order(store: TenantStore, po_id: Any) -> PurchaseOrder:
    return _set_order_status(store, po_id, "Closed")


def cancel_order(store: TenantStore, po_id: Any) -> PurchaseOrder:
    return _set_order_status(store, po_id, "Cancelled")


# -- invoices ------------------------------------------------------------------------------------


def get_invoice(store: TenantStore, invoice_id: Any) -> Invoice:
    try:
        inv = store.invoices.get(int(invoice_id))
    except (TypeError, ValueError):
        inv = None
    if inv is None:
        raise NotFound("Invoice", invoice_id)
    return inv


def invoiced_quantities(store: TenantStore, po: PurchaseOrder) -> dict[int, float]:
    done: dict[int, float] = {}
    for inv in store.invoices.ordered:
        if inv.po_id == po.id:
            for line in inv.lines:
                if line.po_line is not None:
                    done[line.po_line] = done.get(line.po_line, 0.0) + line.qty
    return done


def create_invoice(store: TenantStore, gen: Generator, po_id: Any = None, lines: list[dict] | None = None,
                   supplier_id: Any = None, invoice_type: str = "Invoice", workflow_status: str = "Completed",
                   supplier_invoice_number: str | None = None) -> Invoice:
    """An invoice against an order (default: its uninvoiced quantities) or, without `po_id`, a non-PO one."""
    if invoice_type not in ("Invoice", "Credit memo"):
        raise InvalidField("invoiceType")
    if workflow_status not in ("Pending", "Completed"):
        raise InvalidField("workflowStatus")
    now = store.stamp()
    sign = -1.0 if invoice_type == "Credit memo" else 1.0
    if po_id is not None:
        po = get_order(store, po_id)
        if lines:
            quantities, prices = {}, {}
            numbers = {line.number for line in po.lines}
            for spec in lines:
                spec = normalise(spec)
                number = int(spec.get("poLineNumber", 0))
                if number not in numbers:
                    raise InvalidField("poLineNumber")
                qty = _number(spec, "quantity")
                quantities[number] = qty if qty is not None else next(o.qty for o in po.lines if o.number == number)
                if spec.get("unitPrice") is not None:
                    prices[number] = _number(spec, "unitPrice")
        else:
            done = invoiced_quantities(store, po)
            quantities = {line.number: round(line.qty - done.get(line.number, 0.0), 4) for line in po.lines
                          if line.status != "Cancelled" and line.qty - done.get(line.number, 0.0) > 0}
            quantities = quantities or {line.number: line.qty for line in po.lines}
            prices = {}
        quantities = {n: sign * abs(q) for n, q in quantities.items()}
        inv = gen.invoice_from_order(po, now, quantities, prices, invoice_type)  # type: ignore[arg-type]
    else:
        supplier = get_supplier(store, supplier_id) if supplier_id is not None else gen.rng.choice(store.active_suppliers())
        inv = gen.non_po_invoice(supplier, now, n_lines=len(lines) if lines else None)
        inv.type = invoice_type
        for line, spec in zip(inv.lines, lines or [], strict=False):
            _change_invoice_line(gen, line, normalise(spec))
        for line in inv.lines:
            line.qty = sign * abs(line.qty)
    inv.workflow = workflow_status
    inv.payment_status = "Payable" if workflow_status == "Completed" else "InProcess"
    if supplier_invoice_number is not None:
        inv.supplier_invoice_number = supplier_invoice_number
    # Admin-created invoices carry every optional key (tests want a predictable shape).
    inv.has_total, inv.business_unit = True, inv.business_unit or "0001"
    gen.assign_invoice_ids(inv)
    inv.last_ms = now
    store.invoices.add(inv)
    return inv


def _change_invoice_line(gen: Generator, line: InvoiceLine, spec: dict[str, Any]) -> bool:
    before = (line.qty, line.price, line.description, line.splits)
    if "quantity" in spec:
        line.qty = _number(spec, "quantity") or 0.0
    if "unitPrice" in spec:
        line.price = _number(spec, "unitPrice") or 0.0
    if spec.get("description"):
        line.description = str(spec["description"])
    if "account" in spec or "costCenter" in spec:
        base = line.splits[0]
        line.splits = (Split(str(spec.get("account") or base.account), str(spec.get("costCenter") or base.cost_centre),
                             100.0, base.blank_project),)
    return before != (line.qty, line.price, line.description, line.splits)


INVOICE_HEADER_CHANGES = {
    "workflowStatus": ("workflow", ("Pending", "Completed")),
    "paymentStatus": ("payment_status", ("Payable", "InProcess", "Paid")),
    "matchStatus": ("match_status", ("Matched", "Unmatched", "Do Not Match")),
    "supplierInvoiceNumber": ("supplier_invoice_number", None),
    "invoiceName": ("name", None),
}


def change_invoice(store: TenantStore, gen: Generator, invoice_id: Any, changes: dict[str, Any]) -> Invoice:
    inv = get_invoice(store, invoice_id)
    changes = normalise(changes)
    changed = False
    for name, (attr, allowed) in INVOICE_HEADER_CHANGES.items():
        if name in changes:
            value = changes.pop(name)
            if (allowed is not None and value not in allowed) or not isinstance(value, str):
                raise InvalidField(name)
            if getattr(inv, attr) != value:
                setattr(inv, attr, value)
                changed = True
    by_number = {line.number: line for line in inv.lines}
    for spec in changes.pop("lines", None) or []:
        spec = normalise(spec)
        line = by_number.get(spec.get("lineNumber"))  # type: ignore[arg-type]
        if line is None:
            raise InvalidField("lineNumber")
        changed |= _change_invoice_line(gen, line, spec)
    if changes:
        raise InvalidField(sorted(changes)[0])
    if changed:
        inv.last_ms = store.stamp()
        store.invoices.touch()
    return inv
