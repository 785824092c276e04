"""Regenerate the JSON Schemas of the Service Layer payloads the engine writes.

Source: SAP's `$metadata` for `/b1s/v1` (Apache-2.0, `SAP-archive/SAP-Business-One-Service-Layer-SDK`,
`svcl/svcl-client-openfeign/src/main/resources/metadata.xml`), for property names, types, enum members
and read-only flags; maximum string lengths from the contract's §6.2 (SAP's table reference, 10.0).
Run by hand when the metadata or the length table changes; the engine reads only the JSON output:

    python schemas/sapb1/generate.py /path/to/metadata-v1.xml
"""

from __future__ import annotations

import json
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

NS = {"edm": "http://schemas.microsoft.com/ado/2009/11/edm"}
HERE = Path(__file__).parent

# Maximum lengths (characters) of the strings the engine writes: contract §6.2, 10.0 columns.
LENGTHS = {
    "Document": {
        "CardCode": 15, "CardName": 100, "NumAtCard": 100, "Comments": 254, "JournalMemo": 254,
        "FederalTaxID": 32, "Project": 20,
    },
    "DocumentLine": {
        "ItemCode": 50, "ItemDescription": 200, "SupplierCatNum": 50, "FreeText": 100, "AccountCode": 15,
        "CostingCode": 8, "CostingCode2": 8, "CostingCode3": 8, "CostingCode4": 8, "CostingCode5": 8,
        "ProjectCode": 20, "TaxCode": 8, "WarehouseCode": 8,
    },
    "BusinessPartner": {
        "CardCode": 15, "CardName": 100, "CardForeignName": 100, "FederalTaxID": 32, "EmailAddress": 100,
        "Phone1": 50, "Phone2": 50, "Fax": 50, "Cellular": 50, "Website": 100, "Address": 100,
        "MailAddress": 100, "City": 100, "County": 100, "Block": 100, "StreetNo": 100, "ZipCode": 20,
        "MailZipCode": 20, "Country": 3, "BilltoDefault": 50, "ShipToDefault": 50,
    },
    "BPAddress": {
        "AddressName": 50, "AddressName2": 50, "AddressName3": 50, "Street": 100, "StreetNo": 100,
        "Block": 100, "City": 100, "County": 100, "ZipCode": 20, "State": 3, "Country": 3, "TaxCode": 8,
        "FederalTaxID": 32,
    },
}
USER_FIELD_MAX = 254  # `U_` alpha fields: the simulator caps Size at 254; the exact size is per field

# Dates: v1 "YYYY-MM-DD", v2 "YYYY-MM-DDT00:00:00Z", and "YYYYMMDD" (contract §6).
DATE = {"type": "string", "pattern": r"^\d{4}-?\d{2}-?\d{2}(T00:00:00(\.0+)?Z?)?$"}
TIME = {"type": "string", "pattern": r"^\d{2}:\d{2}(:\d{2})?$"}

# Entity set -> (entity type, collections whose member schema is spelled out)
TARGETS = {
    "PurchaseOrders": ("Document", {"DocumentLines": "DocumentLine"}),
    "PurchaseInvoices": ("Document", {"DocumentLines": "DocumentLine"}),
    "BusinessPartners": ("BusinessPartner", {"BPAddresses": "BPAddress"}),
}

# Reserved keys a mapping may add for the loader; stripped before sending (see engine/mapping).
RESERVED_HEADER = {"_ref": {"type": "string"}}
RESERVED_LINE = {
    "_key": {"type": "string", "description": "identity of the source line (J1P lineNumber)"},
    "_base": {
        "type": "object",
        "description": "the PO line an invoice line copies from; resolved by the loader to BaseType/BaseEntry/BaseLine",
        "required": ["po_number", "line_number"],
        "properties": {
            "po_number": {"type": "string"},
            "line_number": {"type": "string"},
            "doc_entry": {"type": "integer"},
            "line_num": {"type": "integer"},
        },
        "additionalProperties": False,
    },
}


def _types(schema: ET.Element) -> tuple[dict[str, ET.Element], dict[str, list[str]]]:
    types = {}
    for kind in ("EntityType", "ComplexType"):
        for el in schema.findall(f"edm:{kind}", NS):
            types[el.get("Name")] = el
    enums = {el.get("Name"): [m.get("Name") for m in el.findall("edm:Member", NS)] for el in schema.findall("edm:EnumType", NS)}
    return types, enums


def _property_schema(ptype: str, enums: dict[str, list[str]]) -> dict | None:
    if ptype == "Edm.String":
        return {"type": "string"}
    if ptype in ("Edm.Int32", "Edm.Int16", "Edm.Int64"):
        return {"type": "integer"}
    if ptype in ("Edm.Double", "Edm.Decimal"):
        return {"type": "number"}
    if ptype == "Edm.DateTime":
        return dict(DATE)
    if ptype == "Edm.Time":
        return dict(TIME)
    if ptype.startswith("SAPB1.") and ptype[6:] in enums:
        return {"type": "string", "enum": enums[ptype[6:]]}
    return None


def _object_schema(type_name: str, types, enums, expand: dict[str, str], reserved: dict) -> dict:
    el = types[type_name]
    props: dict[str, dict] = {}
    lengths = LENGTHS.get(type_name, {})
    for p in el.findall("edm:Property", NS):
        name, ptype = p.get("Name"), p.get("Type")
        if p.get("Writable") == "false":
            continue  # read-only: B1 ignores it on writes, a mapping sending it is a mistake
        if ptype.startswith("Collection("):
            inner = ptype[len("Collection(SAPB1."):-1]
            if name in expand:
                item = _object_schema(expand[name], types, enums, {}, RESERVED_LINE if expand[name] == "DocumentLine" else {"_key": RESERVED_LINE["_key"]})
            else:
                item = {"type": "object", "description": f"SAPB1.{inner}"}
            props[name] = {"type": "array", "items": item}
            continue
        sch = _property_schema(ptype, enums)
        if sch is None:
            props[name] = {"type": "object", "description": ptype}
            continue
        if name in lengths:
            sch["maxLength"] = lengths[name]
        props[name] = sch
    props.update(reserved)
    return {
        "type": "object",
        "properties": dict(sorted(props.items())),
        "patternProperties": {"^U_[A-Za-z0-9_]+$": {"type": ["string", "number", "integer", "null"], "maxLength": USER_FIELD_MAX}},
        "additionalProperties": False,
    }


def main(metadata: Path) -> None:
    schema = ET.parse(metadata).getroot().find(".//edm:Schema", NS)
    types, enums = _types(schema)
    for entity_set, (type_name, expand) in TARGETS.items():
        body = _object_schema(type_name, types, enums, expand, RESERVED_HEADER)
        doc = {
            "$schema": "http://json-schema.org/draft-07/schema#",
            "$id": f"sapb1/{entity_set}.schema.json",
            "title": f"SAP B1 Service Layer {entity_set} payload (writable properties of {type_name})",
            "$comment": "Generated by schemas/sapb1/generate.py from SAP's $metadata (v1, Apache-2.0) and the "
            "contract's §6.2 lengths (10.0). Keys starting with '_' are the engine's reserved keys, never sent.",
            **body,
        }
        (HERE / f"{entity_set}.schema.json").write_text(json.dumps(doc, indent=1) + "\n")
        print(f"wrote {entity_set}.schema.json: {len(body['properties'])} properties")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "/work/shared/fixtures/sapb1/metadata-v1.xml"))
