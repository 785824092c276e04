"""What planning reads from the state file: the staged records a run must look at (with the hash of
record + mapping version each was planned from) and the ledger rows of their references, batch by batch.
`plan_pipeline` feeds them to the pure `engine.plan.plan_records`; it reads only and writes nothing.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from engine.mapping.core import Lookups, MappingFile
from engine.plan import BATCH, Plan, plan_records
from engine.state import db, ledger
from engine.state.staging import iter_staged, table, table_exists


def plan_pipeline(
    conn: Any,
    pipeline: str,
    mapping: MappingFile,
    *,
    keys: Iterable[str] | None = None,
    lookups: Lookups | None = None,
    replay: bool = False,
    changed_only: bool = False,
) -> Plan:
    """Plan one pipeline from its staging table and the ledger. Reads only; writes nothing anywhere.

    `conn` is a connection, or the state file's path: then the file is opened per batch of reads and
    never held while records render. With `changed_only`, only the records a run must look at are
    planned (`changed_keys`); every other record is known to be synced as it is staged.
    """
    def reading():
        return contextlib.nullcontext(conn) if not isinstance(conn, str | Path) else db.connect(conn)

    with reading() as c:
        if not table_exists(c, pipeline):
            return Plan(mapping_versions={pipeline: mapping.version})
        if lookups is None:
            lookups = Lookups(crosswalk=ledger.load_crosswalk(c))
        hashes = plan_hashes(c, pipeline, mapping.version, keys=keys, changed_only=changed_only)
    records: Iterable[tuple[str, Any]]
    if changed_only and len(hashes) > BATCH and keys is None:
        # many records to plan (a first run, a mapping change): read them all in key order and pass over the others
        records = ((k, r) for k, r in iter_staged(conn, pipeline) if k in hashes)
    else:
        records = iter_staged(conn, pipeline, keys=list(hashes) if changed_only else keys)

    def rows(refs: list[str]) -> Mapping[str, Any]:
        with reading() as c:
            return ledger.ledger_rows(c, pipeline, refs)

    return plan_records(pipeline, mapping, records, rows, lookups=lookups, replay=replay, hashes=hashes)


def plan_hashes(conn: Any, pipeline: str, mapping_version: str, *, keys: Iterable[str] | None = None,
                changed_only: bool = False) -> dict[str, str]:
    """Staged key -> hash of (staged record, mapping version): what a record was planned from.

    With `changed_only`: only the records a run must plan — those whose ledger row is not `synced` (or
    `not_applied`: B1 refused the change on a closed document; or `ignored`: left out by the mapping's
    `skip_unless`) from exactly this hash (new, changed at the source, planned with another mapping version,
    waiting, failed, quarantined or in flight)."""
    sql = f"SELECT id, md5(CAST(record AS VARCHAR) || ?) AS h FROM {table(pipeline)}"
    params: list[Any] = [mapping_version]
    if keys is not None:
        sql += " WHERE id IN (SELECT unnest(?::VARCHAR[]))"
        params.append(sorted({str(k) for k in keys}))
    if changed_only and ledger.has_table(conn, "ledger"):
        held = ", ".join(f"'{status}'" for status in ledger.SETTLED)
        sql = (f"SELECT s.id, s.h FROM ({sql}) s WHERE NOT EXISTS (SELECT 1 FROM ledger l WHERE l.pipeline = ? "
               f"AND l.record_key = s.id AND l.status IN ({held}) AND l.plan_hash = s.h)")
        params.append(pipeline)
    return dict(conn.execute(sql, params).fetchall())
