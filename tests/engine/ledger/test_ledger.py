"""The ledger on a real DuckDB file: intents surviving a reopen, results, crosswalk, replay selection,
redaction, runs, and the audit's named queries (read-only)."""

from __future__ import annotations

import json

import duckdb
import pytest

from engine.errors import ConfigError
from engine.state import audit, db, ledger
from engine.state.ledger import Intent, Mark, Result


@pytest.fixture
def state(tmp_path):
    return tmp_path / "var" / "state.duckdb"


def intent(ref: str, action: str = "create", payload=None) -> Intent:
    return Intent("purchase_orders", ref, action, payload or {"NumAtCard": ref}, f"fp-{ref}", "v1", record_key=f"k{ref}",
                  target_entity="PurchaseOrders")


def test_intent_is_durable_before_the_send_and_survives_a_reopen(state):
    with db.connect(state) as conn:
        ledger.record_intent(conn, "run-1", [intent("1"), intent("2")])
    # the process dies here, before any answer; a new process opens the file
    with db.connect(state) as conn:
        pending = ledger.pending_intents(conn)
        assert [(r.external_ref, r.status, r.attempt_fingerprint, r.record_key) for r in pending] == [
            ("1", "in_flight", "fp-1", "k1"), ("2", "in_flight", "fp-2", "k2")]
        kinds = conn.execute("SELECT external_ref, action, outcome FROM events ORDER BY external_ref").fetchall()
        assert kinds == [("1", "create", "intent"), ("2", "create", "intent")]


def test_results_update_ledger_crosswalk_events_and_attempts(state):
    payload = {"CardCode": "V1", "DocumentLines": [{"Quantity": 1, "_key": "1"}]}
    with db.connect(state) as conn:
        ledger.record_intent(conn, "run-1", [intent("1", payload=payload), intent("2")])
        ledger.record_result(conn, "run-1", [
            Result("purchase_orders", "1", "create", "synced", target_key="415", fingerprint="fp-1", payload=payload,
                   sent=payload, mapping_version="v1", line_map={"1": 0}, crosswalk=("purchase_orders", "PO1"),
                   http_status=201, duration_ms=12.5, writes=1),
            Result("purchase_orders", "2", "create", "failed", http_status=400, b1_code="-5002",
                   b1_message="Enter valid code  [DocumentLines.AccountCode][line: 1]", b1_body={"error": {"code": "-5002"}},
                   writes=1, attempts=1),
        ])
        rows = ledger.ledger_rows(conn, "purchase_orders")
        assert rows["1"].status == "synced" and rows["1"].target_key == "415" and rows["1"].payload == payload
        assert rows["1"].line_map == {"1": 0} and rows["1"].attempts == 1
        assert rows["2"].status == "failed" and rows["2"].last_error_code == "-5002" and rows["2"].target_key is None
        assert ledger.pending_intents(conn) == []
        xw = ledger.load_crosswalk(conn)
        assert xw["purchase_orders"]["PO1"].b1_key == "415" and xw["purchase_orders"]["PO1"].line_map == {"1": 0}
        events = conn.execute("SELECT external_ref, outcome, http_status, duration_ms FROM events "
                              "WHERE outcome <> 'intent' ORDER BY external_ref").fetchall()
        assert events == [("1", "synced", 201, 12.5), ("2", "failed", 400, None)]


def test_failed_records_for_replay_by_run_and_by_reference(state):
    with db.connect(state) as conn:
        ledger.record_result(conn, "run-1", [Result("invoices", "10", "create", "failed", b1_code="-10")])
        ledger.record_result(conn, "run-2", [Result("invoices", "11", "create", "failed", b1_code="-10", record_key="2600011"),
                                             Result("invoices", "12", "create", "synced", target_key="7")])
        assert [r.external_ref for r in ledger.failed_records(conn)] == ["10", "11"]
        assert [r.external_ref for r in ledger.failed_records(conn, run_id="run-2")] == ["11"]
        assert [r.external_ref for r in ledger.failed_records(conn, ref="2600011")] == ["11"]
        assert ledger.failed_records(conn, ref="12") == []


def test_waiting_never_downgrades_a_synced_record(state):
    with db.connect(state) as conn:
        ledger.record_result(conn, "r", [Result("purchase_orders", "1", "create", "synced", target_key="1", fingerprint="f")])
        ledger.mark_waiting(conn, "r2", [Mark("purchase_orders", "1", "waiting for suppliers 'S9'"),
                                         Mark("purchase_orders", "2", "waiting for suppliers 'S9'", record_key="k2")])
        ledger.mark_quarantined(conn, "r2", [Mark("purchase_orders", "3", "too long", code="map")])
        rows = ledger.ledger_rows(conn, "purchase_orders")
        assert (rows["1"].status, rows["1"].last_error) == ("synced", "waiting for suppliers 'S9'")
        assert rows["2"].status == "waiting" and rows["3"].status == "quarantined"


def test_secrets_are_redacted_from_stored_payloads_and_messages(state):
    with db.connect(state) as conn:
        ledger.record_result(conn, "r", [Result(
            "suppliers", "1", "create", "failed", sent={"CardCode": "V1", "Password": "hunter2", "nested": {"client_secret": "s3"}},
            b1_message="login failed for B1SESSION=abc123-def; Bearer eyJhbGciOi", b1_body={"B1SESSION": "xyz"})])
        payload, message, body = conn.execute("SELECT payload, b1_message, b1_body FROM events").fetchone()
    text = payload + message + body
    for secret in ("hunter2", "s3", "abc123-def", "eyJhbGciOi", "xyz"):
        assert secret not in text
    assert json.loads(payload)["CardCode"] == "V1"


