"""`$batch` bodies: the request layout of contract §9.2 and both answer layouts of §9.3."""

import httpx
import pytest

from engine.sapb1 import BatchRequest, ChangeSet, SapB1Client, ServiceRoot
from engine.sapb1.batch import assign_content_ids, encode_batch, match_results, parse_batch
from tests.engine.sapb1.fake_sl import FakeServiceLayer

ROOT = ServiceRoot.parse("https://erp.example.com:50000/b1s/v2")

ITEMS = [
    ChangeSet([
        BatchRequest("POST", "BusinessPartners", {"CardCode": "V10044", "CardType": "cSupplier"}),
        BatchRequest("PATCH", "BusinessPartners('V10031')", {"Phone1": "+1 937 555 0100"}),
    ]),
    BatchRequest("GET", "BusinessPartners('V10044')?$select=CardCode,CardName"),
]

V2_ANSWER = """--batchresponse_5f7e
Content-Type: multipart/mixed; boundary=changesetresponse_9d21

--changesetresponse_9d21
Content-Type: application/http
Content-Transfer-Encoding: binary
Content-ID: 1

HTTP/1.1 201 Created
Content-Type: application/json;odata.metadata=minimal;charset=utf-8
ETag: W/"356A192B7913B04C54574D18C28D46E6395428AB"
OData-Version: 4.0

{"CardCode": "V10044", "CardName": "Harbor Fasteners"}
--changesetresponse_9d21
Content-Type: application/http
Content-Transfer-Encoding: binary
Content-ID: 2

HTTP/1.1 204 No Content
OData-Version: 4.0


--changesetresponse_9d21--
--batchresponse_5f7e
Content-Type: application/http
Content-Transfer-Encoding: binary

HTTP/1.1 200 OK
Content-Type: application/json;odata.metadata=minimal;charset=utf-8

{"CardCode": "V10044", "CardName": "Harbor Fasteners"}
--batchresponse_5f7e--
""".replace("\n", "\r\n")

V1_ANSWER = """--batchresponse_1
Content-Type: multipart/mixed;boundary=changesetresponse_2

--changesetresponse_2
Content-Type: application/http
Content-Transfer-Encoding: binary

HTTP/1.1 201 Created
Content-ID: 1
DataServiceVersion: 3.0
Content-Type: application/json;odata=minimalmetadata;charset=utf-8

{"CardCode": "V10044"}
--changesetresponse_2
Content-Type: application/http
Content-Transfer-Encoding: binary

HTTP/1.1 204 No Content
Content-ID: 2
DataServiceVersion: 3.0


--changesetresponse_2--
--batchresponse_1--
"""

FAILED_CHANGE_SET = """--batchresponse_x
Content-Type: application/http
Content-Transfer-Encoding: binary
Content-ID: 2

HTTP/1.1 400 Bad Request
Content-Type: application/json;charset=utf-8

{"error": {"code": "-5002", "details": [], "message": "Enter valid code  [DocumentLines.CostingCode][line: 1]"}}
--batchresponse_x--
"""


def test_request_layout():
    prepared = assign_content_ids(ITEMS)
    content_type, body = encode_batch(ROOT, prepared, boundary="batch_7c1e")
    text = body.decode()
    assert content_type == "multipart/mixed;boundary=batch_7c1e"
    assert "\r\n" in text and "\n" not in text.replace("\r\n", "")
    assert "Content-ID: 1\r\n\r\nPOST /b1s/v2/BusinessPartners HTTP/1.1\r\nContent-Type: application/json" in text
    assert "Content-ID: 2\r\n\r\nPATCH /b1s/v2/BusinessPartners('V10031') HTTP/1.1" in text
    # GET part: outside the change set, no Content-ID, two blank lines after the request line
    assert "binary\r\n\r\nGET /b1s/v2/BusinessPartners('V10044')?$select=CardCode,CardName HTTP/1.1\r\n\r\n\r\n--batch_7c1e--" in text
    assert text.count("Content-Type: multipart/mixed;boundary=changeset_") == 1


def test_change_sets_refuse_gets_and_keep_given_ids():
    with pytest.raises(ValueError):
        assign_content_ids([ChangeSet([BatchRequest("GET", "Items")])])
    prepared = assign_content_ids([ChangeSet([BatchRequest("POST", "A", {}, content_id="1"), BatchRequest("POST", "B", {})])])
    assert [r.content_id for r in prepared[0].requests] == ["1", "2"]


@pytest.mark.parametrize(("answer", "boundary"), [(V2_ANSWER, "batchresponse_5f7e"), (V1_ANSWER, "batchresponse_1")])
def test_both_answer_layouts(answer, boundary):
    prepared = assign_content_ids(ITEMS)
    results = match_results(prepared, parse_batch(f"multipart/mixed;boundary={boundary}", answer))
    assert [r.status for r in results][:2] == [201, 204]
    assert [r.content_id for r in results][:2] == ["1", "2"]
    assert results[0].body["CardCode"] == "V10044"
    assert results[0].request.method == "POST" and results[1].request.method == "PATCH"
    assert results[1].body is None and all(r.ok for r in results)
    if boundary == "batchresponse_5f7e":
        assert results[0].headers["etag"].startswith('W/"356A')
        assert results[2].request.method == "GET" and results[2].body["CardName"] == "Harbor Fasteners"


def test_failed_change_set_is_one_error_part_naming_the_request():
    prepared = assign_content_ids(ITEMS)
    results = match_results(prepared, parse_batch("multipart/mixed; boundary=batchresponse_x", FAILED_CHANGE_SET))
    assert len(results) == 1  # the GET after the failure never ran
    failed = results[0]
    assert not failed.ok and failed.in_change_set
    assert failed.error.code == -5002 and failed.error.is_business
    assert failed.request.method == "PATCH" and failed.error.path == "BusinessPartners('V10031')"


@pytest.mark.anyio
async def test_client_batch_round_trip():
    fake = FakeServiceLayer()
    seen = {}

    def route(request):
        seen["type"] = request.headers["content-type"]
        seen["body"] = request.content.decode()
        return httpx.Response(200, headers={"Content-Type": "multipart/mixed;boundary=batchresponse_5f7e"},
                              content=V2_ANSWER.encode())

    fake.routes[("POST", "$batch")] = route
    async with SapB1Client(fake.root, fake.company, fake.user, fake.password, transport=fake.transport()) as client:
        results = await client.batch(ITEMS)
    assert [r.status for r in results] == [201, 204, 200]
    assert seen["type"].startswith("multipart/mixed;boundary=batch_")
    assert "POST /b1s/v2/BusinessPartners HTTP/1.1" in seen["body"]
