"""End-to-end fixtures: the SAP B1 simulator on a free loopback port (real sockets)."""

from __future__ import annotations

from collections import Counter

import pytest

from engine.state import db, ledger
from simulators.sapb1 import start_simulator


@pytest.fixture
def sapb1():
    with start_simulator(seed="demo", session_timeout=1800) as sim:
        yield sim


def b1_refs(sim, entity_set: str = "PurchaseOrders") -> Counter:
    return Counter(doc.get("U_JaggaerRef") for doc in sim.entities(entity_set) if doc.get("U_JaggaerRef"))


def assert_exactly_once(sim, state, refs) -> None:
    """Every reference is in B1 exactly once and the ledger names the same DocEntry."""
    docs = {doc["U_JaggaerRef"]: doc for doc in sim.entities("PurchaseOrders") if doc.get("U_JaggaerRef")}
    counts = b1_refs(sim)
    assert sorted(counts) == sorted(refs), "every source record in B1"
    assert [r for r, c in counts.items() if c > 1] == [], "no record twice"
    with db.connect(state) as conn:
        rows = ledger.ledger_rows(conn, "purchase_orders")
    assert {r: (row.status, row.target_key) for r, row in rows.items()} == {
        r: ("synced", str(docs[r]["DocEntry"])) for r in refs
    }
