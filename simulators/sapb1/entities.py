"""Entity definitions: types and properties read from SAP's own `$metadata`, plus our entity sets.

The schema (property names, types, read-only flags, defaults and enum members) comes from SAP's
published v1 `$metadata` shipped gzipped beside this module (Apache-2.0, see
`tests/fixtures/sapb1/PROVENANCE.md`). On top of it this module keeps what the metadata does not say:
the entity sets we serve, their tables and object codes, column lengths (contract §6.2), create
defaults (§6.1), and value coercion for writes (§6).
"""

from __future__ import annotations

import datetime as dt
import functools
import gzip
import math
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from simulators.sapb1.errors import SLError, invalid_property, value_too_long

METADATA_FILE = Path(__file__).with_name("metadata-v1.xml.gz")
_EDM = "{http://schemas.microsoft.com/ado/2009/11/edm}"


@dataclass
class Enum:
    name: str
    by_name: dict[str, str]  # member name -> stored value
    by_value: dict[str, str]  # stored value -> member name
    first: str


@dataclass
class Prop:
    name: str
    kind: str  # str int float bool date time enum coll complex
    writable: bool = True
    default: Any = None
    enum: Enum | None = None
    elem: str | None = None  # element type of coll/complex
    maxlen: int | None = None
    column: str | None = None  # database column (the metadata's `Alias`), for error tags


@dataclass
class Type:
    name: str
    key: tuple[str, ...]
    props: dict[str, Prop]


@dataclass
class EntitySet:
    name: str
    type_name: str
    key: tuple[str, ...]
    kind: str  # document, bp, item, master, udf, subscription
    table: str = ""
    object_code: int = 0
    deletable: bool = True
    etag: bool = False
    key_assigned: bool = False  # key given by B1 (DocEntry, GroupNumber, FieldID)
    v2_only: bool = False
    line_table: str = ""
    bo_enum: str = ""  # BoObjectTypes member for DocObjectCode
    extra: dict[str, Any] = field(default_factory=dict)


# -- column lengths (contract §6.2, 10.0 columns) ------------------------------------------------
_ADDR100 = ("Address", "MailAddress", "City", "County", "Block", "StreetNo", "MailCity", "MailCounty", "MailBlock")
LENGTHS: dict[str, dict[str, int]] = {
    "Document": {"CardCode": 15, "CardName": 100, "NumAtCard": 100, "Comments": 254, "JournalMemo": 254,
                 "FederalTaxID": 32, "Project": 20, "Reference1": 100, "Reference2": 100},
    "DocumentLine": {"ItemDescription": 200, "ItemCode": 50, "SupplierCatNum": 50, "FreeText": 100,
                     "AccountCode": 15, "CostingCode": 8, "CostingCode2": 8, "CostingCode3": 8,
                     "CostingCode4": 8, "CostingCode5": 8, "ProjectCode": 20, "TaxCode": 8, "WarehouseCode": 8,
                     "VatGroup": 8},
    "BusinessPartner": {"CardCode": 15, "CardName": 100, "CardForeignName": 100, "FederalTaxID": 32,
                        "EmailAddress": 100, "Phone1": 50, "Phone2": 50, "Fax": 50, "Cellular": 50,
                        "Website": 100, **dict.fromkeys(_ADDR100, 100), "ZipCode": 20, "MailZipCode": 20,
                        "Country": 3, "MailCountry": 3, "BilltoDefault": 50, "ShipToDefault": 50},
    "BPAddress": {"AddressName": 50, "AddressName2": 50, "AddressName3": 50, "Street": 100, "StreetNo": 100,
                  "Block": 100, "City": 100, "County": 100, "ZipCode": 20, "State": 3, "Country": 3,
                  "TaxCode": 8, "FederalTaxID": 32},
    "Item": {"ItemCode": 50, "ItemName": 200, "ForeignName": 200, "SupplierCatalogNo": 50},
    "ChartOfAccount": {"Code": 15, "Name": 100, "FormatCode": 210},
    "ProfitCenter": {"CenterCode": 8, "CenterName": 30},
    "DistributionRule": {"FactorCode": 8, "FactorDescription": 30},
    "Project": {"Code": 20, "Name": 100},
    "PaymentTermsType": {"PaymentTermsGroupName": 100},
    "UserFieldMD": {"Name": 50, "Description": 80, "TableName": 20},
    "SalesTaxCode": {"Code": 8, "Name": 30},
}

