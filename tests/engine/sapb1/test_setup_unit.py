"""Setup steps against the in-process stand-in: user fields (§5.11) and reference codes."""

import json
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from engine.errors import ConfigError
from engine.sapb1 import SapB1Client, ensure_user_field, fetch_reference_codes
from tests.engine.sapb1.fake_sl import FakeServiceLayer

pytestmark = pytest.mark.anyio


def _filter(request: httpx.Request) -> str:
    return parse_qs(urlsplit(str(request.url)).query).get("$filter", [""])[0]


def client_for(fake: FakeServiceLayer) -> SapB1Client:
    return SapB1Client(fake.root, fake.company, fake.user, fake.password, transport=fake.transport())


def user_fields_md(fake: FakeServiceLayer, *, race: bool = False) -> list[dict]:
    fields: list[dict] = []
    posted: list[dict] = []

    def get(request):
        wanted = _filter(request)
        rows = [f for f in fields if f"TableName eq '{f['TableName']}'" in wanted and f"Name eq '{f['Name']}'" in wanted]
        return httpx.Response(200, json={"value": rows})

    def post(request):
        body = json.loads(request.content)
        posted.append(body)
        if race:  # another process created it between our lookup and our create
            fields.append({**body, "FieldID": 0})
            return fake.error(400, -2035, "This entry already exists in the following tables (ODBC -2035)")
        if any(f["TableName"] == body["TableName"] and f["Name"] == body["Name"] for f in fields):
            return fake.error(400, -2035, "This entry already exists in the following tables (ODBC -2035)")
        row = {**body, "FieldID": len(fields)}
        fields.append(row)
        return httpx.Response(201, json=row)

    fake.routes[("GET", "UserFieldsMD")] = get
    fake.routes[("POST", "UserFieldsMD")] = post
    return posted


async def test_ensure_user_field_creates_once():
    fake = FakeServiceLayer()
    posted = user_fields_md(fake)
    async with client_for(fake) as client:
        first = await ensure_user_field(client, "OPOR", "JGR_PO_ID", "JAGGAER purchase order id", 50)
        second = await ensure_user_field(client, "OPOR", "U_JGR_PO_ID", "JAGGAER purchase order id", 50)
    assert first.created and not second.created
    assert second.property_name == "U_JGR_PO_ID" and second.field_id == 0 and second.size == 50
    assert posted == [{"TableName": "OPOR", "Name": "JGR_PO_ID", "Type": "db_Alpha", "Size": 50, "EditSize": 50,
                       "Description": "JAGGAER purchase order id"}]


async def test_ensure_user_field_handles_already_exists_race():
    fake = FakeServiceLayer()
    user_fields_md(fake, race=True)
    async with client_for(fake) as client:
        field = await ensure_user_field(client, "OCRD", "JGR_SUP_ID", "JAGGAER supplier id", 40)
    assert not field.created and field.field_id == 0


async def test_ensure_user_field_rejects_bad_names():
    fake = FakeServiceLayer()
    async with client_for(fake) as client:
        with pytest.raises(ConfigError):
            await ensure_user_field(client, "OPOR", "bad name", "x", 10)
    assert fake.logins == 0


async def test_fetch_reference_codes_selects_key_fields_of_active_rows():
    fake = FakeServiceLayer()
    seen = {}

    def rows(entity, value):
        def route(request):
            seen[entity] = parse_qs(urlsplit(str(request.url)).query)
            return httpx.Response(200, json={"value": value})
        return route

    fake.routes[("GET", "ChartOfAccounts")] = rows("ChartOfAccounts", [{"Code": "_SYS00000000342"}])
    fake.routes[("GET", "DistributionRules")] = rows(
        "DistributionRules", [{"FactorCode": "PLANT1", "InWhichDimension": 1}, {"FactorCode": "OPS", "InWhichDimension": 2}]
    )
    fake.routes[("GET", "ProfitCenters")] = rows("ProfitCenters", [{"CenterCode": "ADMIN", "InWhichDimension": 1}])
    fake.routes[("GET", "Projects")] = rows("Projects", [{"Code": "P-2024-07"}])
    fake.routes[("GET", "PaymentTermsTypes")] = rows("PaymentTermsTypes", [{"GroupNumber": 3}])
    fake.routes[("GET", "BusinessPartners")] = rows("BusinessPartners", [{"CardCode": "V10020"}])
    async with client_for(fake) as client:
        codes = await fetch_reference_codes(client)
    assert codes.is_account("_SYS00000000342") and not codes.is_account("X")
    assert codes.is_costing_code("PLANT1", 1) and not codes.is_costing_code("PLANT1", 2)
    assert codes.is_costing_code("OPS", 2) and codes.profit_centers == {1: frozenset({"ADMIN"})}
    assert codes.is_project("P-2024-07") and codes.payment_terms == {3} and codes.suppliers == {"V10020"}
    assert seen["ChartOfAccounts"]["$filter"] == ["ActiveAccount eq 'tYES'"]
    assert seen["ChartOfAccounts"]["$select"] == ["Code"]
    assert seen["BusinessPartners"]["$filter"] == ["CardType eq 'cSupplier'"]
    assert seen["DistributionRules"]["$filter"] == ["Active eq 'tYES'"]
    assert fake.logins == 1
