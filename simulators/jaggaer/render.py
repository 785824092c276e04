"""Render stored records into the J1P JSON shapes (reference §5, §6, §7).

Key order follows the real UCLA samples. Missing data is omitted, never `null` (§4.7).
"""

from __future__ import annotations

import hashlib
import time
import uuid
from typing import Any

from simulators.jaggaer.catalog import (
    ACCOUNTS,
    COST_CENTRES,
    PAYMENT_TERMS,
    TAX_CODES,
    TAX_RATE,
    UNKNOWN_ACCOUNT,
)
from simulators.jaggaer.store import (
    DAY_MS,
    Address,
    Invoice,
    InvoiceLine,
    OrderLine,
    PurchaseOrder,
    Split,
    Supplier,
    SupplierRef,
)

ALT_UOM_TYPES = ("system", "buyer", "supplier")


def ts(ms: int) -> str:
    """`2024-02-14T19:58:56.973Z`."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + f".{ms % 1000:03d}Z"


def day(ms: int) -> str:
    """A calendar date as midnight UTC: `2024-02-14T00:00:00.000Z`."""
    return time.strftime("%Y-%m-%dT00:00:00.000Z", time.gmtime(ms // 1000))


def num(value: float) -> int | float:
    """Money and quantities: 2 decimals, integral values as JSON integers (as the samples)."""
    value = round(value, 2)
    return int(value) if value == int(value) else value


def money(currency: str, value: float) -> dict[str, Any]:
    return {"currency": currency, "value": num(value)}


def sbool(flag: bool) -> str:
    return "true" if flag else "false"


def address(a: Address, with_code: bool = True, blank_lines: int = 0) -> dict[str, Any]:
    lines: list[dict[str, Any]] = [{"lineNumber": i + 1, "addressLine": text} for i, text in enumerate(a.lines)]
    lines.extend({"lineNumber": len(a.lines) + i + 1} for i in range(blank_lines))
    out: dict[str, Any] = {
        "addressLineList": {"addressLine": lines},
        "city": a.city,
        "state": a.state,
        "postalCode": a.postal_code,
        "country": a.country,
        "isoCountryCode": a.iso_country,
    }
    if with_code and a.code:
        out["addressCode"] = a.code
    return out


def supplier_block(ref: SupplierRef, detail: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"id": ref.id, "name": ref.name, "supplierNumber": ref.number}
    if ref.duns:
        out["duns"] = ref.duns
    if detail:
        out["contactInfoList"] = {"contactInfo": [{"type": "main", "address": address(ref.address, with_code=False)}]}
    return out


def terms(code: str) -> dict[str, Any]:
    percent, days, net = PAYMENT_TERMS.get(code, (0, 0, 30))
    return {
        "discount": {"percent": num(percent)} if percent else {},
        "days": days,
        "type": "Net",
        "daysAfter": net,
        "standardPaymentTermsCode": code,
    }


def attachments() -> dict[str, Any]:
    return {"attachmentList": {"attachment": []}}


def custom_set(name: str, label: str, value: str | None = None, description: str | None = None) -> dict[str, Any]:
    entry: dict[str, Any] = {}
    if value is not None:
        entry["value"] = value
    if description is not None:
        entry["description"] = description
    return {"name": name, "label": label, "customFieldValueList": {"customFieldValue": [entry]}}


def tax_code_set(taxable: bool) -> dict[str, Any]:
    code = "TX" if taxable else "EX"
    return custom_set("TaxCode", "Tax Code", code, TAX_CODES[code])


def account_name(account: str) -> str:
    if account == UNKNOWN_ACCOUNT[0]:
        return UNKNOWN_ACCOUNT[1]
    return ACCOUNTS.get(account, "")


def segments(split: Split) -> list[dict[str, Any]]:
    out = [
        {"internalName": "Account", "value": split.account, "description": account_name(split.account)},
        {"internalName": "CostCenter", "value": split.cost_centre, "description": COST_CENTRES.get(split.cost_centre, "")},
    ]
    if split.blank_project:
        out.append({"internalName": "Project"})
    return out


def splittable(splits: tuple[Split, ...]) -> dict[str, Any]:
    """`splittableFieldSetGroupList` of one group; split markers only when there are several shares."""
    if len(splits) == 1:
        index_set: dict[str, Any] = {
            "context": "Line",
            "splittableFieldIndexList": {"splittableFieldIndex": [{"customFieldValueList": {"customFieldValue": segments(splits[0])}}]},
        }
    else:
        index_set = {
            "context": "Line",
            "distributionType": "PercentOfPrice",
            "splittableFieldIndexList": {"splittableFieldIndex": [
                {"splitIndex": i, "distributionValue": num(s.percent), "customFieldValueList": {"customFieldValue": segments(s)}}
                for i, s in enumerate(splits)
            ]},
        }
    return {"splittableFieldSetGroup": [{"splittableFieldIndexSet": [index_set]}]}


def uom(dimension: str, alternates: bool = True) -> dict[str, Any]:
    return {
        "dimension": dimension,
        "alternateUnitOfMeasure": [{"type": t, "dimension": dimension} for t in ALT_UOM_TYPES] if alternates else [],
    }


# -- purchase orders -----------------------------------------------------------------------------


def line_amount(line: OrderLine) -> float:
    return round(line.qty * line.price, 2)


def line_tax(line: OrderLine | InvoiceLine) -> float:
    return round(line.qty * line.price * TAX_RATE, 2) if line.taxable else 0.0


def po_amounts(po: PurchaseOrder) -> tuple[float, float, float]:
    """(subtotal, taxCharge1, total); cancelled lines count for nothing."""
    live = [line for line in po.lines if line.status != "Cancelled"]
    subtotal = round(sum(line_amount(line) for line in live), 2)
    tax1 = round(sum(line_tax(line) for line in live), 2)
    tax2, shipping, handling, discount = po.charges
    return subtotal, tax1, round(subtotal + tax1 + tax2 + shipping + handling - discount, 2)


def po_header(po: PurchaseOrder, detail: bool) -> dict[str, Any]:
    subtotal, tax1, total = po_amounts(po)
    tax2, shipping, handling, discount = po.charges
    currency = po.supplier.currency
    order_day = day(po.order_ms)
    h: dict[str, Any] = {
        "purchaseOrderId": po.id,
        "poNumber": po.po_number,
        "revisionNumber": po.revision,
        "poStatus": po.status,
        "workflowStatus": po.workflow,
        "lastUpdate": ts(po.last_ms),
        "orderDate": order_day,
        "createDate": ts(po.create_ms),
        "accountingDate": order_day,
        "businessUnit": po.business_unit,
        "requestor": {
            "username": po.requestor.username,
            "firstName": po.requestor.first_name,
            "lastName": po.requestor.last_name,
            "email": po.requestor.email,
        },
        "supplier": supplier_block(po.supplier, detail),
    }
    if detail:
        h["billTo"] = {"address": address(po.bill_to)}
        h["shipTo"] = {"address": address(po.ship_to)}
        h["terms"] = terms(po.supplier.terms)
        h["freightOnBoard"] = "Destination"
    h["currency"] = currency
    h["subtotal"] = money(currency, subtotal)
    h["taxCharge1"] = num(tax1)
    h["taxCharge2"] = num(tax2)
    h["shippingCharge"] = num(shipping)
    h["handlingCharge"] = num(handling)
    h["discountAmount"] = num(discount)
    h["total"] = money(currency, total)
    if detail:
        h["customFieldValueSetList"] = {"customFieldValueSet": [custom_set("Buyer", "Buyer", po.requestor.username)]}
        external: dict[str, Any] = {}
        if po.note:
            external["note"] = po.note
        external.update(attachments())
        h["additionalInfo"] = {"externalInfo": external, "internalInfo": attachments()}
    return h


def po_line(line: OrderLine, po: PurchaseOrder) -> dict[str, Any]:
    item = line.item
    it: dict[str, Any] = {"description": line.description or item.description, "catalogNumber": item.catalog_number}
    if item.manufacturer:
        it["manufacturerName"] = item.manufacturer
    if item.manufacturer_part:
        it["manufacturerPartNumber"] = item.manufacturer_part
    it["commodityCode"] = item.commodity
    it["productType"] = item.product_type
    it["unitOfMeasure"] = uom(item.uom, alternates=item.product_type == "CatalogItem")
    out: dict[str, Any] = {
        "lineId": line.id,
        "lineNumber": line.number,
        "lineStatus": line.status,
        "item": it,
        "quantity": num(line.qty),
        "unitPrice": num(line.price),
        "extendedPrice": num(line_amount(line)),
        "requestedDeliveryDate": day(line.delivery_ms),
        "taxable": sbool(line.taxable),
        "capitalExpense": sbool(line.capex),
        "taxCharge1": num(line_tax(line)),
        "businessUnit": line.business_unit,
    }
    if line.ship_to is not None:
        out["shipTo"] = {"address": address(line.ship_to)}
        out["customFieldValueSetList"] = {"customFieldValueSet": [tax_code_set(line.taxable)]}
    out["splittableFieldSetGroupList"] = splittable(line.splits)
    return out


def purchase_order(po: PurchaseOrder) -> dict[str, Any]:
    return {"header": po_header(po, True), "lineList": {"purchaseOrderLine": [po_line(line, po) for line in po.lines]}}


def purchase_order_item(po: PurchaseOrder) -> dict[str, Any]:
    return {"header": po_header(po, False)}


# -- invoices ----------------------------------------------------------------------------------


def request_uuid(salt: str, id: int) -> str:
    return str(uuid.UUID(bytes=hashlib.md5(f"{salt}:{id}".encode()).digest(), version=4))


def invoice_amounts(inv: Invoice) -> tuple[float, float, float]:
    """(line total, taxCharge1, total)."""
    lines_total = round(sum(line.qty * line.price for line in inv.lines), 2)
    tax1 = round(sum(line_tax(line) for line in inv.lines), 2)
    tax2, shipping, handling, discount = inv.charges
    return lines_total, tax1, round(lines_total + tax1 + tax2 + shipping + handling - discount, 2)


def invoice_header(inv: Invoice, salt: str, detail: bool) -> dict[str, Any]:
    _, tax1, total = invoice_amounts(inv)
    tax2, shipping, handling, discount = inv.charges
    net = PAYMENT_TERMS.get(inv.supplier.terms, (0, 0, 30))[2]
    h: dict[str, Any] = {
        "originalRequestMessageId": request_uuid(salt, inv.id),
        "invoiceId": inv.id,
        "validationStatus": "Unneeded",
        "lastUpdate": ts(inv.last_ms),
        "paymentStatus": inv.payment_status,
        "invoiceName": inv.name,
        "invoiceNumber": inv.invoice_number,
        "originalInvoiceNumber": inv.invoice_number,
        "invoiceType": inv.type,
        "invoiceLineType": inv.line_type,
        "invoiceSource": inv.source,
        "invoiceDate": day(inv.invoice_ms),
        "invoiceCreateDate": day(inv.create_ms),
        "dueDate": day(inv.invoice_ms + net * DAY_MS),
        "termDiscountAmount": 0,
    }
    invoiced_by: dict[str, Any] = {"username": inv.invoiced_by}
    if inv.invoiced_by_bu:
        invoiced_by["businessUnit"] = inv.business_unit or "0001"
    invoiced_by["email"] = f"{inv.invoiced_by}@buyer.example"
    h["invoicedBy"] = invoiced_by
    if inv.business_unit:
        h["businessUnit"] = inv.business_unit
    h["supplier"] = supplier_block(inv.supplier, detail)
    if inv.supplier_invoice_number:
        h["supplierInvoiceNumber"] = inv.supplier_invoice_number
    if detail:
        h["billTo"] = {"address": address(inv.bill_to)}
        h["shipTo"] = {"address": address(inv.ship_to)}
        remit = inv.supplier.address
        h["remitTo"] = {"internalId": inv.supplier.remit_id, "address": address(remit, with_code=False, blank_lines=2),
                        "addressCode": "REMIT"}
        h["terms"] = terms(inv.supplier.terms)
        h["payment"] = {"method": "Unknown", "paidByExternalPaymentProcessor": "false"}
    h["accountingDate"] = day(inv.accounting_ms)
    h["freightOnBoard"] = "Destination"
    if detail:
        h["additionalInfo"] = invoice_additional_info()
    h["matchStatus"] = inv.match_status
    h["workflowStatus"] = inv.workflow
    non_po = sbool(inv.line_type == "Non-PO")
    h["nonPOInvoice"] = non_po
    h["containsNonPOLines"] = sbool(any(line.po_number is None for line in inv.lines))
    if detail:
        h["customFieldValueSetList"] = {"customFieldValueSet": [
            tax_code_set(any(line.taxable for line in inv.lines)),
            custom_set("WireTransfer", "Wire Transfer?"),
        ]}
        if inv.lines:
            h["splittableFieldSetGroupList"] = splittable(inv.lines[0].splits)
    h["taxCharge1"] = num(tax1)
    h["taxCharge2"] = num(tax2)
    h["shippingCharge"] = num(shipping)
    h["handlingCharge"] = num(handling)
    h["discountAmount"] = num(discount)
    h["allocationMethod"] = "Weighted"
    if inv.early_payment is not None:
        h["earlyPaymentDiscount"] = num(inv.early_payment)
    if detail:
        h["miscFeeList"] = {"miscFee": [{"name": "MiscFee1", "fee": 0}]}
    detail_tax: dict[str, Any] = {"currentTax": num(tax1), "engineTax": num(tax1)}
    if inv.supplier_tax:
        detail_tax["supplierTax"] = num(tax1)
    h["tax1HeaderChargeDetail"] = detail_tax
    if inv.has_total:
        h["total"] = money(inv.supplier.currency, total)
    if inv.withholding is not None:
        h["withholdingTax1"] = num(inv.withholding)
    return h


def invoice_additional_info() -> dict[str, Any]:
    return {"externalInfo": attachments(), "internalInfo": attachments(), "ocrAttachmentList": {"attachment": []}}


def invoice_line(line: InvoiceLine, inv: Invoice) -> dict[str, Any]:
    out: dict[str, Any] = {
        "lineId": line.id,
        "lineNumber": line.number,
        "item": {"description": line.description, "unitOfMeasure": uom(line.uom), "productType": line.product_type},
        "businessUnit": line.business_unit,
    }
    if line.po_number is not None:
        out["poNumber"] = line.po_number
        out["poLineNumber"] = str(line.po_line)
        out["poAPStatus"] = "Close"
    out["receipts"] = {"receipt": []}
    out["quantity"] = num(line.qty)
    out["unitPrice"] = num(line.price)
    out["capitalExpense"] = "false"
    out["taxable"] = sbool(line.taxable)
    out["taxCharge1"] = num(line_tax(line))
    out["taxCharge2"] = 0
    out["shippingCharge"] = 0
    out["handlingCharge"] = 0
    out["discountAmount"] = 0
    out["earlyPaymentDiscount"] = 0
    out["matchStatus"] = "Matched" if line.po_number is not None and line.tolerance == "Exact" else (
        "Do Not Match" if line.po_number is None else "Unmatched")
    out["isSubstituteItem"] = "false"
    out["toleranceStatus"] = line.tolerance
    out["fulfillmentCenterName"] = "Fulfillment Center 1"
    out["additionalInfo"] = invoice_additional_info()
    out["invoiceOwner"] = {"businessUnit": "BUYER", "email": f"{inv.invoiced_by}@buyer.example"}
    out["customFieldValueSetList"] = {"customFieldValueSet": [tax_code_set(line.taxable)]}
    out["splittableFieldSetGroupList"] = splittable(line.splits)
    if line.po_number is not None:
        out["poMatchStatus"] = line.po_match
        out["poLineMatchStatus"] = line.po_match
    out["shipTo"] = {"address": address(line.ship_to)}
    return out


def invoice(inv: Invoice, salt: str) -> dict[str, Any]:
    return {"header": invoice_header(inv, salt, True), "lineList": {"invoiceLine": [invoice_line(line, inv) for line in inv.lines]}}


def invoice_item(inv: Invoice, salt: str) -> dict[str, Any]:
    return {"header": invoice_header(inv, salt, False)}


# -- company profiles --------------------------------------------------------------------------


def company(s: Supplier, comp: frozenset[str] = frozenset()) -> dict[str, Any]:
    info: dict[str, Any] = {"bravoId": str(s.id)}
    info.update(s.info)
    info["registrationDate"] = ts(s.registration_ms)
    info["lastModTime"] = ts(s.last_ms)
    user = s.user
    if "USER" in comp and user is not None:
        info.update({
            "userAlias": user.username,
            "userName": user.first_name,
            "userSurName": user.last_name,
            "userEmail": user.email,
            "userPhone": s.info.get("bizPhone", ""),
            "userFax": "",
            "userMobPhone": "",
            "userExtCode": "",
            "userBusinessUnitCode": "",
            "userDivisionCode": "",
        })
    if "SSO_CODE" in comp:
        info["ssoCodeData"] = {"ssoCode": [{"ssoCodeValue": "OPEN_ID", "ssoUserLogin": user.email}] if user else []}
    out: dict[str, Any] = {"returnCompanyInfo": info}
    if "USER" in comp:
        out["returnSubUser"] = {"subUser": []}
    return out
