"""Per-run setup against a company: user-defined fields (§5.11) and the reference codes (§5.6-§5.9)
that rule tables are validated against."""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass, field
from typing import Any

from engine.errors import ConfigError
from engine.sapb1.client import SapB1Client
from engine.sapb1.errors import ServiceLayerError
from engine.sapb1.url import odata_literal

log = logging.getLogger("engine.sapb1")

_FIELD_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
_FIELD_TYPES = ("db_Alpha", "db_Memo", "db_Numeric", "db_Date", "db_Float")


@dataclass(frozen=True)
class UserField:
    table: str
    name: str  # without the U_ prefix
    field_id: int | None
    size: int | None
    created: bool  # True when this call created it

    @property
    def property_name(self) -> str:
        return f"U_{self.name}"


async def _find_user_field(client: SapB1Client, table: str, name: str) -> dict[str, Any] | None:
    rows = await client.find_by(
        "UserFieldsMD", "TableName", table,
        extra_filter=f"Name eq {odata_literal(name)}", select="TableName,FieldID,Name,Size,Type",
    )
    return rows[0] if rows else None


def _as_user_field(row: dict[str, Any], created: bool) -> UserField:
    size = row.get("Size")
    return UserField(
        table=str(row.get("TableName")), name=str(row.get("Name")),
        field_id=row.get("FieldID"), size=int(size) if size is not None else None, created=created,
    )


async def ensure_user_field(
    client: SapB1Client,
    table: str,
    name: str,
    description: str,
    size: int = 50,
    *,
    type: str = "db_Alpha",
) -> UserField:
    """Make sure `U_<name>` exists on `table` (e.g. `OPOR`, `OCRD`): look it up, create it when
    missing. Idempotent, and safe when another process creates it at the same time (-2035)."""
    name = name[2:] if name.startswith("U_") else name
    if not _FIELD_NAME.match(name):
        raise ConfigError(f"user field name {name!r} must be letters, digits and underscores, starting with a letter")
    if type not in _FIELD_TYPES:
        raise ConfigError(f"user field type {type!r} must be one of {', '.join(_FIELD_TYPES)}")
    found = await _find_user_field(client, table, name)
    if found is not None:
        field = _as_user_field(found, created=False)
        if type == "db_Alpha" and field.size is not None and field.size < size:
            log.warning("user field %s.U_%s holds %s characters, fewer than the %s wanted",
                        table, name, field.size, size)
        return field
    payload: dict[str, Any] = {"TableName": table, "Name": name, "Type": type, "Description": description}
    if type == "db_Alpha":
        payload["Size"] = size
        payload["EditSize"] = size
    try:
        created = await client.create("UserFieldsMD", payload)
    except ServiceLayerError as exc:
        if exc.code != -2035:
            raise
        found = await _find_user_field(client, table, name)  # created meanwhile by someone else
        if found is None:
            raise
        return _as_user_field(found, created=False)
    log.info("created user field %s.U_%s", table, name)
    return _as_user_field({**payload, **created}, created=True)


@dataclass(frozen=True)
class ReferenceCodes:
    """The master-data codes a mapping may produce, fetched once per run."""

    accounts: frozenset[str] = frozenset()  # postable ChartOfAccounts.Code
    distribution_rules: dict[int, frozenset[str]] = field(default_factory=dict)  # dimension -> active FactorCode
    profit_centers: dict[int, frozenset[str]] = field(default_factory=dict)  # dimension -> active CenterCode
    projects: frozenset[str] = frozenset()  # active Projects.Code
    payment_terms: frozenset[int] = frozenset()  # PaymentTermsTypes.GroupNumber
    suppliers: frozenset[str] = frozenset()  # BusinessPartners.CardCode of suppliers

    def is_account(self, code: str) -> bool:
        return code in self.accounts

    def is_costing_code(self, code: str, dimension: int = 1) -> bool:
        """A line's `CostingCode<dimension>` must be an active distribution rule of that dimension (§5.7)."""
        return code in self.distribution_rules.get(dimension, frozenset())

    def is_project(self, code: str) -> bool:
        return code in self.projects


async def _no_rows() -> list[dict[str, Any]]:
    return []


def _by_dimension(rows: list[dict[str, Any]], key: str) -> dict[int, frozenset[str]]:
    grouped: dict[int, set[str]] = {}
    for row in rows:
        grouped.setdefault(int(row.get("InWhichDimension") or 1), set()).add(str(row[key]))
    return {dimension: frozenset(codes) for dimension, codes in sorted(grouped.items())}


async def fetch_reference_codes(client: SapB1Client, *, page_size: int = 500, suppliers: bool = True) -> ReferenceCodes:
    """Pull the codes rule tables are checked against, selecting only the key fields. `suppliers=False`
    leaves out every supplier's CardCode (a run does not need them; with 100,000 partners they dominate)."""

    async def rows(entity: str, filter: str | None, select: str) -> list[dict[str, Any]]:
        return [row async for row in client.query(entity, filter=filter, select=select, page_size=page_size)]

    accounts, rules, centers, projects, terms, partners = await asyncio.gather(
        rows("ChartOfAccounts", "ActiveAccount eq 'tYES'", "Code"),
        rows("DistributionRules", "Active eq 'tYES'", "FactorCode,InWhichDimension"),
        rows("ProfitCenters", "Active eq 'tYES'", "CenterCode,InWhichDimension"),
        rows("Projects", "Active eq 'tYES'", "Code"),
        rows("PaymentTermsTypes", None, "GroupNumber"),
        rows("BusinessPartners", "CardType eq 'cSupplier'", "CardCode") if suppliers else _no_rows(),
    )
    return ReferenceCodes(
        accounts=frozenset(str(r["Code"]) for r in accounts),
        distribution_rules=_by_dimension(rules, "FactorCode"),
        profit_centers=_by_dimension(centers, "CenterCode"),
        projects=frozenset(str(r["Code"]) for r in projects),
        payment_terms=frozenset(int(r["GroupNumber"]) for r in terms),
        suppliers=frozenset(str(r["CardCode"]) for r in partners),
    )
