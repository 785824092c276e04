"""Both error envelopes (contract §4.1) and the classification of §4.4."""

import json
import pickle

import pytest

from engine.sapb1 import LoginError, ServiceLayerError, TransportError
from tests.engine.sapb1.fake_sl import envelope

V1 = json.dumps(envelope("v1", -2028, "No matching records found (ODBC -2028)"))
V2 = json.dumps(envelope("v2", -2028, "No matching records found (ODBC -2028)"))


@pytest.mark.parametrize("body", [V1, V2])
def test_both_envelopes_parse_to_int_code_and_text(body):
    error = ServiceLayerError.from_body(404, body, method="GET", path="PurchaseOrders(9)")
    assert error.code == -2028
    assert error.message == "No matching records found (ODBC -2028)"
    assert error.body == body
    assert error.is_not_found and error.kind == "not_found"
    assert "404" in str(error) and "-2028" in str(error) and "PurchaseOrders(9)" in str(error)


def test_v2_shape_on_v1_root_and_numeric_string_code():
    body = json.dumps({"error": {"code": " 301", "message": {"value": "x"}}, "innererror": {}})
    error = ServiceLayerError.from_body(401, body)
    assert error.code == 301 and error.message == "x"


@pytest.mark.parametrize(
    "body",
    ["", "<html><body><h1>502 Proxy Error</h1></body></html>", "not json", '{"error": "x"}', "[1]"],
)
def test_non_envelope_bodies(body):
    error = ServiceLayerError.from_body(502, body)
    assert error.code is None
    assert error.message
    assert error.is_transient and not error.is_business


def test_session_timeout_by_status_and_code_only():
    assert ServiceLayerError(401, 301, "anything at all").is_session_timeout
    # the message text alone never makes a session timeout
    assert not ServiceLayerError(400, -1000, "Invalid session or session already timeout.").is_session_timeout
    assert not ServiceLayerError(401, 100000027, "Login failed").is_session_timeout


@pytest.mark.parametrize(
    ("status", "code", "message", "kind"),
    [
        (401, 301, "", "session"),
        (404, -2028, "", "not_found"),
        (412, -2039, "", "conflict"),
        (400, -2035, "This entry already exists", "duplicate"),
        (400, -5002, "10001467 - There is already a record with duplicated customer/vendor reference number.", "duplicate"),
        (400, -5002, "1320000140 - Business partner code 'V0001' already assigned", "duplicate"),
        (400, -5002, "Internal error (-5002) occurred", "business"),
        (400, -5002, "10000908 - Enter P.A.N. number for business partner", "business"),
        (400, -5002, "Enter valid code  [DocumentLines.CostingCode][line: 1]", "business"),
        (400, -10, "One of the base documents has already been closed ", "business"),
        (400, -2028, "No matching records found (ODBC -2028)", "business"),
        (400, -8112, "Value too long in property 'State' of 'BPAddress'", "business"),
        (413, -1000, "Request body too large", "business"),
        (403, 804, "", "business"),
        (500, None, "", "transient"),
        (502, None, "", "transient"),
        (503, None, "", "transient"),
        (504, None, "", "transient"),
        (429, None, "", "transient"),
        (500, -5002, "Internal error (-5002) occurred", "transient"),
    ],
)
def test_classification_table(status, code, message, kind):
    error = ServiceLayerError(status, code, message)
    assert error.kind == kind
    assert error.is_transient == (kind == "transient")
    assert error.is_business == (kind not in ("transient", "session"))


def test_message_id_only_for_wrapped_5002():
    assert ServiceLayerError(400, -5002, "10001467 - dup").message_id == 10001467
    assert ServiceLayerError(400, -10, "10001467 - dup").message_id is None
    assert ServiceLayerError(400, -5002, "Internal error (-5002) occurred").message_id is None


def test_transport_error_write_vs_read():
    lost_write = TransportError("POST", "PurchaseOrders", "RemoteProtocolError", request_sent=True)
    assert lost_write.maybe_committed and lost_write.is_transient
    assert "may have been applied" in str(lost_write)
    assert not TransportError("GET", "PurchaseOrders", "ReadTimeout", request_sent=True).maybe_committed
    assert not TransportError("POST", "PurchaseOrders", "ConnectError", request_sent=False).maybe_committed


def test_errors_survive_pickling():
    error = pickle.loads(pickle.dumps(ServiceLayerError(400, -10, "m", "b", method="POST", path="P")))
    assert (error.status, error.code, error.message, error.path) == (400, -10, "m", "P")
    login = pickle.loads(pickle.dumps(LoginError(401, 100000027, "Login failed", "")))
    assert isinstance(login, LoginError) and login.code == 100000027
    lost = pickle.loads(pickle.dumps(TransportError("PATCH", "X(1)", "c", request_sent=True)))
    assert lost.maybe_committed
