"""Token endpoint (Keycloak shape), bearer checks, expiry and tenant isolation over real sockets."""

from __future__ import annotations

import base64
import json
import time

import httpx

from simulators.jaggaer import start_simulator
from tests.simulators.jaggaer.conftest import PO_PATH, get_token


def _form(sim, **fields):
    data = {"grant_type": "client_credentials", "client_id": sim.client_id, "client_secret": sim.client_secret}
    data.update(fields)
    return {k: v for k, v in data.items() if v is not None}


def test_token_response_has_the_keycloak_fields_and_a_three_part_jwt(sim):
    response = httpx.post(sim.token_url, data=_form(sim))
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert set(body) == {"access_token", "expires_in", "refresh_expires_in", "token_type", "not-before-policy", "scope"}
    assert body["token_type"] == "Bearer" and body["expires_in"] == 300
    header, claims, _sig = body["access_token"].split(".")
    payload = json.loads(base64.urlsafe_b64decode(claims + "=" * (-len(claims) % 4)))
    assert payload["tenant"] == "demo" and payload["azp"] == sim.client_id
    assert payload["iss"] == f"{sim.base_url}/auth/realms/J1p-integrations"
    assert payload["exp"] - payload["iat"] == 300


def test_basic_auth_credentials_are_accepted(sim):
    basic = base64.b64encode(f"{sim.client_id}:{sim.client_secret}".encode()).decode()
    response = httpx.post(sim.token_url, data={"grant_type": "client_credentials"},
                          headers={"Authorization": f"Basic {basic}"})
    assert response.status_code == 200


def test_wrong_credentials_and_grant_errors_are_keycloak_errors(sim):
    wrong = httpx.post(sim.token_url, data=_form(sim, client_secret="nope"))
    assert wrong.status_code == 401
    assert wrong.json() == {"error": "invalid_client", "error_description": "Invalid client or Invalid client credentials"}
    unknown = httpx.post(sim.token_url, data=_form(sim, client_id="someone-else"))
    assert unknown.status_code == 401
    missing = httpx.post(sim.token_url, data=_form(sim, grant_type=None))
    assert (missing.status_code, missing.json()["error"]) == (400, "invalid_request")
    assert missing.json()["error_description"] == "Missing form parameter: grant_type"
    as_json = httpx.post(sim.token_url, json=_form(sim))
    assert (as_json.status_code, as_json.json()["error"]) == (400, "invalid_request")
    grant = httpx.post(sim.token_url, data=_form(sim, grant_type="password"))
    assert grant.status_code == 400
    assert grant.json() == {"error": "unsupported_grant_type", "error_description": "Unsupported grant_type"}
    get = httpx.get(sim.token_url)
    assert (get.status_code, get.content) == (405, b"")


def _assert_j1p_401(response: httpx.Response) -> None:
    assert response.status_code == 401
    assert response.headers["content-type"] == "; charset=UTF-8"
    assert "www-authenticate" not in response.headers
    assert response.content == b""


def test_missing_malformed_and_forged_tokens_get_the_bare_401(sim):
    url = sim.base_url + PO_PATH
    _assert_j1p_401(httpx.get(url))
    _assert_j1p_401(httpx.get(url, headers={"Authorization": "Bearer not-a-jwt"}))
    token = get_token(sim.token_url, sim.client_id, sim.client_secret)
    head, claims, sig = token.split(".")
    forged = json.loads(base64.urlsafe_b64decode(claims + "=" * (-len(claims) % 4)))
    forged["exp"] += 3600
    forged_claims = base64.urlsafe_b64encode(json.dumps(forged).encode()).rstrip(b"=").decode()
    _assert_j1p_401(httpx.get(url, headers={"Authorization": f"Bearer {head}.{forged_claims}.{sig}"}))
    assert httpx.get(url, headers={"Authorization": f"Bearer {token}"}).status_code == 200


def test_token_expires_after_its_lifetime():
    with start_simulator(seed=3, random_seed=1, token_lifetime=3) as sim:
        token = get_token(sim.token_url, sim.client_id, sim.client_secret)
        claims = token.split(".")[1]
        expires = json.loads(base64.urlsafe_b64decode(claims + "=" * (-len(claims) % 4)))["exp"]
        headers = {"Authorization": f"Bearer {token}"}
        # good until its `exp` (whole seconds): a busy machine may take a while, so only ask well before it
        while time.time() < expires - 1:
            assert httpx.get(sim.base_url + PO_PATH, headers=headers).status_code == 200
            time.sleep(0.2)
        time.sleep(max(0.0, expires - time.time()))
        deadline = time.monotonic() + 2.5  # stamps are whole seconds: refused within about one more
        while (answer := httpx.get(sim.base_url + PO_PATH, headers=headers)).status_code == 200 \
                and time.monotonic() < deadline:
            time.sleep(0.1)
        _assert_j1p_401(answer)
        fresh = get_token(sim.token_url, sim.client_id, sim.client_secret)
        assert httpx.get(sim.base_url + PO_PATH, headers={"Authorization": f"Bearer {fresh}"}).status_code == 200


def test_unauthorized_body_knob_sends_json_but_still_no_www_authenticate():
    with start_simulator(seed=2, random_seed=1, unauthorized_body="json") as sim:
        response = httpx.get(sim.base_url + PO_PATH)
        assert response.status_code == 401 and response.content
        assert "www-authenticate" not in response.headers


def test_tenants_are_isolated(sim):
    acme = sim.add_tenant("acme", client_id="acme-erp", client_secret="acme-secret", seed=5, random_seed=2)
    assert acme.base_url == sim.tenant_base_url("acme")
    acme_token = get_token(acme.token_url, acme.client_id, acme.client_secret)
    demo_token = get_token(sim.token_url, sim.client_id, sim.client_secret)
    # Each token works on its own tenant only.
    acme_list = httpx.get(acme.base_url + PO_PATH, headers={"Authorization": f"Bearer {acme_token}"}).json()
    assert acme_list["totRecords"] == 5
    _assert_j1p_401(httpx.get(sim.base_url + PO_PATH, headers={"Authorization": f"Bearer {acme_token}"}))
    _assert_j1p_401(httpx.get(acme.base_url + PO_PATH, headers={"Authorization": f"Bearer {demo_token}"}))
    # The default tenant is also served under its prefix, with the same token.
    prefixed = httpx.get(sim.tenant_base_url("demo") + PO_PATH, headers={"Authorization": f"Bearer {demo_token}"})
    assert prefixed.status_code == 200 and prefixed.json()["totRecords"] == 240
    # Credentials of one tenant on another tenant's token endpoint fail like wrong credentials.
    cross = httpx.post(acme.token_url, data={"grant_type": "client_credentials", "client_id": sim.client_id,
                                             "client_secret": sim.client_secret})
    assert cross.status_code == 401 and cross.json()["error"] == "invalid_client"
