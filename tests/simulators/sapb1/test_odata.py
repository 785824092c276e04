"""Queries: $filter, $select, $orderby, $top/$skip, paging links followed to the end, counting."""

from __future__ import annotations

import httpx
import pytest

from simulators.sapb1.seed import DEMO_ACCOUNTS, DEMO_COST_CENTERS, DEMO_SUPPLIERS, DEMO_TITLE_ACCOUNTS

from .conftest import error_of


def follow(client, path: str, **kwargs) -> tuple[list[dict], list[str]]:
    """Every page of a query; returns the records and the next links seen."""
    key = "@odata.nextLink" if client.version == "v2" else "odata.nextLink"
    records, links = [], []
    response = client.get(path, **kwargs)
    while True:
        assert response.status_code == 200, response.text
        body = response.json()
        records.extend(body["value"])
        link = body.get(key)
        if not link:
            return records, links
        links.append(link)
        # v1 links are absolute paths, v2 links are relative to the service root (§7.2)
        url = httpx.URL(client.sim.base_url + link) if link.startswith("/") else httpx.URL(client.root + "/" + link)
        response = client.http.get(url, headers=kwargs.get("headers"))


def test_default_page_size_is_20_and_links_reach_the_end(sl):
    records, links = follow(sl, "ProfitCenters", params={"$select": "CenterCode"})
    codes = [r["CenterCode"] for r in records]
    assert len(codes) == len(set(codes)) == len(DEMO_COST_CENTERS) + 3 + 1
    assert codes == sorted(codes)  # by key when no $orderby
    first = sl.get("ProfitCenters", params={"$select": "CenterCode"}).json()
    assert len(first["value"]) == 11 or len(first["value"]) == len(codes)


def test_maxpagesize_preference_and_link_shape(sl):
    headers = {"Prefer": "odata.maxpagesize=4"}
    response = sl.get("ChartOfAccounts", params={"$select": "Code,Name", "$filter": "ActiveAccount eq 'tYES'"},
                      headers=headers)
    assert response.headers["preference-applied"] == "odata.maxpagesize=4"
    body = response.json()
    assert len(body["value"]) == 4 and set(body["value"][0]) == {"Code", "Name"}
    link = body["@odata.nextLink" if sl.version == "v2" else "odata.nextLink"]
    if sl.version == "v2":
        assert link.startswith("ChartOfAccounts?") and link.endswith("$skip=4")
    else:
        assert link.startswith("/b1s/v1/ChartOfAccounts?")
    records, links = follow(sl, "ChartOfAccounts", params={"$select": "Code,Name", "$filter": "ActiveAccount eq 'tYES'"},
                            headers=headers)
    assert sorted(r["Code"] for r in records) == sorted(DEMO_ACCOUNTS)
    assert len(links) == 2


def test_b1s_pagesize_header_and_zero_turns_paging_off(v2):
    assert len(v2.get("ChartOfAccounts", headers={"B1S-PageSize": "2"}).json()["value"]) == 2
    body = v2.get("ChartOfAccounts", headers={"Prefer": "odata.maxpagesize=0"}).json()
    assert len(body["value"]) == len(DEMO_ACCOUNTS) + len(DEMO_TITLE_ACCOUNTS)
    assert "@odata.nextLink" not in body


def test_top_above_page_size_is_paged_and_stops_at_top(v2):
    records, links = follow(v2, "ChartOfAccounts", params={"$top": "7", "$select": "Code"},
                            headers={"Prefer": "odata.maxpagesize=3"})
    assert len(records) == 7 and len(links) == 2


def test_skip_then_top(v2):
    all_codes = [r["Code"] for r in v2.get("ChartOfAccounts", params={"$select": "Code"},
                                            headers={"Prefer": "odata.maxpagesize=0"}).json()["value"]]
    page = v2.get("ChartOfAccounts", params={"$select": "Code", "$skip": "2", "$top": "3"}).json()["value"]
    assert [r["Code"] for r in page] == all_codes[2:5]


