"""Static code lists of the demo tenant: GL accounts, cost centres, commodities, items, places.

The accounts and cost centres are the demo company's (`simulators.company`), which the SAP B1
simulator holds as its chart of accounts and distribution rules, so the engine's mapping rules can map every generated line. Commodity
codes are UNSPSC-like and each one belongs to one account, so rule tables keyed on the commodity
make sense.
"""

from __future__ import annotations

from typing import NamedTuple

from simulators.company import COST_CENTRES as COMPANY_COST_CENTRES
from simulators.company import EXPENSE_ACCOUNTS

ACCOUNTS: dict[str, str] = EXPENSE_ACCOUNTS
COST_CENTRES: dict[str, str] = COMPANY_COST_CENTRES

# A GL account that is NOT in the B1 demo chart (data-quality wart, only with `dirty_data_rate`).
UNKNOWN_ACCOUNT = ("999999", "Legacy clearing account")


class CatalogItem(NamedTuple):
    description: str
    catalog_number: str
    manufacturer: str | None
    manufacturer_part: str | None
    commodity: str
    product_type: str  # CatalogItem / NonCatalogItem
    uom: str
    price_low: float
    price_high: float
    qty_low: int
    qty_high: int


class Commodity(NamedTuple):
    code: str
    name: str
    account: str
    cost_centres: tuple[str, ...]


COMMODITIES: dict[str, Commodity] = {
    c.code: c
    for c in (
        Commodity("31160000", "Hardware and fasteners", "510000", ("PLANT1", "PLANT2")),
        Commodity("24112400", "Containers and storage", "520000", ("PLANT1", "PLANT2", "LOGIST")),
        Commodity("25174100", "Braking systems and parts", "612000", ("MAINT", "PLANT1", "PLANT2")),
        Commodity("27110000", "Hand tools", "613000", ("MAINT", "QA", "PLANT1")),
        Commodity("78101800", "Road cargo transport", "620000", ("LOGIST",)),
        Commodity("43211500", "Computers", "640000", ("IT", "ADMIN")),
        Commodity("80101500", "Business consulting", "650000", ("ADMIN", "QA")),
        Commodity("44121600", "Desk supplies", "710000", ("ADMIN", "IT")),
    )
}

