"""Demo company data (`--seed demo`): the master data of the demo company (`simulators.company`) and more.

Plain importable constants so other parts (the JAGGAER simulator's GL accounts and cost centres,
the mappings, the tests) agree with what B1 holds. Codes are plain, not `_SYS...` internal codes.
"""

from __future__ import annotations

from typing import Any

from simulators.company import ACCOUNTS, COST_CENTRES

# (Code, Name, postable?) -- title accounts are not postable (`ActiveAccount` tNO).
DEMO_TITLE_ACCOUNTS: list[tuple[str, str]] = [
    ("100000", "Assets"),
    ("200000", "Liabilities"),
    ("500000", "Cost of sales"),
    ("600000", "Operating expenses"),
    ("700000", "Administrative expenses"),
]
DEMO_ACCOUNTS: dict[str, str] = ACCOUNTS
DEMO_EXPENSE_ACCOUNTS = [code for code in DEMO_ACCOUNTS if code[0] in "567"]
STOCK_ACCOUNT = "140000"
AP_CONTROL_ACCOUNT = "210000"

# Dimension 1: cost centres (profit centres, each with its direct distribution rule).
DEMO_COST_CENTERS: dict[str, str] = COST_CENTRES
# Dimension 2: departments.
DEMO_DEPARTMENTS: dict[str, str] = {"PROD": "Production", "SALES": "Sales", "FIN": "Finance"}
# A shared (non-direct) rule in dimension 1 and an inactive one for negative tests.
DEMO_SPLIT_RULE = ("PLANTS", "Plants 60/40", [("PLANT1", 60.0), ("PLANT2", 40.0)])
INACTIVE_COST_CENTER = "OLDCC"
DEMO_DIMENSIONS: dict[int, str] = {1: "Cost centre", 2: "Department", 3: "Dimension 3", 4: "Dimension 4",
                                   5: "Dimension 5"}

DEMO_PROJECTS: dict[str, str] = {
    "P-2024-01": "Line 3 retrofit",
    "P-2024-02": "Warehouse racking",
    "P-CAPEX": "Capital expenditure",
}
INACTIVE_PROJECT = "P-2019-OLD"

# GroupNumber -> (name, additional days)
DEMO_PAYMENT_TERMS: dict[int, tuple[str, int]] = {
    1: ("Immediate", 0),
    2: ("Net 30", 30),
    3: ("Net 45", 45),
    4: ("2% 10 Net 30", 30),
}
PAYMENT_TERMS_BY_NAME = {name: number for number, (name, _) in DEMO_PAYMENT_TERMS.items()}

DEMO_TAX_CODES: dict[str, tuple[str, float]] = {"EX": ("Exempt", 0.0), "TX8": ("Sales tax 8%", 8.0)}

# ItemCode -> (name, expense account, purchase unit)
DEMO_ITEMS: dict[str, tuple[str, str, str]] = {
    "BRK-2210": ("Mounting bracket 22x10", "510000", "EA"),
    "SEAL-0031": ("Shaft seal 31 mm", "510000", "EA"),
    "BOLT-M8": ("Hex bolt M8x40", "613000", "BOX"),
    "CART-500": ("Carton 500x400x300", "520000", "EA"),
    "GLOVE-NIT": ("Nitrile gloves (100)", "613000", "BOX"),
}
NON_PURCHASE_ITEM = "FG-PUMP"  # a sales-only finished good: not allowed on purchasing documents

# CardCode -> (name, payment terms GroupNumber, federal tax id, city)
DEMO_SUPPLIERS: dict[str, tuple[str, int, str, str]] = {
    "V10000": ("Acme Industrial Supply", 2, "47-1000001", "Dayton"),
    "V10001": ("Northwind Components", 3, "47-1000002", "Columbus"),
    "V10002": ("Harbor Fasteners", 4, "47-1000003", "Toledo"),
    "V10003": ("Bluegrass Packaging", 2, "47-1000004", "Louisville"),
    "V10004": ("Keystone IT Services", 1, "47-1000005", "Pittsburgh"),
}
DEMO_CUSTOMER = ("C20000", "Midwest Pumps Retail")  # not a supplier: rejected on purchasing documents