_TYPES_WANTED = (
    "Document", "BusinessPartner", "Item", "ChartOfAccount", "ProfitCenter", "DistributionRule",
    "Project", "PaymentTermsType", "UserFieldMD", "Dimension", "SalesTaxCode",
)

ENTITY_SETS: dict[str, EntitySet] = {
    s.name: s
    for s in (
        EntitySet("PurchaseOrders", "Document", ("DocEntry",), "document", "OPOR", 22, deletable=False,
                  etag=True, key_assigned=True, line_table="POR1", bo_enum="oPurchaseOrders"),
        EntitySet("PurchaseDeliveryNotes", "Document", ("DocEntry",), "document", "OPDN", 20, etag=True,
                  key_assigned=True, line_table="PDN1", bo_enum="oPurchaseDeliveryNotes"),
        EntitySet("PurchaseInvoices", "Document", ("DocEntry",), "document", "OPCH", 18, deletable=False,
                  etag=True, key_assigned=True, line_table="PCH1", bo_enum="oPurchaseInvoices"),
        EntitySet("Drafts", "Document", ("DocEntry",), "document", "ODRF", 112, etag=True, key_assigned=True,
                  line_table="DRF1", bo_enum="oDrafts"),
        EntitySet("BusinessPartners", "BusinessPartner", ("CardCode",), "bp", "OCRD", 2, etag=True),
        EntitySet("Items", "Item", ("ItemCode",), "item", "OITM", 4, etag=True),
        EntitySet("ChartOfAccounts", "ChartOfAccount", ("Code",), "master", "OACT", 1),
        EntitySet("ProfitCenters", "ProfitCenter", ("CenterCode",), "master", "OPRC", 61),
        EntitySet("DistributionRules", "DistributionRule", ("FactorCode",), "master", "OOCR", 62),
        EntitySet("Dimensions", "Dimension", ("DimensionCode",), "master", "ODIM", 251, deletable=False),
        EntitySet("Projects", "Project", ("Code",), "master", "OPRJ", 63),
        EntitySet("PaymentTermsTypes", "PaymentTermsType", ("GroupNumber",), "master", "OCTG", 40,
                  key_assigned=True),
        EntitySet("SalesTaxCodes", "SalesTaxCode", ("Code",), "master", "OSTC", 128),
        EntitySet("UserFieldsMD", "UserFieldMD", ("TableName", "FieldID"), "udf", "CUFD", 152,
                  key_assigned=True),
        EntitySet("EventSubscriptions", "EventSubscription", ("WebhookID",), "subscription", v2_only=True),
    )
}

DOCUMENT_SETS = {s.name: s for s in ENTITY_SETS.values() if s.kind == "document"}
DOCUMENT_BY_CODE = {s.object_code: s for s in DOCUMENT_SETS.values() if s.name != "Drafts"}
DOCUMENT_BY_ENUM = {s.bo_enum: s for s in DOCUMENT_SETS.values() if s.name != "Drafts"}

# UserFieldsMD TableName -> the type that gains the `U_` field (contract §5.11).
UDF_TABLES: dict[str, str] = {
    **dict.fromkeys(("OPOR", "OPDN", "OPCH", "ORPC", "ODRF", "OINV"), "Document"),
    **dict.fromkeys(("POR1", "PDN1", "PCH1", "RPC1", "DRF1", "INV1"), "DocumentLine"),
    "OCRD": "BusinessPartner", "CRD1": "BPAddress", "OITM": "Item", "OACT": "ChartOfAccount",
    "OPRJ": "Project", "OPRC": "ProfitCenter", "OOCR": "DistributionRule",
}

