"""Business rules of the company database: creates, PATCH merges, deletes and document actions.

Everything here runs inside a store transaction opened by the caller, raises `SLError` with B1's
code and message on a refused write (contract §4.3, §5.4, §8), and never mutates a stored record in
place (copy, change, `store.put`).

Document PATCH rules beyond the contract's §8.2 merge (B1's public behaviour; tags as in the contract):

- Posted documents (`PurchaseInvoices`, `PurchaseDeliveryNotes`: they made journal entries and stock
  moves) keep their amounts. Only `Comments`, `NumAtCard`, `DocDueDate` and `U_` fields change on
  the header, only `FreeText` and `U_` fields on a line. Any other header or line field whose value
  changes -> 400, -1029, `[OPCH.DocDate], Field cannot be updated (ODBC -1029)` (a line:
  `[PCH1.Quantity][line: 1], ...`, the database column). Code, text and the tag-first form are
  B1's answer to a DocDate change on a posted receipt [PUB S13]; the field list, status and line
  form are [MOD] (real B1 may leave a few more header fields open, e.g. contact person or owner).
  Adding rows, or deleting them with `B1S-ReplaceCollectionsOnPatch` -> 400, -10,
  `Cannot add or delete rows of a document that has been posted` [MOD]. A difference to a posted
  invoice is a credit memo or a new invoice.
- A value sent equal to the stored one is no change: it is never refused.
- A closed or cancelled document (`DocumentStatus` not `bost_Open`, by `Close`, `Cancel` or because
  every row was copied) takes only the same free fields; any other change, added or deleted rows ->
  400, -10, `Document is already closed` (the §8.4 text) [MOD].
- A closed row of an open document (fully copied, or closed by PATCHing `LineStatus` `bost_Close`)
  cannot change and cannot be reopened: -> 400, -10, `Cannot change a closed row  [DocumentLines.Quantity][line: n]`.
  B1 greys closed rows out; a larger quantity is a new row [MOD; the alternative "grows and reopens"
  is not what the B1 client allows].
- `Quantity` of an open row may not fall below what target documents copied from it -> 400, -10,
  `Quantity cannot be less than the quantity already delivered or invoiced  [DocumentLines.Quantity][line: n]`;
  `RemainingOpenQuantity` becomes new quantity - copied, and a row reduced to exactly the copied
  quantity closes (the header too when it was the last open row) [MOD]. The item of a partly copied
  row cannot change (-10) [MOD].
- Rows added to an open document are numbered as in §8.2; `[line: n]` in a PATCH error is the row's
  1-based place in the document.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import math
from collections.abc import Callable
from typing import Any

from simulators.sapb1 import errors as E
from simulators.sapb1.entities import (
    DOCUMENT_BY_CODE,
    DOCUMENT_BY_ENUM,
    DOCUMENT_SETS,
    ENTITY_SETS,
    UDF_TABLES,
    EntitySet,
    Schema,
    coerce_object,
)
from simulators.sapb1.errors import SLError
from simulators.sapb1.store import Store

LOCAL_CURRENCY = "USD"
ALLOWED_BASE = {"PurchaseDeliveryNotes": (22,), "PurchaseInvoices": (22, 20), "PurchaseOrders": ()}
APPROVAL_SETS = ("PurchaseOrders", "PurchaseDeliveryNotes", "PurchaseInvoices")
COPIED_LINE_FIELDS = (
    "ItemCode", "ItemDescription", "UnitPrice", "Price", "DiscountPercent", "TaxCode", "AccountCode",
    "CostingCode", "CostingCode2", "CostingCode3", "CostingCode4", "CostingCode5", "ProjectCode",
    "WarehouseCode", "MeasureUnit", "Currency", "VatGroup",
)
EPS = 1e-9
POSTED_SETS = frozenset(("PurchaseDeliveryNotes", "PurchaseInvoices"))  # documents that post to the ledger
FREE_HEADER_FIELDS = frozenset(("Comments", "NumAtCard", "DocDueDate"))  # and every U_ field
FREE_LINE_FIELDS = frozenset(("FreeText",))  # and every U_ field


@functools.lru_cache(maxsize=4096)
def etag_of(data_version: int | None) -> str:
    """`W/"<upper-hex SHA-1 of str(DataVersion)>"` (contract §8.5)."""
    return 'W/"' + hashlib.sha1(str(data_version or 0).encode()).hexdigest().upper() + '"'


def _r2(value: float) -> float:
    return round(value + 0.0, 2)


def _free(name: str, free: frozenset[str]) -> bool:
    """A field every document keeps editable: posted, closed or cancelled alike."""
    return name in free or name.startswith("U_")


def _same(have: Any, sent: Any) -> bool:
    """A PATCH value that leaves the stored one as it is (numbers compared as numbers)."""
    if isinstance(have, (int, float)) and isinstance(sent, (int, float)) \
            and not isinstance(have, bool) and not isinstance(sent, bool):
        return math.isclose(have, sent, rel_tol=1e-12, abs_tol=1e-9)
    return have == sent


class Rules:
    def __init__(self, store: Store, schema: Schema, settings: Callable[[], Any],
                 clock: Callable[[], dt.datetime] = dt.datetime.now) -> None:
        self.store = store
        self.schema = schema
        self.settings = settings  # the knobs: duplicate_numatcard etc.
        self.clock = clock

    # -- helpers ---------------------------------------------------------------------------

    def stamp(self) -> tuple[str, str]:
        now = self.clock()
        return now.date().isoformat(), now.strftime("%H:%M:%S")

    def new_record(self, type_name: str) -> dict[str, Any]:
        record = self.schema.template(type_name)
        for prop in self.store.udfs.get(type_name, {}).values():
            record[prop.name] = prop.default
        return record

    def coerce(self, type_name: str, body: dict[str, Any]) -> dict[str, Any]:
        return coerce_object(self.schema, type_name, body, self.store.udfs)

    def fill_member(self, elem: str, values: dict[str, Any]) -> dict[str, Any]:
        member = self.new_record(elem)
        member.update(values)
        return member

    def fill_collections(self, type_name: str, record: dict[str, Any], sent: dict[str, Any]) -> None:
        for prop in self.schema.types[type_name].props.values():
            if prop.kind == "coll" and prop.name in sent:
                record[prop.name] = [self.fill_member(prop.elem or "", m) for m in sent[prop.name]]
            elif prop.kind == "complex" and prop.name in sent:
                record[prop.name] = dict(sent[prop.name])

    def _hwm_name(self, eset: EntitySet, key: tuple, coll: str) -> str:
        return f"hwm:{eset.name}:{key!r}:{coll}"

    def next_member_number(self, eset: EntitySet, key: tuple, coll: str, members: list[dict], field: str) -> int:
        name = self._hwm_name(eset, key, coll)
        highest = max((m.get(field) or 0 for m in members), default=-1)
        value = max(self.store.sequences.get(name, -1), highest) + 1
        self.store.set_sequence(name, value)
        return value

    def bump(self, eset: EntitySet, record: dict[str, Any]) -> None:
        date, time = self.stamp()
        if "UpdateDate" in record:
            record["UpdateDate"] = date
        if "UpdateTime" in record:
            record["UpdateTime"] = time
        if eset.etag:
            record["DataVersion"] = (record.get("DataVersion") or 0) + 1

    def check_if_match(self, eset: EntitySet, record: dict[str, Any], if_match: str | None) -> None:
        """Only `W/...` values are checked; anything else is ignored, as the Service Layer does."""
        if not if_match or not eset.etag:
            return
        values = [v.strip() for v in if_match.split(",")]
        weak = [v for v in values if v.startswith("W/")]
        if weak and etag_of(record.get("DataVersion")) not in weak:
            raise SLError(412, -2039, E.MSG_ETAG)

    def event(self, eset: EntitySet, key: tuple, kind: str, record: dict[str, Any] | None) -> None:
        self.store.emit({"set": eset.name, "key": dict(zip(eset.key, key, strict=True)), "type": kind,
                         "record": record})

    # -- master-data lookups ------------------------------------------------------------------

    def _active(self, entity_set: str, code: Any, flag: str = "Active") -> dict[str, Any] | None:
        record = self.store.get(entity_set, (code,))
        if record is None or record.get(flag, "tYES") != "tYES":
            return None
        return record

    def valid_account(self, code: str) -> bool:
        return self._active("ChartOfAccounts", code, "ActiveAccount") is not None

    def valid_costing(self, code: str, dimension: int) -> bool:
        rule = self._active("DistributionRules", code)
        return rule is not None and rule.get("InWhichDimension") == dimension

    def valid_project(self, code: str) -> bool:
        return self._active("Projects", code) is not None

    def tax_rate(self, code: str) -> float | None:
        tax = self.store.get("SalesTaxCodes", (code,))
        if tax is None or tax.get("Inactive") == "tYES":
            return None
        return float(tax.get("Rate") or 0.0)

    # -- create ------------------------------------------------------------------------------

    def create(self, eset: EntitySet, body: dict[str, Any]) -> tuple[tuple, dict[str, Any]]:
        if eset.kind == "document":
            return self.create_document(eset, body)
        if eset.kind == "bp":
            return self.create_bp(eset, body)
        if eset.kind == "udf":
            return self.create_udf(eset, body)
        if eset.name == "Dimensions":
            raise SLError(400, -5006, E.MSG_NOT_SUPPORTED)
        return self.create_master(eset, body)

    def _insert(self, eset: EntitySet, key: tuple, record: dict[str, Any]) -> tuple[tuple, dict[str, Any]]:
        if self.store.get(eset.name, key) is not None:
            raise E.duplicate()
        self.store.put(eset.name, key, record)
        self.store.count_write(eset.name, "POST")
        self.event(eset, key, "Created", record)
        return key, record

    def create_master(self, eset: EntitySet, body: dict[str, Any]) -> tuple[tuple, dict[str, Any]]:
        sent = self.coerce(eset.type_name, body)
        record = self.new_record(eset.type_name)
        if eset.kind == "item":
            record.update(Valid="tYES", Frozen="tNO", ItemsGroupCode=100)
        record.update({k: v for k, v in sent.items() if not isinstance(v, (list, dict))})
        self.fill_collections(eset.type_name, record, sent)
        if eset.kind == "item":
            date, time = self.stamp()
            record.update(CreateDate=date, UpdateDate=date, CreateTime=time, UpdateTime=time, DataVersion=1)
        if eset.name == "PaymentTermsTypes":
            if not record.get("PaymentTermsGroupName"):
                raise E.business("Enter payment terms code  [OCTG.PymntGroup]", -5002)
            record["GroupNumber"] = self.store.next_number("PaymentTermsTypes", 1)
        if eset.name == "DistributionRules":
            self._check_distribution_rule(record)
        key_value = record.get(eset.key[0])
        if key_value in (None, ""):
            raise E.business(f"Enter valid code  [{eset.table}.{eset.key[0]}]", -5002)
        key = (key_value,)
        result = self._insert(eset, key, record)
        if eset.name == "ProfitCenters":
            self._direct_rule(record)
        return result

    def _check_distribution_rule(self, record: dict[str, Any]) -> None:
        dim = record.get("InWhichDimension") or 1
        if not 1 <= dim <= 5:
            raise E.enter_valid_code("[OOCR.DimCode]")
        total = 0.0
        for line in record.get("DistributionRuleLines", []):
            center = self.store.get("ProfitCenters", (line.get("CenterCode"),))
            if center is None or center.get("InWhichDimension") != dim:
                raise E.enter_valid_code("[DistributionRuleLines.CenterCode]")
            total += float(line.get("TotalInCenter") or 0)
        if not record.get("TotalFactor"):
            record["TotalFactor"] = total

    def _direct_rule(self, center: dict[str, Any]) -> None:
        """Creating a profit centre also creates a direct distribution rule of the same code (§5.7)."""
        code = center["CenterCode"]
        if self.store.get("DistributionRules", (code,)) is not None:
            return
        rule = self.new_record("DistributionRule")
        rule.update(
            FactorCode=code, FactorDescription=center.get("CenterName"), TotalFactor=100.0, Direct="Y",
            InWhichDimension=center.get("InWhichDimension") or 1, Active=center.get("Active") or "tYES",
            DistributionRuleLines=[self.fill_member("DistributionRuleLine", {
                "CenterCode": code, "TotalInCenter": 100.0, "EffectiveFrom": center.get("EffectiveFrom")
                or "1900-01-01"})],
        )
        self.store.put("DistributionRules", (code,), rule)

    def create_bp(self, eset: EntitySet, body: dict[str, Any]) -> tuple[tuple, dict[str, Any]]:
        sent = self.coerce("BusinessPartner", body)
        record = self.new_record("BusinessPartner")
        card_type = sent.get("CardType") or "cCustomer"
        record.update(Valid="tYES", Frozen="tNO", Currency=LOCAL_CURRENCY, PayTermsGrpCode=-1,
                      GroupCode=101 if card_type == "cSupplier" else 100, PriceListNum=1, Series=1,
                      CommissionGroupCode=0)
        record.update({k: v for k, v in sent.items() if not isinstance(v, list)})
        code = record.get("CardCode")
        if not code:
            raise E.business("Enter valid code  [OCRD.CardCode]", -5002)
        self._check_bp_refs(record)
        date, time = self.stamp()
        record.update(CreateDate=date, UpdateDate=date, CreateTime=time, UpdateTime=time, DataVersion=1)
        self.fill_collections("BusinessPartner", record, sent)
        seen = set()
        for row, address in enumerate(record["BPAddresses"]):
            natural = (address.get("AddressName"), address.get("AddressType"))
            if natural in seen:
                raise E.duplicate()
            seen.add(natural)
            address.update(BPCode=code, RowNum=row, CreateDate=date, CreateTime=time)
        for row, contact in enumerate(record["ContactEmployees"]):
            contact.update(CardCode=code, InternalCode=row + 1)
        self._bp_address_defaults(record, sent)
        return self._insert(eset, (code,), record)

    def _check_bp_refs(self, record: dict[str, Any]) -> None:
        terms = record.get("PayTermsGrpCode")
        if terms not in (None, -1) and self.store.get("PaymentTermsTypes", (terms,)) is None:
            raise E.enter_valid_code("[OCRD.GroupNum]")

    def _bp_address_defaults(self, record: dict[str, Any], sent: dict[str, Any]) -> None:
        addresses = record["BPAddresses"]
        names = {(a["AddressName"], a["AddressType"]) for a in addresses}
        for kind, field in (("bo_BillTo", "BilltoDefault"), ("bo_ShipTo", "ShipToDefault")):
            if (record.get(field), kind) not in names:
                first = next((a for a in addresses if a.get("AddressType") == kind), None)
                record[field] = first["AddressName"] if first else None
        bill = next((a for a in addresses if a["AddressType"] == "bo_BillTo"
                     and a["AddressName"] == record.get("BilltoDefault")), None)
        if bill:
            for src, dst in (("City", "City"), ("Country", "Country"), ("ZipCode", "ZipCode"), ("County", "County")):
                if dst not in sent and bill.get(src) is not None:
                    record[dst] = bill[src]
        ship = next((a for a in addresses if a["AddressType"] == "bo_ShipTo"
                     and a["AddressName"] == record.get("ShipToDefault")), None)
        if ship:
            for src, dst in (("City", "MailCity"), ("Country", "MailCountry"), ("ZipCode", "MailZipCode")):
                if dst not in sent and ship.get(src) is not None:
                    record[dst] = ship[src]

    def create_udf(self, eset: EntitySet, body: dict[str, Any]) -> tuple[tuple, dict[str, Any]]:
        sent = self.coerce("UserFieldMD", body)
        record = self.new_record("UserFieldMD")
        record.update({k: v for k, v in sent.items() if k != "ValidValuesMD"})
        self.fill_collections("UserFieldMD", record, sent)
        table, name = record.get("TableName"), record.get("Name")
        if table not in UDF_TABLES:
            raise E.invalid_property("TableName", "UserFieldMD")
        if not name:
            raise E.invalid_property("Name", "UserFieldMD")
        if record.get("Type") is None:
            record["Type"] = "db_Alpha"
        if record["Type"] == "db_Alpha":
            record["Size"] = min(int(record.get("Size") or record.get("EditSize") or 10), 254)
            record["EditSize"] = record.get("EditSize") or record["Size"]
        for other in self.store.all("UserFieldsMD"):
            if other["TableName"] == table and other["Name"] == name:
                raise E.duplicate()
        record["FieldID"] = self.store.next_number(f"FieldID:{table}", 0)
        result = self._insert(eset, (table, record["FieldID"]), record)
        self.store.log_undo(self.store.rebuild_udfs)
        self.store.rebuild_udfs()
        self._backfill_udf(UDF_TABLES[table], f"U_{name}")
        return result

    def _backfill_udf(self, type_name: str, prop_name: str) -> None:
        """Existing rows read the new field as its default (metadata change, no DataVersion bump)."""
        prop = self.store.udfs[type_name][prop_name]
        for eset in ENTITY_SETS.values():
            for record in self.store.data[eset.name].values():
                if eset.type_name == type_name:
                    record.setdefault(prop_name, prop.default)
                elif type_name == "DocumentLine" and eset.kind == "document":
                    for line in record["DocumentLines"]:
                        line.setdefault(prop_name, prop.default)
                elif type_name == "BPAddress" and eset.kind == "bp":
                    for address in record["BPAddresses"]:
                        address.setdefault(prop_name, prop.default)
        self.store.clear_cache()

    # -- documents -------------------------------------------------------------------------

    def create_document(self, eset: EntitySet, body: dict[str, Any],
                        draft_of: EntitySet | None = None) -> tuple[tuple, dict[str, Any]]:
        """Create a document in `eset`; with `draft_of` (approval procedures) a `Drafts` row of that target."""
        sent = self.coerce("Document", body)
        lines_sent = sent.pop("DocumentLines", [])
        if eset.name == "Drafts" and draft_of is None:
            draft_of = DOCUMENT_BY_ENUM.get(sent.get("DocObjectCode") or "oPurchaseOrders")
            if draft_of is None:
                raise E.invalid_property("DocObjectCode", "Document")
        target = draft_of or eset  # whose rules apply
        table = target.table
        bp = self._supplier(sent.get("CardCode"), table)
        record = self.new_record("Document")
        record.update({k: v for k, v in sent.items() if not isinstance(v, list)})
        self.fill_collections("Document", record, {k: v for k, v in sent.items() if k != "DocumentLines"})
        date, time = self.stamp()
        record["DocType"] = record.get("DocType") or "dDocument_Items"
        record["DocDate"] = record.get("DocDate") or date
        record["TaxDate"] = record.get("TaxDate") or record["DocDate"]
        record["CardName"] = record.get("CardName") or bp.get("CardName")
        record["DocCurrency"] = record.get("DocCurrency") or bp.get("Currency") or LOCAL_CURRENCY
        if record["DocCurrency"] == "##":
            record["DocCurrency"] = LOCAL_CURRENCY
        record["DocRate"] = record.get("DocRate") or 1.0
        if record.get("PaymentGroupCode") is None:
            record["PaymentGroupCode"] = bp.get("PayTermsGrpCode")
        self._check_header(record, table)
        record["DocDueDate"] = record.get("DocDueDate") or self._due_date(target, record)
        if draft_of is None:
            self._check_numatcard(eset, record)
        if not lines_sent:
            raise E.business("To generate this document, first define at least one document row", -5002)
        record["DocEntry"] = self.store.next_number(f"DocEntry:{eset.name}", 1)
        if "DocNum" not in sent or not sent.get("DocNum"):
            record["DocNum"] = self.store.next_number(f"DocNum:{eset.name}", 1001)
        record.update(
            DocumentStatus="bost_Open", Cancelled="tNO", CancelStatus="csNo", DocObjectCode=target.bo_enum,
            AuthorizationStatus="dasPending" if draft_of else "dasWithout", CreationDate=date, UpdateDate=date,
            UpdateTime=time, DocTime=time, DataVersion=1, Series=record.get("Series") or 1,
        )
        copies: dict[tuple, float] = {}
        lines = []
        for index, line_sent in enumerate(lines_sent):
            line = self._build_line(target, record, line_sent, index, copies)
            line["LineNum"] = index
            line["DocEntry"] = record["DocEntry"]
            lines.append(line)
        record["DocumentLines"] = lines
        self.store.set_sequence(self._hwm_name(eset, (record["DocEntry"],), "DocumentLines"), len(lines) - 1)
        self._totals(record)
        if draft_of is None:  # a draft takes nothing from its base documents
            self._apply_copies(copies, 1)
        return self._insert(eset, (record["DocEntry"],), record)

    def _supplier(self, card_code: Any, table: str) -> dict[str, Any]:
        bp = self.store.get("BusinessPartners", (card_code,)) if card_code else None
        if bp is None or bp.get("CardType") != "cSupplier":
            raise E.business(f"Invalid BP code [{table}.CardCode] , '{card_code or ''}'")
        return bp

    def _check_header(self, record: dict[str, Any], table: str) -> None:
        project = record.get("Project")
        if project and not self.valid_project(project):
            raise E.enter_valid_code(f"[{table}.Project]")
        terms = record.get("PaymentGroupCode")
        if terms not in (None, -1) and self.store.get("PaymentTermsTypes", (terms,)) is None:
            raise E.enter_valid_code(f"[{table}.GroupNum]")

    def _due_date(self, eset: EntitySet, record: dict[str, Any]) -> str:
        if eset.name != "PurchaseInvoices":
            return record["DocDate"]
        terms = self.store.get("PaymentTermsTypes", (record.get("PaymentGroupCode"),))
        days = 0
        if terms:
            days = (terms.get("NumberOfAdditionalDays") or 0) + 30 * (terms.get("NumberOfAdditionalMonths") or 0)
        return (dt.date.fromisoformat(record["DocDate"]) + dt.timedelta(days=days)).isoformat()

    def _check_numatcard(self, eset: EntitySet, record: dict[str, Any], own_key: Any = None) -> None:
        if not getattr(self.settings(), "duplicate_numatcard", False) or not record.get("NumAtCard"):
            return
        for other in self.store.data[eset.name].values():
            if (other["DocEntry"] != own_key and other["CardCode"] == record["CardCode"]
                    and other.get("NumAtCard") == record["NumAtCard"]):
                raise SLError(400, -5002, E.MSG_DUP_NUMATCARD)

    def _build_line(self, eset: EntitySet, header: dict[str, Any], sent: dict[str, Any], index: int,
                    copies: dict[tuple, float]) -> dict[str, Any]:
        n = index + 1
        tag = f"[line: {n}]"
        line = self.new_record("DocumentLine")
        line.update(sent)
        if line.get("BaseType") is None:
            line["BaseType"] = -1
        if line["BaseType"] != -1 or line.get("BaseEntry") is not None or line.get("BaseLine") is not None:
            self._copy_from_base(eset, header, line, sent, n, copies)
        if header["DocType"] == "dDocument_Items":
            code = line.get("ItemCode")
            if not code:
                raise E.business(f"Item number is missing; specify an item number [DocumentLines.ItemCode]{tag}")
            item = self.store.get("Items", (code,))
            if item is None or item.get("PurchaseItem") != "tYES" or item.get("Valid") == "tNO":
                raise E.enter_valid_code(f"[DocumentLines.ItemCode]{tag}")
            line["ItemDescription"] = line.get("ItemDescription") or item.get("ItemName")
            if not line.get("AccountCode") and item.get("ExpanseAccount"):
                line["AccountCode"] = item["ExpanseAccount"]
            line["WarehouseCode"] = line.get("WarehouseCode") or item.get("DefaultWarehouse")
        else:
            if not line.get("ItemDescription"):
                raise E.business(f"Enter description  [DocumentLines.ItemDescription]{tag}", -5002)
            if not line.get("AccountCode"):
                raise E.enter_valid_code(f"[DocumentLines.AccountCode]{tag}")
        self._check_line_codes(line, tag)
        self._line_amounts(header, line, sent, tag)
        line["LineStatus"] = "bost_Open"
        line["RemainingOpenQuantity"] = line["Quantity"]
        line["OpenAmount"] = line["LineTotal"]
        return line

    def _check_line_codes(self, line: dict[str, Any], tag: str) -> None:
        account = line.get("AccountCode")
        if account and not self.valid_account(account):
            raise E.enter_valid_code(f"[DocumentLines.AccountCode]{tag}")
        for dim, field in enumerate(("CostingCode", "CostingCode2", "CostingCode3", "CostingCode4", "CostingCode5"), 1):
            code = line.get(field)
            if code and not self.valid_costing(code, dim):
                raise E.enter_valid_code(f"[DocumentLines.{field}]{tag}")
        project = line.get("ProjectCode")
        if project and not self.valid_project(project):
            raise E.enter_valid_code(f"[DocumentLines.ProjectCode]{tag}")
        tax = line.get("TaxCode")
        if tax and self.tax_rate(tax) is None:
            raise E.enter_valid_code(f"[DocumentLines.TaxCode]{tag}")

    def _line_amounts(self, header: dict[str, Any], line: dict[str, Any], sent: dict[str, Any], tag: str) -> None:
        quantity = line.get("Quantity")
        if quantity is None or quantity == 0.0 and "Quantity" not in sent:
            quantity = 1.0
        if quantity <= 0:
            raise E.business(f"Quantity must be greater than zero  [DocumentLines.Quantity]{tag}", -5002)
        line["Quantity"] = float(quantity)
        discount = line.get("DiscountPercent") or 0.0
        if "UnitPrice" in sent or ("Price" not in sent and "LineTotal" not in sent and line.get("UnitPrice")):
            unit = line.get("UnitPrice") or 0.0
            price = unit * (1 - discount / 100)
        elif "Price" in sent:
            price = line.get("Price") or 0.0
            unit = price / (1 - discount / 100) if discount < 100 else price
        elif "LineTotal" in sent:
            price = (line.get("LineTotal") or 0.0) / quantity
            unit = price / (1 - discount / 100) if discount < 100 else price
        else:
            unit = line.get("UnitPrice") or line.get("Price") or 0.0
            price = unit * (1 - discount / 100)
        if unit < 0 or price < 0:
            raise SLError(400, -5002, E.MSG_INTERNAL)
        line["UnitPrice"] = _r2(unit) if abs(unit - round(unit, 6)) < EPS else unit
        line["Price"] = round(price, 6)
        line["LineTotal"] = _r2(line["LineTotal"]) if "LineTotal" in sent and "UnitPrice" not in sent \
            and "Price" not in sent else _r2(quantity * price)
        rate = self.tax_rate(line["TaxCode"]) if line.get("TaxCode") else 0.0
        line["TaxTotal"] = _r2(line["LineTotal"] * (rate or 0.0) / 100)
        line["PriceAfterVAT"] = round(price * (1 + (rate or 0.0) / 100), 6)
        line["Currency"] = line.get("Currency") or header.get("DocCurrency")
        line["Rate"] = line.get("Rate") or 0.0

    def _copy_from_base(self, eset: EntitySet, header: dict[str, Any], line: dict[str, Any],
                        sent: dict[str, Any], n: int, copies: dict[tuple, float]) -> None:
        """Contract §5.4 rules 1-7; the quantities are taken later by `_apply_copies` (rule 8)."""
        base_type, entry, base_line = line.get("BaseType"), line.get("BaseEntry"), line.get("BaseLine")
        if base_type in (None, -1) or entry is None or base_line is None:
            raise SLError(400, -5002, E.MSG_INTERNAL)
        if base_type not in ALLOWED_BASE.get(eset.name, ()):
            raise SLError(400, -5002, E.MSG_INTERNAL)
        source_set = DOCUMENT_BY_CODE[base_type]
        source = self.store.get(source_set.name, (entry,))
        if source is None:
            raise SLError(400, -2028, E.MSG_NOT_FOUND)
        source_line = next((sl for sl in source["DocumentLines"] if sl["LineNum"] == base_line), None)
        if source_line is None:
            raise SLError(400, -2028, E.MSG_NOT_FOUND)
        if source["CardCode"] != header["CardCode"]:
            raise E.business(E.MSG_BASE_CARD)
        if source["DocumentStatus"] != "bost_Open" or source_line.get("LineStatus") != "bost_Open":
            raise E.business(E.MSG_BASE_CLOSED)
        link = (source_set.name, entry, base_line)
        available = (source_line.get("RemainingOpenQuantity") or 0.0) - copies.get(link, 0.0)
        quantity = line["Quantity"] if "Quantity" in sent else available
        if quantity > available + EPS:
            raise E.business(
                f"Quantity exceeds the open quantity of the base document line  [DocumentLines.Quantity][line: {n}]")
        line["Quantity"] = quantity
        for field in COPIED_LINE_FIELDS:
            if field not in sent and source_line.get(field) is not None:
                line[field] = source_line[field]
        if "UnitPrice" not in sent and "Price" not in sent and "LineTotal" not in sent:
            sent["UnitPrice"] = line.get("UnitPrice") or 0.0  # price the source line carried
        line["BaseOpenQuantity"] = source_line.get("RemainingOpenQuantity")
        line["ActualBaseEntry"], line["ActualBaseLine"] = entry, base_line
        copies[link] = copies.get(link, 0.0) + quantity

    def _apply_copies(self, copies: dict[tuple, float], sign: int) -> None:
        """Take (sign 1) or give back (sign -1) copied quantities on the source lines (§5.4 rule 8, 9)."""
        by_doc: dict[tuple[str, int], dict[int, float]] = {}
        for (set_name, entry, line_num), quantity in copies.items():
            by_doc.setdefault((set_name, entry), {})[line_num] = quantity
        for (set_name, entry), per_line in by_doc.items():
            source = self.store.get(set_name, (entry,))
            if source is None:
                continue
            source = self.store.mutable(source)
            for sl in source["DocumentLines"]:
                if sl["LineNum"] not in per_line:
                    continue
                remaining = sl["RemainingOpenQuantity"] - sign * per_line[sl["LineNum"]]
                remaining = min(max(remaining, 0.0), sl["Quantity"])
                sl["RemainingOpenQuantity"] = round(remaining, 6)
                sl["OpenAmount"] = _r2(remaining * (sl.get("Price") or 0.0))
                if remaining <= EPS:
                    sl["LineStatus"] = "bost_Close"
                elif sign < 0 and source["Cancelled"] != "tYES":
                    sl["LineStatus"] = "bost_Open"
            if sign > 0 and all(sl["LineStatus"] == "bost_Close" for sl in source["DocumentLines"]):
                source["DocumentStatus"] = "bost_Close"
            elif sign < 0 and source["Cancelled"] != "tYES" and any(
                    sl["LineStatus"] == "bost_Open" for sl in source["DocumentLines"]):
                source["DocumentStatus"] = "bost_Open"
            self.bump(DOCUMENT_SETS[set_name], source)
            self.store.put(set_name, (entry,), source)

    def _totals(self, record: dict[str, Any]) -> None:
        net = sum(line["LineTotal"] for line in record["DocumentLines"])
        vat = _r2(sum(line["TaxTotal"] for line in record["DocumentLines"]))
        discount = record.get("DiscountPercent") or 0.0
        record["VatSum"] = vat
        record["TotalDiscount"] = _r2(net * discount / 100)
        record["DocTotal"] = _r2(net * (1 - discount / 100) + vat)
        record["DocTotalSys"] = record["DocTotal"]
        record["VatSumSys"] = vat

    # -- PATCH ------------------------------------------------------------------------------

    def patch(self, eset: EntitySet, key: tuple, body: dict[str, Any], replace: bool,
              if_match: str | None) -> dict[str, Any]:
        current = self.store.get(eset.name, key)
        if current is None:
            raise E.not_found()
        self.check_if_match(eset, current, if_match)
        sent = self.coerce(eset.type_name, body)
        for key_name in eset.key:  # a key in the body must not change the key
            if key_name in sent and sent[key_name] != current.get(key_name):
                raise E.invalid_property(key_name, eset.type_name)
        record = self.store.mutable(current)
        if eset.kind == "document":
            self._patch_document(eset, key, record, sent, replace)
        else:
            self._patch_generic(eset, key, record, sent, replace)
        self.bump(eset, record)
        self.store.put(eset.name, key, record)
        self.store.count_write(eset.name, "PATCH")
        self.event(eset, key, "Updated", record)
        if eset.name == "ProfitCenters" and "Active" in sent:
            rule = self.store.get("DistributionRules", key)
            if rule and rule.get("Direct") == "Y":
                rule = self.store.mutable(rule)
                rule["Active"] = sent["Active"]
                self.store.put("DistributionRules", key, rule)
        return record

    def _set_fields(self, type_name: str, record: dict[str, Any], sent: dict[str, Any], replace: bool) -> None:
        """§8.2: a collection's members are appended (PUT: replaced), a complex property merged, the rest set."""
        for name, value in sent.items():
            prop = self.schema.types[type_name].props.get(name)
            if prop is not None and prop.kind == "coll":
                members = [self.fill_member(prop.elem or "", m) for m in value]
                record[name] = members if replace else record[name] + members
            elif prop is not None and prop.kind == "complex":
                record[name] = {**record.get(name, {}), **value}
            else:
                record[name] = value

    def _patch_generic(self, eset: EntitySet, key: tuple, record: dict[str, Any], sent: dict[str, Any],
                       replace: bool) -> None:
        addresses = sent.get("BPAddresses") if eset.kind == "bp" else None
        self._set_fields(eset.type_name, record, {k: v for k, v in sent.items() if k != "BPAddresses" or addresses is None},
                         replace)
        if addresses is not None:
            self._merge_addresses(eset, key, record, addresses, replace)
        if eset.kind == "bp":
            self._check_bp_refs(record)
            self._bp_address_defaults(record, sent)
        if eset.name == "DistributionRules":
            self._check_distribution_rule(record)

    def _merge_addresses(self, eset: EntitySet, key: tuple, record: dict[str, Any], sent: list[dict],
                         replace: bool) -> None:
        """§8.2: update in place on full identity, else append (or -2035 on a natural-key clash)."""
        existing = record["BPAddresses"]
        kept: list[dict] = [] if replace else list(existing)
        added: list[dict] = []
        date, time = self.stamp()
        for member in sent:
            match = next((a for a in existing if all(
                k in member and member[k] == a.get(k) for k in ("BPCode", "AddressName", "AddressType", "RowNum"))), None)
            if match is not None:
                updated = {**match, **member}
                if replace:
                    kept.append(updated)
                else:
                    kept[kept.index(match)] = updated
                continue
            address = self.fill_member("BPAddress", member)
            address["AddressType"] = address.get("AddressType") or "bo_ShipTo"
            natural = (address.get("AddressName"), address["AddressType"])
            if any((a.get("AddressName"), a.get("AddressType")) == natural for a in kept + added):
                raise E.duplicate()
            added.append(address)
        for address in added:
            address["RowNum"] = self.next_member_number(eset, key, "BPAddresses", existing, "RowNum")
            address.update(BPCode=key[0], CreateDate=date, CreateTime=time)
        record["BPAddresses"] = kept + added

    def _patch_document(self, eset: EntitySet, key: tuple, record: dict[str, Any], sent: dict[str, Any],
                        replace: bool) -> None:
        """Header fields, then lines (§8.2), under the document PATCH rules of the module docstring."""
        if "CardCode" in sent and sent["CardCode"] != record["CardCode"]:
            raise E.business(f"Cannot change the business partner of a document  [{eset.table}.CardCode]")
        lines_sent = sent.pop("DocumentLines", None)
        locked = [name for name in sent if not _free(name, FREE_HEADER_FIELDS)
                  and self._header_changes(record, name, sent[name], replace)]
        if locked and eset.name in POSTED_SETS:
            raise E.field_locked(f"[{eset.table}.{self._column('Document', locked[0])}]")
        if locked and record["DocumentStatus"] != "bost_Open":
            raise E.business(E.MSG_DOC_CLOSED)
        self._set_fields("Document", record, sent, replace)
        self._check_header(record, eset.table)
        self._check_numatcard(eset, record, own_key=key[0])
        if lines_sent is not None:
            self._merge_lines(eset, key, record, lines_sent, replace)
        self._totals(record)

    def _header_changes(self, record: dict[str, Any], name: str, value: Any, replace: bool) -> bool:
        prop = self.schema.types["Document"].props.get(name)
        if prop is not None and prop.kind == "coll":
            return bool(value) or (replace and bool(record.get(name)))
        if prop is not None and prop.kind == "complex":
            current = record.get(name) or {}
            return any(not _same(current.get(k), v) for k, v in value.items())
        return not _same(record.get(name), value)

    def _column(self, type_name: str, name: str) -> str:
        prop = self.schema.types[type_name].props.get(name)
        return (prop.column if prop is not None and prop.column else name)

    def _merge_lines(self, eset: EntitySet, key: tuple, record: dict[str, Any], lines_sent: list[dict],
                     replace: bool) -> None:
        """§8.2 merge by `LineNum`; `[line: n]` is the line's 1-based place in the document."""
        posted = eset.name in POSTED_SETS
        closed = record["DocumentStatus"] != "bost_Open"
        existing = record["DocumentLines"]
        by_num = {line["LineNum"]: line for line in existing}
        place = {line["LineNum"]: index + 1 for index, line in enumerate(existing)}
        current = dict(by_num)  # a LineNum sent twice updates the same line twice
        slots: list[Any] = [] if replace else list(existing)  # a line, or the index of an added member
        slot_of = {} if replace else {line["LineNum"]: index for index, line in enumerate(existing)}
        added: list[dict[str, Any]] = []
        for member in lines_sent:
            num = member.get("LineNum")
            if num is None or num not in by_num:
                slots.append(len(added))
                added.append({k: v for k, v in member.items() if k != "LineNum"})
                continue
            line = self._update_line(eset, record, current[num], member, f"[line: {place[num]}]", posted, closed)
            current[num] = line
            if num not in slot_of:
                slot_of[num] = len(slots)
                slots.append(line)
            else:
                slots[slot_of[num]] = line
        removed = [line for line in existing if line["LineNum"] not in slot_of]
        if (added or removed) and posted:
            raise E.business("Cannot add or delete rows of a document that has been posted")
        if (added or removed) and closed:
            raise E.business(E.MSG_DOC_CLOSED)
        if any(line["Quantity"] - line["RemainingOpenQuantity"] > EPS for line in removed):
            raise E.business("Cannot delete a row that has been copied to a target document")
        takes = eset.name != "Drafts"  # a draft took nothing from its base documents
        rules_of = eset if takes else DOCUMENT_BY_ENUM.get(record.get("DocObjectCode") or "", eset)  # whose rules apply
        if takes:
            self._give_back_lines(removed)
        copies: dict[tuple, float] = {}
        result: list[dict[str, Any]] = []
        for slot in slots:
            if isinstance(slot, int):
                line = self._build_line(rules_of, record, added[slot], len(result), copies)
                line["LineNum"] = self.next_member_number(eset, key, "DocumentLines", existing, "LineNum")
                line["DocEntry"] = key[0]
                slot = line
            result.append(slot)
        if not result:
            raise E.business("To generate this document, first define at least one document row", -5002)
        record["DocumentLines"] = result
        if all(line["LineStatus"] == "bost_Close" for line in result):
            record["DocumentStatus"] = "bost_Close"
        if takes:
            self._apply_copies(copies, 1)

    def _update_line(self, eset: EntitySet, header: dict[str, Any], old: dict[str, Any], member: dict[str, Any],
                     tag: str, posted: bool, closed: bool) -> dict[str, Any]:
        """One existing line under a PATCH: only what really changes is checked against the rules."""
        changed = [f for f, v in member.items() if f != "LineNum" and not _same(old.get(f), v)]
        locked = [f for f in changed if not _free(f, FREE_LINE_FIELDS)]
        if locked and posted:
            raise E.field_locked(f"[{eset.line_table}.{self._column('DocumentLine', locked[0])}]{tag}")
        if locked and closed:
            raise E.business(E.MSG_DOC_CLOSED)
        if locked and old["LineStatus"] != "bost_Open":
            raise E.business(f"Cannot change a closed row  [DocumentLines.{locked[0]}]{tag}")
        line = {**old, **{f: member[f] for f in changed}}
        if not locked:
            return line
        for field in ("BaseType", "BaseEntry", "BaseLine"):
            if field in locked:
                raise E.business(f"Cannot change the base document of a line  [DocumentLines.{field}]{tag}")
        copied = old["Quantity"] - old["RemainingOpenQuantity"]
        if "ItemCode" in locked and copied > EPS:
            raise E.business(f"Cannot change the item of a row that has been copied to a target document  "
                             f"[DocumentLines.ItemCode]{tag}")
        self._check_line_codes(line, tag)
        self._line_amounts(header, line, member, tag)
        if line["Quantity"] + EPS < copied:
            raise E.business("Quantity cannot be less than the quantity already delivered or invoiced  "
                             f"[DocumentLines.Quantity]{tag}")
        line["RemainingOpenQuantity"] = round(line["Quantity"] - copied, 6)
        line["OpenAmount"] = _r2(line["RemainingOpenQuantity"] * line["Price"])
        if line["RemainingOpenQuantity"] <= EPS:  # reduced to what was copied: nothing left to copy
            line["LineStatus"] = "bost_Close"
        return line

    def _give_back_lines(self, lines: list[dict[str, Any]]) -> None:
        copies: dict[tuple, float] = {}
        for line in lines:
            if line.get("BaseType") in (20, 22) and line.get("BaseEntry") is not None:
                link = (DOCUMENT_BY_CODE[line["BaseType"]].name, line["BaseEntry"], line["BaseLine"])
                copies[link] = copies.get(link, 0.0) + line["Quantity"]
        if copies:
            self._apply_copies(copies, -1)

    # -- DELETE -----------------------------------------------------------------------------

    def delete(self, eset: EntitySet, key: tuple, if_match: str | None) -> None:
        current = self.store.get(eset.name, key)
        if not eset.deletable:
            if current is None:
                raise E.not_found()
            raise SLError(400, -5006, E.MSG_NOT_SUPPORTED)
        if current is None:
            raise E.not_found()
        self.check_if_match(eset, current, if_match)
        if eset.kind == "document":
            if any(ln["Quantity"] - ln["RemainingOpenQuantity"] > EPS for ln in current["DocumentLines"]):
                raise E.business("Cannot delete a document that has been copied to a target document")
            if current["Cancelled"] != "tYES" and eset.name != "Drafts":  # drafts took nothing
                self._give_back_lines(current["DocumentLines"])
        if eset.kind == "bp":
            for doc_set in ("PurchaseOrders", "PurchaseDeliveryNotes", "PurchaseInvoices"):
                if any(d["CardCode"] == key[0] for d in self.store.data[doc_set].values()):
                    raise E.business("Cannot remove business partner; it is used in documents", -10)
        self.store.delete(eset.name, key)
        self.store.count_write(eset.name, "DELETE")
        self.event(eset, key, "Deleted", None)
        if eset.kind == "udf":
            self.store.log_undo(self.store.rebuild_udfs)
            self.store.rebuild_udfs()

    # -- bound actions (§8.4) -------------------------------------------------------------------

    def action(self, eset: EntitySet, key: tuple, name: str, if_match: str | None) -> dict[str, Any] | None:
        current = self.store.get(eset.name, key)
        if current is None:
            raise E.not_found()
        self.check_if_match(eset, current, if_match)
        record = self.store.mutable(current)
        if name == "CreateCancellationDocument":
            record["CancelStatus"] = "csCancellation"
            for line in record["DocumentLines"]:
                line["Quantity"] = -line["Quantity"]
            return record
        closed = record["DocumentStatus"] != "bost_Open"
        if name == "Close":
            if closed:
                raise E.business("Document is already closed")
            record["DocumentStatus"] = "bost_Close"
            for line in record["DocumentLines"]:
                line["LineStatus"] = "bost_Close"
            kind = "Closed"
        elif name == "Cancel":
            if record["Cancelled"] == "tYES" or closed:
                raise E.business("Document is already closed")
            if any(ln["Quantity"] - ln["RemainingOpenQuantity"] > EPS for ln in record["DocumentLines"]):
                raise E.business("Cannot cancel a document that has been copied to a target document")
            record.update(Cancelled="tYES", CancelStatus="csYes", DocumentStatus="bost_Close")
            for line in record["DocumentLines"]:
                line["LineStatus"] = "bost_Close"
            if eset.name != "Drafts":
                self._give_back_lines(record["DocumentLines"])
            kind = "Cancelled"
        elif name == "Reopen":
            if record["Cancelled"] == "tYES":
                raise E.business("Cannot reopen a cancelled document")
            if not closed:
                raise E.business("Document is already open")
            record["DocumentStatus"] = "bost_Open"
            for line in record["DocumentLines"]:
                if line["RemainingOpenQuantity"] > EPS:
                    line["LineStatus"] = "bost_Open"
            if all(line["LineStatus"] == "bost_Close" for line in record["DocumentLines"]):
                raise E.business("Cannot reopen a document whose rows are fully copied")
            kind = "Reopened"
        else:
            raise E.segment_not_found(name)
        self.bump(eset, record)
        self.store.put(eset.name, key, record)
        self.store.count_write(eset.name, name)
        self.event(eset, key, kind, record)
        return None


def ceil_minutes(seconds: float) -> int:
    return max(1, math.ceil(seconds / 60))