ITEMS: tuple[CatalogItem, ...] = (
    CatalogItem("Hex bolt M12x60, zinc plated", "HB-1260Z", "Boltmaster", "BM-1260-Z", "31160000", "CatalogItem", "BX", 18.5, 32.0, 5, 60),
    CatalogItem("Flange nut M10, grade 8", "FN-1008", "Boltmaster", "BM-FN10-8", "31160000", "CatalogItem", "BX", 9.2, 15.8, 10, 120),
    CatalogItem("Steel plate S355, 10 mm", "SP-355-10", "Keystone Steel", "KS-S355-10", "31160000", "CatalogItem", "KG", 1.1, 1.9, 200, 4000),
    CatalogItem("Aluminium round bar 40 mm", "AL-RB40", "Alcor", "AC-6082-40", "31160000", "CatalogItem", "M", 14.0, 22.0, 10, 300),
    CatalogItem("Shaft seal 31 mm", "SEAL-0031", None, None, "31160000", "CatalogItem", "EA", 0.6, 1.4, 20, 400),
    CatalogItem("Corrugated box 600x400x400", "CB-644", "PackRight", "PR-644-DW", "24112400", "CatalogItem", "EA", 1.2, 2.6, 100, 2000),
    CatalogItem("Stretch film 500 mm x 300 m", "SF-500", "PackRight", "PR-SF500", "24112400", "CatalogItem", "EA", 11.0, 19.0, 12, 200),
    CatalogItem("Euro pallet 1200x800", "EP-1208", None, None, "24112400", "NonCatalogItem", "EA", 9.0, 16.0, 20, 400),
    CatalogItem("Plastic tote 60 l, stackable", "PT-60", "Stora", "ST-T60-G", "24112400", "CatalogItem", "EA", 8.5, 14.0, 10, 150),
    CatalogItem("Brake pad set, heavy duty", "BRK-2210", "Stopwell", "SW-HD-2210", "25174100", "CatalogItem", "EA", 9.0, 16.0, 2, 40),
    CatalogItem("Brake caliper, forklift", "BRK-CAL-7", "Stopwell", "SW-CAL-07", "25174100", "CatalogItem", "EA", 120.0, 260.0, 1, 6),
    CatalogItem("Hydraulic hose kit", "HHK-12", "Flowtec", "FT-HHK-12", "25174100", "CatalogItem", "PK", 45.0, 90.0, 1, 10),
    CatalogItem("Conveyor repair, on-site labour", "SRV-REP", None, None, "25174100", "NonCatalogItem", "HR", 65.0, 110.0, 4, 40),
    CatalogItem("Torque wrench 40-200 Nm", "TW-200", "Gearline", "GL-TW200", "27110000", "CatalogItem", "EA", 85.0, 160.0, 1, 8),
    CatalogItem("Digital caliper 150 mm", "DC-150", "Metris", "MT-DC150", "27110000", "CatalogItem", "EA", 28.0, 65.0, 1, 12),
    CatalogItem("Cutting disc 125 mm, pack of 25", "CD-125", "Abraso", "AB-CD125-25", "27110000", "CatalogItem", "PK", 19.0, 34.0, 2, 40),
    CatalogItem("Nitrile gloves, size L", "NG-L", "SafeHands", "SH-NG-L-100", "27110000", "CatalogItem", "BX", 6.5, 12.0, 10, 200),
    CatalogItem("Inbound freight, full truckload", "FRT-FTL", None, None, "78101800", "NonCatalogItem", "LOT", 650.0, 2400.0, 1, 1),
    CatalogItem("Inbound freight, less than truckload", "FRT-LTL", None, None, "78101800", "NonCatalogItem", "LOT", 120.0, 680.0, 1, 1),
    CatalogItem("Laptop 14in, 16 GB RAM", "LT-14-16", "Corvex", "CX-L14-16G", "43211500", "CatalogItem", "EA", 780.0, 1350.0, 1, 10),
    CatalogItem("Docking station USB-C", "DS-USBC", "Corvex", "CX-DS-C2", "43211500", "CatalogItem", "EA", 120.0, 240.0, 1, 10),
    CatalogItem("Network switch 24 port", "NS-24", "Linkway", "LW-S24G", "43211500", "CatalogItem", "EA", 240.0, 520.0, 1, 4),
    CatalogItem("ERP support, monthly retainer", "SRV-ERP", None, None, "43211500", "NonCatalogItem", "EA", 900.0, 3200.0, 1, 1),
    CatalogItem("Process audit consulting", "SRV-AUD", None, None, "80101500", "NonCatalogItem", "HR", 110.0, 210.0, 8, 80),
    CatalogItem("ISO 9001 surveillance audit", "SRV-ISO", None, None, "80101500", "NonCatalogItem", "EA", 1800.0, 4200.0, 1, 1),
    CatalogItem("Copy paper A4, 80 g", "CP-A4-80", "Papyra", "PY-A4-80", "44121600", "CatalogItem", "BX", 22.0, 38.0, 2, 40),
    CatalogItem("Ballpoint pens, blue, box of 50", "BP-50B", "Scriba", "SC-BP50-B", "44121600", "CatalogItem", "BX", 7.0, 14.0, 1, 20),
    CatalogItem("Desk organiser set", "DO-SET", None, None, "44121600", "CatalogItem", "EA", 12.0, 28.0, 1, 10),
)

ITEMS_BY_COMMODITY: dict[str, tuple[CatalogItem, ...]] = {
    code: tuple(item for item in ITEMS if item.commodity == code) for code in COMMODITIES
}