# Properties the 2019 metadata lacks but current releases carry (ETag token, stamps).
_EXTRA_PROPS: dict[str, list[Prop]] = {
    "Document": [Prop("DataVersion", "int", writable=False)],
    "BusinessPartner": [Prop("DataVersion", "int", writable=False)],
    "Item": [Prop("DataVersion", "int", writable=False)],
}


class Schema:
    """Types parsed once per process from the shipped metadata."""

    def __init__(self, types: dict[str, Type], enums: dict[str, Enum]) -> None:
        self.types = types
        self.enums = enums
        self._templates: dict[str, dict[str, Any]] = {}

    def type(self, name: str) -> Type:
        return self.types[name]

    def template(self, type_name: str) -> dict[str, Any]:
        """A fresh record of `type_name` with every property at its default (contract §6)."""
        base = self._templates.get(type_name)
        if base is None:
            base = {p.name: p.default for p in self.types[type_name].props.values()}
            self._templates[type_name] = base
        record = dict(base)
        for p in self.types[type_name].props.values():
            if p.kind == "coll":
                record[p.name] = []
            elif p.kind == "complex":
                record[p.name] = {}
        return record


def _enum_default(enum: Enum, raw: str | None) -> str:
    if raw is not None and raw in enum.by_value:
        return enum.by_value[raw]
    return enum.first


def _edm_kind(edm: str) -> str:
    return {
        "Edm.String": "str", "Edm.Int32": "int", "Edm.Int16": "int", "Edm.Int64": "int", "Edm.Double": "float",
        "Edm.Decimal": "float", "Edm.Boolean": "bool", "Edm.DateTime": "date", "Edm.Time": "time",
        "Edm.DateTimeOffset": "date", "Edm.Guid": "str", "Edm.Binary": "str", "Edm.Byte": "int",
    }.get(edm, "str")


def _parse_prop(el: ET.Element, enums: dict[str, Enum], complex_names: set[str], lengths: dict[str, int]) -> Prop:
    name = el.get("Name", "")
    edm = el.get("Type", "Edm.String")
    raw = el.get("DefaultValue")
    writable = el.get("Writable", "true") != "false"
    column = el.get("Alias") or name
    if edm.startswith("Collection("):
        return Prop(name, "coll", writable=True, elem=edm[len("Collection(SAPB1."):-1], column=column)
    if edm.startswith("SAPB1."):
        short = edm[6:]
        if short in enums:
            enum = enums[short]
            return Prop(name, "enum", writable, _enum_default(enum, raw), enum=enum, column=column)
        if short in complex_names:
            return Prop(name, "complex", True, elem=short, column=column)
        return Prop(name, "str", writable, column=column)
    kind = _edm_kind(edm)
    default: Any = None
    if kind == "float":
        default = float(raw) if raw not in (None, "") else 0.0
    elif kind == "int" and raw not in (None, ""):
        default = int(raw)
    elif kind == "str":
        default = raw
    elif kind == "date" and raw and re.fullmatch(r"\d{8}", raw):
        default = f"{raw[:4]}-{raw[4:6]}-{raw[6:]}"
    return Prop(name, kind, writable, default, maxlen=lengths.get(name), column=column)


@functools.lru_cache(maxsize=1)
def metadata_xml() -> bytes:
    with gzip.open(METADATA_FILE, "rb") as fh:
        return fh.read()


_EDM_OF_KIND = {"str": "Edm.String", "int": "Edm.Int32", "float": "Edm.Double", "date": "Edm.DateTime"}
_ADDON_UDF = re.compile(rb'[ \t]*<Property [^>]*Name="U_[^"]*"[^>]*/>\r?\n')
_ALIAS = re.compile(rb' Alias="[^"]*"')


@functools.lru_cache(maxsize=32)
def _metadata_variant(udf_signature: tuple, with_mapping: bool) -> bytes:
    text = _ADDON_UDF.sub(b"", metadata_xml())  # the 2019 demo's add-on fields; ours come from UserFieldsMD
    if not with_mapping:  # DB column aliases only with `B1S-WithMappingInfo: 1` (§5.12)
        text = _ALIAS.sub(b"", text)
    for type_name, props in udf_signature:
        start = re.search(rb'<(EntityType|ComplexType) Name="' + type_name.encode() + rb'">', text)
        if not start:
            continue
        end = text.index(b"</" + start.group(1) + b">", start.end())
        added = b"".join(
            b'                <Property Name="' + name.encode() + b'" Type="' + _EDM_OF_KIND.get(kind, "Edm.String").encode()
            + b'" Nullable="true" Writable="true"/>\n' for name, kind in props)
        text = text[:end] + added + b"            " + text[end:].lstrip()
    return text