def test_runs_and_audit_named_queries_on_a_read_only_connection(state):
    with db.connect(state) as conn:
        ledger.start_run(conn, "run-1", ["suppliers", "purchase_orders"], mapping_versions={"suppliers": "abc"})
        ledger.record_intent(conn, "run-1", [intent("1")])
        ledger.record_result(conn, "run-1", [Result("purchase_orders", "1", "create", "failed", b1_code="-10",
                                                    b1_message="Base document card and target document card do not match.")])
        ledger.finish_run(conn, "run-1", {"created": 0, "failed": 1})
        from engine.state import quarantine
        quarantine.add(conn, [quarantine.QuarantinedRecord("purchase_orders", "9", "map", "unmapped GL account 999999")])
    runs = audit.audit(state, "runs")
    assert runs.rows[0][0] == "run-1" and json.loads(runs.rows[0][5]) == {"created": 0, "failed": 1}
    failures = audit.audit(state, "failures")
    assert failures.rows[0][1] == "1" and "do not match" in failures.rows[0][5]
    history = audit.audit(state, "history", ["k1"])  # by record key as well as by reference
    assert [row[4] for row in history.rows] == ["intent", "failed"]
    assert "unmapped GL account" in audit.format_table(audit.audit(state, "quarantine"))
    assert audit.audit(state, "SELECT count(*) AS n FROM ledger").rows == [(1,)]
    with pytest.raises(ConfigError, match="not allowed"):
        audit.audit(state, "DELETE FROM ledger")  # read-only
    with pytest.raises(ConfigError, match="history needs <ref>"):
        audit.audit(state, "history")
    with db.connect(state, read_only=True) as conn:
        assert conn.execute("SELECT count(*) FROM ledger").fetchone() == (1,)


def test_readers_do_not_need_the_tables(state):
    duckdb.connect(str(state.parent.mkdir(parents=True) or state)).close()
    with db.connect(state, read_only=True) as conn:
        assert ledger.ledger_rows(conn, "x") == {} and ledger.load_crosswalk(conn) == {}
        assert ledger.failed_records(conn) == [] and ledger.pending_intents(conn) == []


# The tables as state files made before events carried http_status/duration_ms/b1_body and runs
# mapping_versions/engine_version (and the ledger staged_hash).
OLDER_LAYOUT = [
    """CREATE TABLE ledger (
        pipeline VARCHAR NOT NULL, external_ref VARCHAR NOT NULL, record_key VARCHAR,
        target_entity VARCHAR, target_key VARCHAR, fingerprint VARCHAR, attempt_fingerprint VARCHAR,
        mapping_version VARCHAR, status VARCHAR NOT NULL, attempts INTEGER DEFAULT 0,
        last_error_code VARCHAR, last_error VARCHAR, payload JSON, line_map JSON,
        run_id VARCHAR, created_at TIMESTAMPTZ, updated_at TIMESTAMPTZ,
        PRIMARY KEY (pipeline, external_ref))""",
    """CREATE TABLE events (
        run_id VARCHAR, pipeline VARCHAR, external_ref VARCHAR, action VARCHAR, outcome VARCHAR,
        target_key VARCHAR, b1_code VARCHAR, b1_message VARCHAR, payload JSON, mapping_version VARCHAR,
        writes INTEGER, attempts INTEGER, happened_at TIMESTAMPTZ)""",
    """CREATE TABLE runs (
        run_id VARCHAR PRIMARY KEY, kind VARCHAR, pipelines VARCHAR, started_at TIMESTAMPTZ,
        finished_at TIMESTAMPTZ, counts JSON, aborted VARCHAR)""",
    """CREATE TABLE crosswalk (
        object_type VARCHAR NOT NULL, jaggaer_id VARCHAR NOT NULL, b1_key VARCHAR NOT NULL, line_map JSON,
        updated_at TIMESTAMPTZ, PRIMARY KEY (object_type, jaggaer_id))""",
]


def older_layout(conn) -> None:
    for ddl in OLDER_LAYOUT:
        conn.execute(ddl)


def test_writers_work_on_tables_of_the_loaders_layout(state):
    with db.connect(state) as conn:
        older_layout(conn)  # an older state file (no extra columns)
        ledger.start_run(conn, "r", ["suppliers"])
        ledger.record_intent(conn, "r", [intent("1"), intent("1")])
        ledger.record_result(conn, "r", [Result("purchase_orders", "1", "create", "synced", target_key="9",
                                                http_status=201, duration_ms=3.0, attempts=1),
                                         Result("purchase_orders", "1", "create", "synced", target_key="9", attempts=1)])
        ledger.mark_waiting(conn, "r", [Mark("purchase_orders", "2", "w"), Mark("purchase_orders", "2", "w")])
        ledger.finish_run(conn, "r", {"created": 1}, mapping_versions={"suppliers": "x"})
        assert ledger.ledger_rows(conn, "purchase_orders")["1"].attempts == 2
        ledger.upgrade_tables(conn)
        assert {"http_status", "duration_ms", "b1_body"} <= ledger._columns(conn, "events")


def test_history_on_the_loaders_layout(state):
    with db.connect(state) as conn:
        older_layout(conn)
        ledger.record_result(conn, "r", [Result("invoices", "5", "create", "failed", b1_code="-10", http_status=400)])
    result = audit.audit(state, "history", ["5"])
    assert "http_status" not in result.columns and [row[result.columns.index("outcome")] for row in result.rows] == ["failed"]
