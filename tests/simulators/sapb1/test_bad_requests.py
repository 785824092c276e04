"""Bad requests get the contract's error in the version's envelope, never a traceback or a hang."""

from __future__ import annotations

import httpx
import pytest

from simulators.sapb1 import start_simulator

from .conftest import SL, error_of


@pytest.mark.parametrize("content", [b"{nope", b"[1, 2]", b"\xff\xfe", b"", b"null"])
def test_malformed_json(sl, content):
    response = sl.post("BusinessPartners", content=content, headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert error_of(response) == (-1000, "Invalid JSON format")
    code = response.json()["error"]["code"]
    assert isinstance(code, str) if sl.version == "v2" else isinstance(code, int)


def test_wrong_types(v2):
    for body, prop in (({"CardCode": 5, "CardName": "X"}, "CardCode"),
                       ({"CardCode": "VW1", "CardName": "X", "PayTermsGrpCode": "two"}, "PayTermsGrpCode"),
                       ({"CardCode": "VW1", "CardName": "X", "BPAddresses": {"a": 1}}, "BPAddresses"),
                       ({"CardCode": "VW1", "CardName": "X", "Valid": True}, "Valid")):
        response = v2.post("BusinessPartners", body)
        assert error_of(response) == (-1000, f"Property '{prop}' of 'BusinessPartner' is invalid")


def test_unknown_entity_and_segments(sl):
    for path in ("PurchaseOrderz", "Items('BRK-2210')/Explode", "Items/$count/extra"):
        response = sl.get(path)
        assert response.status_code == 404, path
        assert error_of(response)[0] == -1000


def test_bad_keys_and_methods(v2):
    assert v2.get("PurchaseOrders('abc')").status_code == 400
    assert v2.get("BusinessPartners(12)").status_code == 400
    assert v2.get("BusinessPartners('unterminated").status_code == 400
    assert v2.patch("BusinessPartners", {"CardName": "x"}).status_code == 405


def test_unknown_version_and_outside_paths(sim):
    assert httpx.get(f"{sim.base_url}/b1s/v3/Items").status_code == 404
    assert httpx.get(f"{sim.base_url}/nothing").status_code == 404


def test_body_over_limit_in_each_envelope():
    with start_simulator(seed="empty", max_body_bytes=1000) as sim:
        for version in ("v1", "v2"):
            client = SL(sim, version)
            big = {"CardCode": "VBIG", "CardName": "x" * 2000}
            response = client.post("BusinessPartners", big)
            assert response.status_code == 413
            assert error_of(response) == (-1000, "Request body too large")

            def chunks():
                for _ in range(30):
                    yield b"x" * 100

            chunked = client.http.post("BusinessPartners", content=chunks())
            assert chunked.status_code == 413 and error_of(chunked)[0] == -1000
            client.close()
        assert sim.entities("BusinessPartners") == []