# Which commodities a supplier of each trade sells (supplier "trade" index -> commodity codes).
TRADES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Fasteners", ("31160000",)),
    ("Metals", ("31160000",)),
    ("Packaging", ("24112400",)),
    ("Industrial Supply", ("31160000", "27110000", "25174100")),
    ("Maintenance Services", ("25174100", "27110000")),
    ("Tooling", ("27110000",)),
    ("Logistics", ("78101800",)),
    ("Freight", ("78101800",)),
    ("Technology", ("43211500",)),
    ("Consulting", ("80101500",)),
    ("Office Products", ("44121600",)),
)

NAME_STEMS = (
    "Northwind", "Apex", "Bluewater", "Summit", "Keystone", "Ironbridge", "Cedar", "Pioneer",
    "Redstone", "Lakeshore", "Granite", "Harbor", "Silverline", "Oakridge", "Falcon", "Meridian",
    "Trident", "Everest", "Riverside", "Crescent", "Vanguard", "Beacon", "Atlas", "Copperfield",
    "Westgate", "Highland", "Prairie", "Orion", "Sterling", "Maple",
)
NAME_TAILS = ("", " Group", " & Sons", " International", " North America")

# (city, state, postal code, country name, ISO alpha-2, currency, legal form)
PLACES: tuple[tuple[str, str, str, str, str, str, str], ...] = (
    ("Dayton", "OH", "45402", "United States", "US", "USD", "Corporation"),
    ("Toledo", "OH", "43604", "United States", "US", "USD", "Corporation"),
    ("Chicago", "IL", "60607", "United States", "US", "USD", "LLC"),
    ("Milwaukee", "WI", "53204", "United States", "US", "USD", "Corporation"),
    ("Detroit", "MI", "48226", "United States", "US", "USD", "LLC"),
    ("Indianapolis", "IN", "46204", "United States", "US", "USD", "Corporation"),
    ("Pittsburgh", "PA", "15222", "United States", "US", "USD", "Corporation"),
    ("Houston", "TX", "77002", "United States", "US", "USD", "LLC"),
    ("Atlanta", "GA", "30303", "United States", "US", "USD", "Corporation"),
    ("Charlotte", "NC", "28202", "United States", "US", "USD", "LLC"),
    ("Toronto", "ON", "M5V 2T6", "Canada", "CA", "CAD", "Corporation"),
    ("Munich", "BY", "80331", "Germany", "DE", "EUR", "GmbH"),
    ("Manchester", "ENG", "M1 1AD", "United Kingdom", "GB", "GBP", "Limited company"),
)
STREETS = ("Canal St", "Works Rd", "Industrial Pkwy", "Commerce Dr", "Harbor Ave", "Mill Rd", "Foundry Ln", "Depot St")

PAYMENT_TERMS: dict[str, tuple[float, int, int]] = {
    # code -> (discount percent, discount days, net days)
    "Net 15": (0, 0, 15),
    "Net 30": (0, 0, 30),
    "Net 45": (0, 0, 45),
    "Net 60": (0, 0, 60),
    "2/10 Net 30": (2, 10, 30),
}

TAX_CODES = {"EX": "Exempt", "TX": "Taxable"}
TAX_RATE = 0.07

REQUESTORS: tuple[tuple[str, str, str], ...] = (
    ("jlopez", "Julia", "Lopez"),
    ("mchen", "Ming", "Chen"),
    ("rpatel", "Ravi", "Patel"),
    ("skowalski", "Stan", "Kowalski"),
    ("aobrien", "Aoife", "O'Brien"),
    ("dmueller", "Dieter", "Mueller"),
    ("tjohnson", "Tanya", "Johnson"),
    ("knguyen", "Khanh", "Nguyen"),
)
AP_CLERKS = ("apclerk", "apsmith", "apgarcia")

BUSINESS_UNITS = ("0001", "0002")

# (address code, street, city, state, postal code)
BILL_TO = (("AP-MAIN", "1 Works Rd", "Toledo", "OH", "43604"),)
SHIP_TO = (
    ("PLANT1-DOCK", "1 Works Rd", "Toledo", "OH", "43604"),
    ("PLANT2-DOCK", "2200 Lakeside Ave", "Sandusky", "OH", "44870"),
    ("MAIN-WH", "80 Depot St", "Toledo", "OH", "43605"),
)
