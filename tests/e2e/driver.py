"""A loader-level sync for end-to-end and crash tests: purchase orders for the simulator's demo
suppliers, planned against the DuckDB ledger by `engine.plan.compare` (create / update of changed
fields / skip), loaded with the real `Loader`, `SlPort` and `LedgerJournal` over real sockets.

    python -m tests.e2e.driver SERVICE_ROOT STATE_FILE N [--seed S]   # used by the kill trials
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

from engine.load import Loader, LoadStats, Operation, RetryPolicy, Target
from engine.load.bridge import LedgerJournal, operations
from engine.load.slport import SlPort
from engine.plan import PlanItem, compare
from engine.runner import _retry_setup
from engine.sapb1 import SapB1Client, ensure_user_field
from engine.state import db, ledger

PIPELINE = "purchase_orders"
TARGET = Target("PurchaseOrders", "DocEntry", "U_JaggaerRef", "DocumentLines")
SUPPLIERS = ["V10000", "V10001", "V10002", "V10003"]
ITEMS = ["BRK-2210", "SEAL-0031", "BOLT-M8", "CART-500"]


def purchase_order(i: int, *, quantity: float = 10, comment: str = "") -> dict[str, Any]:
    """A rendered PO payload as a mapping produces it (`_key` = JAGGAER line number)."""
    ref = f"PO-{i:06d}"
    payload: dict[str, Any] = {
        "CardCode": SUPPLIERS[i % len(SUPPLIERS)], "DocDate": "2024-05-02", "DocDueDate": "2024-05-16",
        "U_JaggaerRef": ref, "Comments": comment or f"JAGGAER PO {ref}",
        "DocumentLines": [
            {"_key": "1", "ItemCode": ITEMS[i % len(ITEMS)], "Quantity": quantity, "UnitPrice": 12.5,
             "AccountCode": "612000", "CostingCode": "PLANT1"},
            {"_key": "2", "ItemCode": ITEMS[(i + 1) % len(ITEMS)], "Quantity": 4, "UnitPrice": 3.0,
             "AccountCode": "612000", "CostingCode": "PLANT2"},
        ],
    }
    return payload


def plan(rows: dict[str, Any], payloads: dict[str, dict[str, Any]], refs: set[str] | None = None) -> list[Operation]:
    """What a run plans after rendering: each payload against its ledger row (`refs`: a replay of those)."""
    items = [compare(PlanItem(PIPELINE, ref, "skip", record_key=ref, mapping_version="v1", crosswalk_key=ref),
                     payload, rows.get(ref), replay=refs is not None)
             for ref, payload in payloads.items() if refs is None or ref in refs]
    return operations(items, TARGET)


async def sync(service_root: str, state: Path, payloads: dict[str, dict[str, Any]], *, run_id: str = "run",
               refs: set[str] | None = None, retry: RetryPolicy | None = None, company: str = "SBODEMOUS",
               user: str = "manager", password: str = "manager") -> LoadStats:
    with db.connect(state) as conn:
        ledger.upgrade_tables(conn)
        ops = plan(ledger.ledger_rows(conn, PIPELINE), payloads, refs)
        crosswalk = ledger.load_crosswalk(conn)
    async with SapB1Client(service_root, company, user, password, max_concurrency=8) as client:
        await _retry_setup(lambda: ensure_user_field(client, "OPOR", "JaggaerRef", "JAGGAER reference"))
        journal = LedgerJournal(state, run_id, TARGET, PIPELINE, crosswalk)
        loader = Loader(SlPort(client), journal, retry=retry or RetryPolicy(base_delay=0.02, max_delay=0.2))
        try:
            await loader.load(TARGET, ops)
        finally:
            journal.close()
        return loader.stats


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("service_root")
    parser.add_argument("state", type=Path)
    parser.add_argument("n", type=int)
    args = parser.parse_args(argv)
    payloads = {p["U_JaggaerRef"]: p for p in (purchase_order(i) for i in range(args.n))}
    stats = asyncio.run(sync(args.service_root, args.state, payloads))
    print(stats)
    return 0


if __name__ == "__main__":
    sys.exit(main())
