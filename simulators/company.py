"""The demo manufacturer both simulators serve: its chart of accounts and cost centres, one list.

SAP B1's demo company (`simulators.sapb1.seed`) holds them as master data; the JAGGAER tenant
(`simulators.jaggaer.catalog`) codes its lines with the expense accounts and cost centres, so the
engine's mapping rules can map every generated line.
"""

from __future__ import annotations

ACCOUNTS: dict[str, str] = {
    "140000": "Inventory",
    "210000": "Accounts payable",
    "510000": "Raw materials",
    "520000": "Packaging",
    "612000": "Repairs and maintenance",
    "613000": "Tools and consumables",
    "620000": "Freight in",
    "640000": "IT services",
    "650000": "Professional services",
    "710000": "Office supplies",
}
EXPENSE_ACCOUNTS: dict[str, str] = {code: name for code, name in ACCOUNTS.items() if code[0] in "567"}

# Dimension 1 in SAP B1: cost centres (profit centres, each with its direct distribution rule).
COST_CENTRES: dict[str, str] = {
    "PLANT1": "Plant 1 production",
    "PLANT2": "Plant 2 production",
    "MAINT": "Maintenance",
    "QA": "Quality assurance",
    "LOGIST": "Logistics",
    "ADMIN": "Administration",
    "IT": "Information technology",
}