def test_counting(sl):
    response = sl.get("BusinessPartners/$count", params={"$filter": "CardType eq 'cSupplier'"})
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    assert response.text == str(len(DEMO_SUPPLIERS))
    if sl.version == "v2":
        body = sl.get("BusinessPartners", params={"$count": "true", "$top": "1"}).json()
        assert body["@odata.count"] == len(DEMO_SUPPLIERS) + 1 and len(body["value"]) == 1
    else:
        body = sl.get("BusinessPartners", params={"$inlinecount": "allpages", "$top": "1"}).json()
        assert body["odata.count"] == len(DEMO_SUPPLIERS) + 1


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("CardType eq 'cSupplier' and startswith(CardCode,'V1000')", set(DEMO_SUPPLIERS)),
        ("CardType eq 'S'", set(DEMO_SUPPLIERS)),  # stored value of the enum
        ("CardType ne 'cSupplier'", {"C20000"}),
        ("endswith(CardName,'Supply') or contains(CardName,'Fasten')", {"V10000", "V10002"}),
        ("substringof('Packaging',CardName)", {"V10003"}),
        ("not (CardType eq 'cSupplier')", {"C20000"}),
        ("PayTermsGrpCode ge 3 and PayTermsGrpCode le 4", {"V10001", "V10002"}),
        ("PayTermsGrpCode gt 3 or PayTermsGrpCode lt 2", {"V10002", "V10004", "C20000"}),
        ("CardCode eq 'V10000' and (City eq 'Dayton' or City eq 'Nowhere')", {"V10000"}),
        ("Phone1 eq null and CardCode eq 'V10004'", {"V10004"}),
    ],
)
def test_filters(sl, expression, expected):
    records, _ = follow(sl, "BusinessPartners", params={"$filter": expression, "$select": "CardCode"})
    assert {r["CardCode"] for r in records} == expected


def test_filter_on_dates_both_literal_forms(v2, v1):
    today = v2.get("BusinessPartners('V10000')").json()["CreateDate"][:10]
    for client, literal in ((v2, f"'{today}'"), (v2, today), (v1, f"datetime'{today}T00:00:00'"), (v1, f"'{today}'")):
        body = client.get("BusinessPartners", params={"$filter": f"UpdateDate ge {literal}", "$select": "CardCode"},
                          headers={"Prefer": "odata.maxpagesize=0"}).json()
        assert len(body["value"]) == len(DEMO_SUPPLIERS) + 1
        body = client.get("BusinessPartners", params={"$filter": f"UpdateDate gt {literal}"}).json()
        assert body["value"] == []


def test_case_sensitive_unless_header(v2):
    params = {"$filter": "CardName eq 'acme industrial supply'", "$select": "CardCode"}
    assert v2.get("BusinessPartners", params=params).json()["value"] == []
    body = v2.get("BusinessPartners", params=params, headers={"B1S-CaseInsensitive": "true"}).json()
    assert [r["CardCode"] for r in body["value"]] == ["V10000"]
    assert set(body["value"][0]) == {"@odata.etag", "CardCode"}  # the etag annotation stays with $select


def test_orderby_multiple_keys(v2):
    body = v2.get("BusinessPartners", params={"$orderby": "PayTermsGrpCode desc,CardCode asc",
                                              "$select": "CardCode,PayTermsGrpCode"}).json()
    pairs = [(r["PayTermsGrpCode"], r["CardCode"]) for r in body["value"]]
    assert pairs == sorted(pairs, key=lambda p: (-p[0], p[1]))


def test_select_single_property_and_value(v2):
    body = v2.get("BusinessPartners('V10000')/CardName").json()
    assert body["value"] == "Acme Industrial Supply"
    assert v2.get("BusinessPartners('V10000')/CardName/$value").text == "Acme Industrial Supply"


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"$filter": "Nope eq 1"}, "Property 'Nope' of 'BusinessPartner' is invalid"),
        ({"$select": "CardCode,Nope"}, "Property 'Nope' of 'BusinessPartner' is invalid"),
        ({"$orderby": "Nope desc"}, "Property 'Nope' of 'BusinessPartner' is invalid"),
        ({"$filter": "tolower(CardName) eq 'x'"}, None),
        ({"$filter": "CardCode eq"}, None),
        ({"$filter": "PayTermsGrpCode add 1 eq 2"}, None),
        ({"$top": "-1"}, None),
        ({"$search": "x"}, None),
        ({"$orderby": "CardCode sideways"}, None),
    ],
)
def test_bad_query_options_are_400_1000(sl, params, message):
    response = sl.get("BusinessPartners", params=params)
    assert response.status_code == 400
    code, text = error_of(response)
    assert code == -1000
    if message:
        assert text == message


def test_filter_on_distribution_rules_by_dimension(v2):
    body = v2.get("DistributionRules", params={"$filter": "InWhichDimension eq 2 and Active eq 'tYES'",
                                               "$select": "FactorCode"}).json()
    assert {r["FactorCode"] for r in body["value"]} == {"PROD", "SALES", "FIN"}
    inactive = v2.get("DistributionRules", params={"$filter": "Active eq 'tNO'", "$select": "FactorCode"}).json()
    assert [r["FactorCode"] for r in inactive["value"]] == ["OLDCC"]


def test_projects_paged(v1):
    records, links = follow(v1, "Projects", params={"$select": "Code,Active"}, headers={"Prefer": "odata.maxpagesize=2"})
    assert len(records) == 4 and len(links) == 1


def test_select_on_single_entity(sl):
    for client in (sl,):
        body = client.get("BusinessPartners('V10000')", params={"$select": "CardCode,CardName"}).json()
        assert {k for k in body if not k.startswith(("@odata", "odata"))} == {"CardCode", "CardName"}
        assert body["CardCode"] == "V10000"
