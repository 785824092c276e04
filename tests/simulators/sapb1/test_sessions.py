"""Login, cookies, both roots' envelopes, idle timeout, Logout, case-sensitive routes, /ping/."""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET

import httpx
import pytest

from simulators.sapb1 import start_simulator

from .conftest import SL, error_of


def test_login_v2_body_headers_and_exact_cookies(sim):
    response = httpx.post(f"{sim.service_root('v2')}/Login", json=sim.login_body())
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json;odata.metadata=minimal;charset=utf-8"
    assert response.headers["odata-version"] == "4.0"
    body = response.json()
    assert list(body) == ["@odata.context", "SessionId", "Version", "SessionTimeout"]
    assert body["@odata.context"] == f"{sim.service_root('v2')}/$metadata#B1Sessions/$entity"
    assert body["SessionTimeout"] == 30 and isinstance(body["Version"], str)
    cookies = response.headers.get_list("set-cookie")
    assert cookies == [f"B1SESSION={body['SessionId']};HttpOnly;", "ROUTEID=.node1; path=/b1s"]


def test_login_v1_envelope(sim):
    response = httpx.post(f"{sim.service_root('v1')}/Login", json=sim.login_body())
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json;odata=minimalmetadata;charset=utf-8"
    assert response.headers["dataserviceversion"] == "3.0"
    body = response.json()
    assert body["odata.metadata"].endswith("/b1s/v1/$metadata#B1Sessions/@Element")
    assert set(body) == {"odata.metadata", "SessionId", "Version", "SessionTimeout"}


@pytest.mark.parametrize(
    ("body", "status", "code", "message"),
    [
        ({"CompanyDB": "SBODEMOUS", "UserName": "manager", "Password": "wrong"}, 401, 100000027, "Login failed"),
        ({"CompanyDB": "SBODEMOUS", "UserName": "nobody", "Password": "manager"}, 401, 100000027, "Login failed"),
        ({"CompanyDB": "NOPE", "UserName": "manager", "Password": "manager"}, 401, -304,
         "Fail to get DB Credentials from SLD"),
        ({"CompanyDB": "SBODEMOUS", "UserName": "manager"}, 400, -1000, "Invalid login parameters"),
    ],
)
def test_login_failures(sim, body, status, code, message):
    for version in ("v1", "v2"):
        response = httpx.post(f"{sim.service_root(version)}/Login", json=body)
        assert response.status_code == status
        assert error_of(response) == (code, message)
        assert "set-cookie" not in response.headers


def test_login_accepts_language_as_int_or_string(sim):
    for language in (3, "3"):
        body = {**sim.login_body(), "Language": language}
        assert httpx.post(f"{sim.service_root('v2')}/Login", json=body).status_code == 200


def test_login_not_json(sim):
    response = httpx.post(f"{sim.service_root('v2')}/Login", content=b"{nope")
    assert response.status_code == 400
    assert error_of(response) == (-1000, "Invalid login parameters")


def test_no_session_is_401_301_in_each_envelope(sim):
    v2 = httpx.get(f"{sim.service_root('v2')}/Items")
    assert v2.status_code == 401
    assert v2.json() == {"error": {"code": "301", "details": [{"code": "", "message": ""}],
                                   "message": "Invalid session or session already timeout."}}
    assert v2.headers["www-authenticate"] == "Basic realm=/b1s/v2/Items"
    v1 = httpx.get(f"{sim.service_root('v1')}/Items")
    assert v1.status_code == 401
    assert v1.json() == {"error": {"code": 301, "message": {
        "lang": "en-us", "value": "Invalid session or session already timeout."}}}
    assert "www-authenticate" not in v1.headers


def test_routes_are_case_sensitive(sim):
    assert httpx.post(f"{sim.service_root('v2')}/login", json=sim.login_body()).status_code == 401
    client = SL(sim)
    response = client.get("items")
    assert response.status_code == 404
    assert error_of(response) == (-1000, "Resource not found for the segment 'items'.")
    assert client.get("Items").status_code == 200


def test_logout_ends_session(sim):
    client = SL(sim)
    assert client.get("Items('BRK-2210')").status_code == 200
    response = client.post("Logout")
    assert response.status_code == 204 and response.content == b""
    again = client.get("Items('BRK-2210')")
    assert again.status_code == 401 and error_of(again)[0] == 301
    assert client.post("Logout").status_code == 401


def test_idle_timeout_and_sliding_expiry():
    with start_simulator(seed="empty", session_timeout=1) as sim:
        client = SL(sim)
        assert client.login().json()["SessionTimeout"] == 1  # minutes, rounded up, at least 1
        for _ in range(3):  # each request restarts the clock
            time.sleep(0.5)
            assert client.get("Items").status_code == 200
        time.sleep(1.3)
        response = client.get("Items")
        assert response.status_code == 401 and error_of(response) == (
            301, "Invalid session or session already timeout.")
        client.login()
        assert client.get("Items").status_code == 200


def test_expire_sessions_admin(sim):
    client = SL(sim, "v1")
    assert client.get("Items").status_code == 200
    assert sim.expire_sessions() >= 1
    response = client.get("Items")
    assert response.status_code == 401 and error_of(response)[0] == 301


def test_ping_without_session(sim):
    for path in ("/ping/", "/ping/load-balancer", "/ping/node/1"):
        response = httpx.get(sim.base_url + path)
        assert response.status_code == 200 and response.json()["message"] == "pong"
    assert httpx.get(sim.base_url + "/ping/node/7").status_code == 503


def test_real_server_headers(v2):
    response = v2.get("Items('BRK-2210')")
    assert response.headers["connection"].lower() == "keep-alive"
    assert response.headers["keep-alive"] == "timeout=5, max=100"
    assert response.headers["server"].startswith("Apache/")


def test_metadata_served_on_both_roots(v1, v2):
    for client in (v1, v2):
        response = client.get("$metadata")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("application/xml")
        assert b'<EntityType Name="Document">' in response.content
        assert b"U_SOH_" not in response.content and b' Alias="' not in response.content
    mapped = v2.get("$metadata", headers={"B1S-WithMappingInfo": "1"}).content
    assert b'<Property Alias="DocEntry" Index="0" Name="DocEntry"' in mapped


def test_metadata_lists_user_fields_once_created():
    with start_simulator(seed="empty") as sim:
        client = SL(sim)
        assert client.post("UserFieldsMD", {"TableName": "OPOR", "Name": "MetaRef", "Size": 20}).status_code == 201
        text = client.get("$metadata").text
        document = text[text.index('<EntityType Name="Document">'):]
        document = document[:document.index("</EntityType>")]
        assert '<Property Name="U_MetaRef" Type="Edm.String"' in document
        ET.fromstring(text)  # still well-formed
        client.close()


def test_tls_self_signed():
    with start_simulator(seed="empty", tls=True) as sim:
        assert sim.base_url.startswith("https://")
        response = httpx.post(f"{sim.service_root('v2')}/Login", json=sim.login_body(), verify=False)
        assert response.status_code == 200
        with pytest.raises(httpx.ConnectError):
            httpx.post(f"{sim.service_root('v2')}/Login", json=sim.login_body())
