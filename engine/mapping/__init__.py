"""Mappings: staged J1P records -> Service Layer payloads (and B1 partners -> J1P updates).

Public API (for the loader, the plan and the CLI):

    mapping = load_mapping("mappings/purchase_order.yaml")        # ConfigError when invalid
    mapping.lookups.crosswalk = ledger.load_crosswalk(conn)         # or render(..., lookups=Lookups(...))
    mapping.lookups.reference_codes = {"accounts": {...}, "costing1": {...}, "projects": {...}}
    result = mapping.render(record, key)                          # RenderResult: ok | wait | quarantine | skip
    result.payload, result.reason, result.mapping_version, result.external_ref, result.crosswalk_key
    strip_reserved(result.payload)                                # what B1 receives (no `_key`, `_base`)
    check_mapping_file(path, target_entity="PurchaseOrders")      # list[Problem] for `validate`
"""

from engine.mapping.check import check_mapping_file
from engine.mapping.core import (
    CrosswalkEntry,
    Lookups,
    MappingFile,
    RenderResult,
    base_links,
    load_mapping,
    mapping_version,
    strip_reserved,
)
from engine.rules import check_rule_codes, load_rule_tables

__all__ = [
    "CrosswalkEntry",
    "Lookups",
    "MappingFile",
    "RenderResult",
    "base_links",
    "check_mapping_file",
    "check_rule_codes",
    "load_mapping",
    "load_rule_tables",
    "mapping_version",
    "strip_reserved",
]