def metadata_document(udfs: dict[str, dict[str, Prop]], with_mapping: bool) -> bytes:
    """The CSDL served at `$metadata`: SAP's document with our user-defined fields added."""
    signature = tuple(sorted((t, tuple((p.name, p.kind) for p in props.values())) for t, props in udfs.items()))
    return _metadata_variant(signature, with_mapping)


@functools.lru_cache(maxsize=1)
def load_schema() -> Schema:
    root = ET.fromstring(metadata_xml())
    schema_el = next(root.iter(f"{_EDM}Schema"))
    enums: dict[str, Enum] = {}
    structured: dict[str, ET.Element] = {}
    for el in schema_el:
        tag = el.tag[len(_EDM):]
        if tag == "EnumType":
            members = [(m.get("Name", ""), m.get("Value", "")) for m in el]
            enums[el.get("Name", "")] = Enum(
                el.get("Name", ""), dict(members), {v: n for n, v in members}, members[0][0] if members else ""
            )
        elif tag in ("EntityType", "ComplexType"):
            structured[el.get("Name", "")] = el
    complex_names = set(structured)
    types: dict[str, Type] = {}

    def build(name: str) -> None:
        if name in types or name not in structured:
            return
        el = structured[name]
        key = tuple(k.get("Name", "") for k in el.iter(f"{_EDM}PropertyRef"))
        lengths = LENGTHS.get(name, {})
        props: dict[str, Prop] = {}
        for p_el in el.findall(f"{_EDM}Property"):
            if p_el.get("Name", "").startswith("U_"):
                continue  # the 2019 demo company's add-on fields; ours come from UserFieldsMD
            prop = _parse_prop(p_el, enums, complex_names, lengths)
            props[prop.name] = prop
        for extra in _EXTRA_PROPS.get(name, []):
            props.setdefault(extra.name, extra)
        types[name] = Type(name, key, props)
        for prop in props.values():
            if prop.elem:
                build(prop.elem)

    for name in _TYPES_WANTED:
        build(name)
    _add_event_subscription(types)
    return Schema(types, enums)


def _add_event_subscription(types: dict[str, Type]) -> None:
    """`EventSubscription` (FP 2602+, v2 only) is not in the 2019 metadata; modelled from contract §10."""
    yes_no = Enum("BoYesNoEnum", {"tNO": "N", "tYES": "Y"}, {"N": "tNO", "Y": "tYES"}, "tNO")

    def enum(name: str, members: list[str], default: str) -> Enum:
        return Enum(name, {m: m for m in members}, {m: m for m in members}, default)

    event = Type("EventSubscriptionEvent", (), {
        "BusinessObject": Prop("BusinessObject", "str"),
        "TransactionType": Prop("TransactionType", "str"),
        "BizObjProps": Prop("BizObjProps", "str"),
        "FilterExpr": Prop("FilterExpr", "str"),
    })
    auth = enum("WebhookAuthenticationTypeEnum", ["None", "Basic", "HMAC", "OAuth"], "HMAC")
    state = enum("WebhookStateEnum", ["Active", "Inactive", "Exceptional"], "Active")
    mode = enum("WebhookWorkModeEnum", ["Standard", "Replay"], "Standard")
    props = [
        Prop("WebhookID", "str", maxlen=50), Prop("WebhookURL", "str", maxlen=254),
        Prop("AuthenticationType", "enum", default="HMAC", enum=auth),
        Prop("AuthenticationCred", "str"),
        Prop("VerifyCertificate", "enum", default="tYES", enum=yes_no),
        Prop("Handshake", "enum", default="tYES", enum=yes_no),
        Prop("State", "enum", writable=False, default="Active", enum=state),
        Prop("WorkMode", "enum", default="Standard", enum=mode),
        Prop("EventCollection", "coll", elem="EventSubscriptionEvent"),
    ]
    types["EventSubscriptionEvent"] = event
    types["EventSubscription"] = Type("EventSubscription", ("WebhookID",), {p.name: p for p in props})


