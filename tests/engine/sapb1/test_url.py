"""Service root validation (contract §1.2), key quoting (§1.1), filter literals and dates."""

from datetime import date

import pytest

from engine.errors import ConfigError
from engine.sapb1 import ServiceRoot, date_literal, entity_path, format_date, odata_literal, parse_date


@pytest.mark.parametrize(
    ("url", "version", "base"),
    [
        ("https://erp.example.com:50000/b1s/v2", "v2", "https://erp.example.com:50000/b1s/v2"),
        ("https://erp.example.com:50000/b1s/v1/", "v1", "https://erp.example.com:50000/b1s/v1"),
        ("HTTPS://ERP.example.com:50000/b1s/v2", "v2", "https://erp.example.com:50000/b1s/v2"),
        ("http://127.0.0.1:50001/b1s/v2", "v2", "http://127.0.0.1:50001/b1s/v2"),
        ("http://[::1]:50000/b1s/v1", "v1", "http://[::1]:50000/b1s/v1"),
        ("  https://erp:50000/b1s/v2\n", "v2", "https://erp:50000/b1s/v2"),
    ],
)
def test_valid_roots(url, version, base):
    root = ServiceRoot.parse(url)
    assert root.version == version
    assert root.base == base == str(root)
    assert root.url("Login") == base + "/Login"
    assert root.url("/PurchaseOrders(1)") == base + "/PurchaseOrders(1)"


@pytest.mark.parametrize(
    ("url", "rule", "words"),
    [
        ("erp.example.com:50000/b1s/v2", 1, "absolute"),
        ("/b1s/v2", 1, "absolute"),
        ("ftp://erp:50000/b1s/v2", 1, "scheme"),
        ("https://manager:hunter2@erp:50000/b1s/v2", 2, "user-info"),
        ("https://erp:50000/b1s/v2?company=X", 2, "query"),
        ("https://erp:50000/b1s/v2?", 2, "query"),
        ("https://erp:50000/b1s/v2#x", 2, "fragment"),
        ("https://:50000/b1s/v2", 2, "host"),
        ("https://erp:port/b1s/v2", 3, "port"),
        ("https://erp:70000/b1s/v2", 3, "port"),
        ("https://erp:50000/B1S/V2", 4, "/b1s/v1 or /b1s/v2"),
        ("https://erp:50000/b1s/v3", 4, "/b1s/v1 or /b1s/v2"),
        ("https://erp:50000/b1s/v2//", 4, "/b1s/v1 or /b1s/v2"),
        ("https://erp:50000/b1s/v2/Login", 4, "/b1s/v1 or /b1s/v2"),
        ("https://erp:50000/", 4, "/b1s/v1 or /b1s/v2"),
    ],
)
def test_invalid_roots_name_the_rule(url, rule, words):
    with pytest.raises(ConfigError) as info:
        ServiceRoot.parse(url)
    assert f"rule {rule}" in str(info.value)
    assert words in str(info.value)


def test_user_info_password_is_not_echoed():
    with pytest.raises(ConfigError) as info:
        ServiceRoot.parse("https://manager:hunter2@erp:50000/b1s/v2")
    assert "hunter2" not in str(info.value)


def test_warnings_for_plain_http_and_missing_port(caplog):
    remote = ServiceRoot.parse("http://erp.example.com/b1s/v2")
    assert len(remote.warnings) == 2
    assert "plain http" in remote.warnings[0] and "non-loopback" in remote.warnings[0]
    assert "no port" in remote.warnings[1] and ":50000" in remote.warnings[1]
    assert any("plain http" in r.message for r in caplog.records)
    assert ServiceRoot.parse("http://localhost:50000/b1s/v2").warnings == ()
    assert ServiceRoot.parse("https://erp:50000/b1s/v2").warnings == ()
    assert len(ServiceRoot.parse("https://erp/b1s/v2").warnings) == 1


@pytest.mark.parametrize(
    ("key", "path"),
    [
        ("O'Brien", "BusinessPartners('O''Brien')"),
        ("A#B/C d", "BusinessPartners('A%23B%2FC%20d')"),
        ("V10020", "BusinessPartners('V10020')"),
        ("50%?&", "BusinessPartners('50%25%3F%26')"),
        (123, "BusinessPartners(123)"),
        ({"TableName": "OPOR", "FieldID": 3}, "BusinessPartners(TableName='OPOR',FieldID=3)"),
    ],
)
def test_entity_path_quotes_keys(key, path):
    assert entity_path("BusinessPartners", key) == path


def test_boolean_key_refused():
    with pytest.raises(TypeError):
        entity_path("X", True)


def test_filter_literals():
    assert odata_literal("O'Brien") == "'O''Brien'"
    assert odata_literal("it''s") == "'it''''s'"
    assert odata_literal(415) == "415"
    assert odata_literal(2.5) == "2.5"
    assert odata_literal(date(2024, 5, 2)) == "'2024-05-02'"


def test_dates_per_version():
    day = date(2024, 5, 2)
    assert format_date(day, "v1") == "2024-05-02"
    assert format_date(day, "v2") == "2024-05-02T00:00:00Z"
    for text in ("2024-05-02", "2024-05-02T00:00:00Z", "20240502", "2024-05-02T00:00:00"):
        assert parse_date(text) == day
    assert date_literal(day) == "'2024-05-02'"
    with pytest.raises(ValueError):
        parse_date("02/05/2024")