def demo_records() -> list[tuple[str, dict[str, Any]]]:
    """(entity set, POST body) in dependency order."""
    out: list[tuple[str, dict[str, Any]]] = []
    for number, name in DEMO_DIMENSIONS.items():
        out.append(("Dimensions", {"DimensionCode": number, "DimensionName": name,
                                   "IsActive": "tYES" if number <= 2 else "tNO"}))
    for code, name in DEMO_TITLE_ACCOUNTS:
        out.append(("ChartOfAccounts", {"Code": code, "Name": name, "FormatCode": code, "ActiveAccount": "tNO",
                                        "AccountLevel": 1}))
    for code, name in DEMO_ACCOUNTS.items():
        kind = "at_Expenses" if code[0] in "567" else "at_Other"
        out.append(("ChartOfAccounts", {"Code": code, "Name": name, "FormatCode": code, "AccountType": kind,
                                        "FatherAccountKey": code[0] + "00000", "ActiveAccount": "tYES",
                                        "AcctCurrency": "##"}))
    for code, name in DEMO_COST_CENTERS.items():
        out.append(("ProfitCenters", {"CenterCode": code, "CenterName": name, "InWhichDimension": 1}))
    for code, name in DEMO_DEPARTMENTS.items():
        out.append(("ProfitCenters", {"CenterCode": code, "CenterName": name, "InWhichDimension": 2}))
    out.append(("ProfitCenters", {"CenterCode": INACTIVE_COST_CENTER, "CenterName": "Closed cost centre",
                                  "InWhichDimension": 1, "Active": "tNO"}))
    code, name, lines = DEMO_SPLIT_RULE
    out.append(("DistributionRules", {
        "FactorCode": code, "FactorDescription": name, "InWhichDimension": 1, "Direct": "N",
        "DistributionRuleLines": [{"CenterCode": c, "TotalInCenter": share} for c, share in lines]}))
    for code, name in DEMO_PROJECTS.items():
        out.append(("Projects", {"Code": code, "Name": name, "ValidFrom": "2024-01-01"}))
    out.append(("Projects", {"Code": INACTIVE_PROJECT, "Name": "Finished project", "Active": "tNO"}))
    for _number, (name, days) in DEMO_PAYMENT_TERMS.items():
        out.append(("PaymentTermsTypes", {"PaymentTermsGroupName": name, "NumberOfAdditionalDays": days}))
    for code, (name, rate) in DEMO_TAX_CODES.items():
        out.append(("SalesTaxCodes", {"Code": code, "Name": name, "_Rate": rate}))
    for code, (name, account, unit) in DEMO_ITEMS.items():
        out.append(("Items", {"ItemCode": code, "ItemName": name, "ExpanseAccount": account,
                              "PurchaseUnit": unit, "ItemClass": "itcMaterial"}))
    out.append(("Items", {"ItemCode": NON_PURCHASE_ITEM, "ItemName": "Centrifugal pump", "PurchaseItem": "tNO"}))
    for card, (name, terms, tax_id, city) in DEMO_SUPPLIERS.items():
        out.append(("BusinessPartners", {
            "CardCode": card, "CardName": name, "CardType": "cSupplier", "PayTermsGrpCode": terms,
            "FederalTaxID": tax_id, "DebitorAccount": AP_CONTROL_ACCOUNT,
            "EmailAddress": f"ap@{card.lower()}.example",
            "BPAddresses": [{"AddressName": "REMIT", "AddressType": "bo_BillTo", "Street": "1 Main St",
                             "City": city, "Country": "US", "State": "OH", "ZipCode": "45402"}]}))
    out.append(("BusinessPartners", {"CardCode": DEMO_CUSTOMER[0], "CardName": DEMO_CUSTOMER[1],
                                     "CardType": "cCustomer"}))
    return out


def load_demo(rules: Any) -> None:
    """Create the demo company through the business rules (so defaults and checks apply)."""
    from simulators.sapb1.entities import ENTITY_SETS

    store = rules.store
    with store.transaction():
        for set_name, body in demo_records():
            eset = ENTITY_SETS[set_name]
            body = dict(body)
            if set_name == "Dimensions":  # B1 ships the five dimensions; they cannot be POSTed
                record = rules.new_record("Dimension")
                record.update(body)
                store.put(set_name, (body["DimensionCode"],), record)
                continue
            rate = body.pop("_Rate", None)
            key, record = rules.create(eset, body)
            if rate is not None:  # `Rate` is read-only: B1 derives it from the tax code's lines
                record["Rate"] = rate
    store.writes = {}
    store.write_total = 0
    store.save()
