"""The `conflicts` table: a synced field changed on both sides since the last sync (settled by the pair's
policy), or changed on the side that does not own it (not propagated). Findings come from
`engine.bidirectional`; a finding recorded before with the same values is not recorded again.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import duckdb

from engine.state import db

if TYPE_CHECKING:
    from engine.bidirectional import Finding

DDL = """
CREATE TABLE IF NOT EXISTS conflicts (
    pair          VARCHAR NOT NULL,   -- the SAP B1 -> JAGGAER pipeline holding the settings
    jaggaer_id    VARCHAR,            -- e.g. the bravoId
    b1_key        VARCHAR,            -- e.g. the CardCode
    field         VARCHAR NOT NULL,   -- JAGGAER field name (pair.fields key), or the field as named
    b1_field      VARCHAR,
    kind          VARCHAR NOT NULL,   -- conflict (changed on both sides) | not_owner (changed on the wrong side)
    changed_on    VARCHAR,            -- jaggaer | b1 | both
    jaggaer_value JSON,               -- JAGGAER's value when detected
    b1_value      JSON,               -- SAP B1's value when detected
    policy        VARCHAR,            -- the policy applied (conflict), or owned_by:<side>
    winner        VARCHAR,            -- jaggaer | b1: whose value both sides end up with (the owner's kept)
    jaggaer_stamp VARCHAR,            -- JAGGAER lastModTime of the record (UTC)
    b1_stamp      VARCHAR,            -- SAP B1 UpdateDate/UpdateTime of the record (company-local)
    run_id        VARCHAR,
    detected_at   TIMESTAMPTZ
)
"""


def record(conn: duckdb.DuckDBPyConnection, run_id: str, findings: Iterable[Finding]) -> None:
    """Insert findings into `conflicts`, leaving out those recorded before with the same values."""
    conn.execute(DDL)
    now = datetime.now(UTC)
    conn.execute("BEGIN")
    try:
        for f in findings:
            values = [f.pair, f.jaggaer_id, f.b1_key, f.field, f.kind, value_json(f.jaggaer_value), value_json(f.b1_value)]
            known = db.one_row(
                conn, "SELECT count(*) FROM conflicts WHERE pair = ? AND jaggaer_id IS NOT DISTINCT FROM ? AND "
                "b1_key IS NOT DISTINCT FROM ? AND field = ? AND kind = ? AND "
                "CAST(jaggaer_value AS VARCHAR) IS NOT DISTINCT FROM ? AND "
                "CAST(b1_value AS VARCHAR) IS NOT DISTINCT FROM ?", values)[0]
            if known:
                continue
            conn.execute(
                "INSERT INTO conflicts (pair, jaggaer_id, b1_key, field, b1_field, kind, changed_on, jaggaer_value, "
                "b1_value, policy, winner, jaggaer_stamp, b1_stamp, run_id, detected_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [f.pair, f.jaggaer_id, f.b1_key, f.field, f.b1_field, f.kind, f.changed_on, value_json(f.jaggaer_value),
                 value_json(f.b1_value), f.policy, f.winner, f.jaggaer_stamp, f.b1_stamp, run_id, now])
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def ensure_table(conn: duckdb.DuckDBPyConnection) -> None:
    conn.execute(DDL)


def value_json(value: Any) -> str:
    """A value as stored in the JSON columns (and compared when deduplicating findings)."""
    return json.dumps(value, sort_keys=True, default=str, ensure_ascii=False)