# -- value coercion (writes) -----------------------------------------------------------------

_DATE_RE = re.compile(r"^(\d{4})-?(\d{2})-?(\d{2})(?:T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?$")
_TIME_RE = re.compile(r"^(\d{1,2}):(\d{2})(?::(\d{2}))?$")
_INT_RE = re.compile(r"^[+-]?\d+$")


def parse_date(value: str) -> str | None:
    """`2024-05-02`, `2024-05-02T00:00:00Z` or `20240502` -> `2024-05-02`; None if not a date."""
    m = _DATE_RE.match(value.strip())
    if not m:
        return None
    try:
        return dt.date(int(m[1]), int(m[2]), int(m[3])).isoformat()
    except ValueError:
        return None


def coerce_value(prop: Prop, value: Any, type_name: str, schema: Schema, udfs: dict[str, dict[str, Prop]]) -> Any:
    if value is None:
        if prop.kind in ("coll", "complex"):
            raise invalid_property(prop.name, type_name)
        return None
    kind = prop.kind
    if kind == "str":
        if not isinstance(value, str):
            raise invalid_property(prop.name, type_name)
        if prop.maxlen is not None and len(value) > prop.maxlen:
            raise value_too_long(prop.name, type_name)
        return value
    if kind == "int":
        if isinstance(value, bool):
            raise invalid_property(prop.name, type_name)
        if isinstance(value, int):
            if abs(value) > 2_147_483_647:  # Int32 columns
                raise invalid_property(prop.name, type_name)
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str) and _INT_RE.match(value.strip()):
            return int(value)
        raise invalid_property(prop.name, type_name)
    if kind == "float":
        if isinstance(value, bool):
            raise invalid_property(prop.name, type_name)
        number: float | None = None
        if isinstance(value, (int, float)):
            number = float(value)
        elif isinstance(value, str):
            try:
                number = float(value)
            except ValueError:
                number = None
        if number is None or not math.isfinite(number) or abs(number) > 1e15:
            raise invalid_property(prop.name, type_name)
        return number
    if kind == "enum":
        assert prop.enum is not None
        if isinstance(value, str):
            if value in prop.enum.by_name:
                return value
            if value in prop.enum.by_value:
                return prop.enum.by_value[value]
        raise invalid_property(prop.name, type_name)
    if kind == "date":
        parsed = parse_date(value) if isinstance(value, str) else None
        if parsed is None:
            raise invalid_property(prop.name, type_name)
        return parsed
    if kind == "time":
        m = _TIME_RE.match(value) if isinstance(value, str) else None
        if not m or int(m[1]) > 23 or int(m[2]) > 59:
            raise invalid_property(prop.name, type_name)
        return f"{int(m[1]):02d}:{m[2]}:{m[3] or '00'}"
    if kind == "bool":
        if not isinstance(value, bool):
            raise invalid_property(prop.name, type_name)
        return value
    if kind == "coll":
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            raise invalid_property(prop.name, type_name)
        return [coerce_object(schema, prop.elem or "", member, udfs) for member in value]
    if kind == "complex":
        if not isinstance(value, dict):
            raise invalid_property(prop.name, type_name)
        return coerce_object(schema, prop.elem or "", value, udfs)
    return value


def coerce_object(
    schema: Schema, type_name: str, body: dict[str, Any], udfs: dict[str, dict[str, Prop]]
) -> dict[str, Any]:
    """Validate and normalise a write body: unknown -> -1000, too long -> -8112, read-only dropped."""
    tdef = schema.types.get(type_name)
    type_udfs = udfs.get(type_name, {})
    out: dict[str, Any] = {}
    for name, value in body.items():
        prop = tdef.props.get(name) if tdef else None
        if prop is None:
            prop = type_udfs.get(name)
        if prop is None:
            if "odata." in name:  # annotations a client echoes back from a read
                continue
            raise invalid_property(name, type_name)
        if not prop.writable:
            continue
        out[name] = coerce_value(prop, value, type_name, schema, udfs)
    return out


