"""`$batch`: change sets are atomic, processing stops at the first failure, Content-ID per version."""

from __future__ import annotations

import json
import re

from .conftest import error_of


def http_part(method: str, path: str, body: dict | None = None, content_id: str | None = None) -> str:
    head = "Content-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n"
    if content_id:
        head += f"Content-ID: {content_id}\r\n"
    request = f"{method} {path} HTTP/1.1\r\n"
    if body is not None:
        return head + "\r\n" + request + "Content-Type: application/json\r\n\r\n" + json.dumps(body) + "\r\n"
    return head + "\r\n" + request + "\r\n\r\n"


def changeset(boundary: str, parts: list[str]) -> str:
    inner = "".join(f"--{boundary}\r\n{p}" for p in parts) + f"--{boundary}--\r\n"
    return f"Content-Type: multipart/mixed;boundary={boundary}\r\n\r\n{inner}"


def batch(client, items: list[str]):
    body = "".join(f"--batch_1\r\n{i}" for i in items) + "--batch_1--\r\n"
    return client.post("$batch", content=body.encode(),
                       headers={"Content-Type": "multipart/mixed;boundary=batch_1"})


def statuses(response) -> list[int]:
    return [int(s) for s in re.findall(r"^HTTP/1\.1 (\d{3})", response.text, re.M)]


def bp(code: str) -> dict:
    return {"CardCode": code, "CardName": f"Batch {code}", "CardType": "cSupplier"}


def test_changeset_commits_and_content_id(sl):
    root = f"/b1s/{sl.version}"
    code = f"VB1{sl.version}"
    response = batch(sl, [
        changeset("cs_1", [http_part("POST", f"{root}/BusinessPartners", bp(code), "1"),
                           http_part("PATCH", "$1", {"Phone1": "+1 937 555 0100"}, "2")]),
        http_part("GET", f"{root}/BusinessPartners('{code}')?$select=CardCode,Phone1"),
    ])
    assert response.status_code == (200 if sl.version == "v2" else 202)
    assert response.headers["content-type"].startswith("multipart/mixed;boundary=batchresponse_")
    assert statuses(response) == [201, 204, 200]
    text = response.text
    if sl.version == "v2":
        assert re.search(r"Content-ID: 1\r\n\r\nHTTP/1\.1 201 Created", text)
    else:
        assert re.search(r"HTTP/1\.1 201 Created\r\nContent-ID: 1\r\n", text)
    assert '"Phone1":"+1 937 555 0100"' in text
    assert sl.get(f"BusinessPartners('{code}')").json()["Phone1"] == "+1 937 555 0100"


def test_failing_changeset_rolls_back_and_stops(sl, sim):
    root = f"/b1s/{sl.version}"
    ok_code, rolled_back, never = f"VB2{sl.version}", f"VB3{sl.version}", f"VB4{sl.version}"
    response = batch(sl, [
        changeset("cs_a", [http_part("POST", f"{root}/BusinessPartners", bp(ok_code), "1")]),
        changeset("cs_b", [http_part("POST", f"{root}/BusinessPartners", bp(rolled_back), "1"),
                           http_part("POST", f"{root}/PurchaseOrders", {"CardCode": "V99999", "DocumentLines": [
                               {"ItemCode": "BRK-2210"}]}, "2")]),
        changeset("cs_c", [http_part("POST", f"{root}/BusinessPartners", bp(never), "1")]),
    ])
    assert response.status_code == (200 if sl.version == "v2" else 202)
    assert statuses(response) == [201, 400]
    assert "Invalid BP code [OPOR.CardCode] , 'V99999'" in response.text
    codes = {b["CardCode"] for b in sim.entities("BusinessPartners")}
    assert ok_code in codes and rolled_back not in codes and never not in codes


def test_rolled_back_changeset_restores_base_quantities(v2, sim):
    entry = v2.post("PurchaseOrders", {"CardCode": "V10000", "DocumentLines": [
        {"ItemCode": "BRK-2210", "Quantity": 5}]}).json()["DocEntry"]
    response = batch(v2, [changeset("cs", [
        http_part("POST", "/b1s/v2/PurchaseDeliveryNotes", {"CardCode": "V10000", "DocumentLines": [
            {"BaseType": 22, "BaseEntry": entry, "BaseLine": 0, "Quantity": 5}]}, "1"),
        http_part("PATCH", f"/b1s/v2/PurchaseOrders({entry})", {"Nope": 1}, "2")])])
    assert statuses(response) == [400]
    order = v2.get(f"PurchaseOrders({entry})").json()
    assert order["DocumentStatus"] == "bost_Open" and order["DocumentLines"][0]["RemainingOpenQuantity"] == 5.0


def test_failing_standalone_request_stops_the_batch(v2):
    response = batch(v2, [http_part("GET", "/b1s/v2/BusinessPartners('NOPE')"),
                          changeset("cs", [http_part("POST", "/b1s/v2/BusinessPartners", bp("VB5"), "1")])])
    assert statuses(response) == [404]
    assert v2.get("BusinessPartners('VB5')").status_code == 404


def test_relative_paths_and_if_match_ignored(v2):
    response = batch(v2, [changeset("cs", [
        http_part("POST", "BusinessPartners", bp("VB6"), "1"),
    ])])
    assert statuses(response) == [201]
    part = ("Content-Type: application/http\r\nContent-ID: 1\r\n\r\nPATCH BusinessPartners('VB6') HTTP/1.1\r\n"
            "Content-Type: application/json\r\nIf-Match: W/\"WRONG\"\r\n\r\n{\"CardName\": \"Renamed\"}\r\n")
    assert statuses(batch(v2, [changeset("cs", [part])])) == [204]
    assert v2.get("BusinessPartners('VB6')").json()["CardName"] == "Renamed"


def test_malformed_batch(sl):
    response = sl.post("$batch", content=b"--batch_1\r\nnot a part", headers={
        "Content-Type": "multipart/mixed;boundary=batch_1"})
    assert response.status_code == 400
    assert error_of(response) == (-1000, "Incomplete Batch Request Body!")
    no_boundary = sl.post("$batch", content=b"x", headers={"Content-Type": "multipart/mixed"})
    assert error_of(no_boundary) == (-1000, "Incomplete Batch Request Body!")
    get_in_changeset = batch(sl, [changeset("cs", [http_part("GET", "Items")])])
    assert get_in_changeset.status_code == 400
    if sl.version == "v2":  # Content-ID is mandatory in v2 change sets
        no_id = batch(sl, [changeset("cs", [http_part("POST", "BusinessPartners", bp("VB7"))])])
        assert no_id.status_code == 400 and error_of(no_id) == (-1000, "Incomplete Batch Request Body!")