def udf_prop(field_md: dict[str, Any]) -> Prop:
    """The `U_<Name>` property a UserFieldsMD row declares (contract §5.11)."""
    kind = {"db_Alpha": "str", "db_Memo": "str", "db_Numeric": "int", "db_Float": "float", "db_Date": "date"}.get(
        field_md.get("Type") or "db_Alpha", "str"
    )
    maxlen = None
    if field_md.get("Type", "db_Alpha") == "db_Alpha":
        maxlen = min(int(field_md.get("Size") or field_md.get("EditSize") or 10), 254)
    default: Any = field_md.get("DefaultValue")
    if default is not None and kind == "int":
        default = int(default) if _INT_RE.match(str(default)) else None
    elif default is not None and kind == "float":
        try:
            default = float(default)
        except ValueError:
            default = None
    elif default is not None and kind == "date":
        default = parse_date(str(default))
    return Prop(f"U_{field_md['Name']}", kind, True, default, maxlen=maxlen)


# -- rendering (reads) -----------------------------------------------------------------------


def render(schema: Schema, type_name: str, record: dict[str, Any], v2: bool, udfs: dict[str, dict[str, Prop]]) -> dict:
    """The record as the root serialises it: v2 dates get `T00:00:00Z`; nested collections alike."""
    if not v2:
        return record
    tdef = schema.types.get(type_name)
    if tdef is None:
        return record
    props = tdef.props
    type_udfs = udfs.get(type_name, {})
    out: dict[str, Any] = {}
    for name, value in record.items():
        if value is not None:
            prop = props.get(name) or type_udfs.get(name)
            if prop is not None:
                if prop.kind == "date":
                    value = f"{value}T00:00:00Z"
                elif prop.kind == "coll" and value:
                    value = [render(schema, prop.elem or "", m, True, udfs) for m in value]
        out[name] = value
    return out


def format_key(eset: EntitySet, key: tuple) -> str:
    """`('V10000')`, `(12)` or `(TableName='OPOR',FieldID=3)` for Location headers and links."""

    def one(value: Any) -> str:
        if isinstance(value, str):
            return "'" + value.replace("'", "''") + "'"
        return str(value)

    if len(eset.key) == 1:
        return f"({one(key[0])})"
    return "(" + ",".join(f"{n}={one(v)}" for n, v in zip(eset.key, key, strict=True)) + ")"


def parse_key(eset: EntitySet, schema: Schema, text: str) -> tuple:
    """Parse the inside of `(...)`: `'O''Brien'`, `12`, or `TableName='OPOR',FieldID=3`."""
    parts = _split_key(text)
    tdef = schema.types[eset.type_name]
    values: dict[str, Any] = {}
    for index, part in enumerate(parts):
        name, sep, raw = part.partition("=")
        if not sep or name.startswith("'"):
            name, raw = (eset.key[index] if index < len(eset.key) else ""), part
        name = name.strip()
        if name not in eset.key:
            raise SLError(400, -1000, f"Invalid key value: ({text})")
        values[name] = _key_literal(raw.strip(), tdef.props[name].kind, text)
    if set(values) != set(eset.key):
        raise SLError(400, -1000, f"Invalid key value: ({text})")
    return tuple(values[n] for n in eset.key)


def _split_key(text: str) -> list[str]:
    parts, current, quoted = [], [], False
    for ch in text:
        if ch == "'":
            quoted = not quoted
        if ch == "," and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return parts


def _key_literal(raw: str, kind: str, text: str) -> Any:
    if kind == "str":
        if len(raw) >= 2 and raw[0] == raw[-1] == "'":
            return raw[1:-1].replace("''", "'")
        raise SLError(400, -1000, f"Invalid key value: ({text})")
    if _INT_RE.match(raw):
        return int(raw)
    raise SLError(400, -1000, f"Invalid key value: ({text})")
