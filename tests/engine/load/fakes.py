"""An in-memory B1 for unit tests of the loader (end-to-end tests use the real simulator)."""

from __future__ import annotations

import asyncio
import random
from typing import Any

from engine.sapb1.errors import ServiceLayerError, TransportError


class FakeError(ServiceLayerError):
    """An answer of the fake B1: the real error type, so the engine's one classifier sorts it."""


class FakeTransport(TransportError):
    """A write whose answer was lost (the request left; B1 may have applied it)."""

    def __init__(self, cause: str) -> None:
        super().__init__("POST", "fake", cause, request_sent=True)


class FakeB1:
    """Documents keyed by DocEntry, a `U_JaggaerRef` field, and programmable faults."""

    def __init__(self, *, seed: int = 1, error_rate: float = 0.0, drop_after_rate: float = 0.0,
                 drop_before_rate: float = 0.0) -> None:
        self.docs: dict[int, dict[str, Any]] = {}
        self.next_key = 1
        self.rng = random.Random(seed)
        self.error_rate, self.drop_after_rate, self.drop_before_rate = error_rate, drop_after_rate, drop_before_rate
        self.business: dict[str, FakeError] = {}  # ref -> error answered to its create
        self.creates = self.patches = self.lookups = 0
        self.patched: list[dict[str, Any]] = []  # bodies of the PATCHes B1 took
        self.fail_reads = 0  # next N reads answer 503 (after `reads_ok` more successful reads)
        self.reads_ok = 0
        self.latency = 0.0  # seconds per write

    def _faults(self) -> None:
        if self.rng.random() < self.error_rate:
            raise FakeError(503, None, "Service Unavailable")
        if self.rng.random() < self.drop_before_rate:
            raise FakeTransport("dropped before")

    def _read_fault(self) -> None:
        if self.reads_ok:
            self.reads_ok -= 1
        elif self.fail_reads:
            self.fail_reads -= 1
            raise FakeError(503, None, "unavailable")

    async def create(self, entity_set: str, payload: dict[str, Any]) -> dict[str, Any]:
        self.creates += 1
        if self.latency:
            await asyncio.sleep(self.latency)
        self._faults()
        ref = payload.get("U_JaggaerRef")
        if ref in self.business:
            raise self.business[ref]
        key = self.next_key
        self.next_key += 1
        lines = [dict(line, LineNum=i) for i, line in enumerate(payload.get("DocumentLines", []))]
        self.docs[key] = dict(payload, DocEntry=key, DocumentLines=lines)
        if self.rng.random() < self.drop_after_rate:
            raise FakeTransport("answer lost after commit")
        return self.docs[key]

    async def patch(self, entity_set: str, key: Any, payload: dict[str, Any]) -> None:
        self.patches += 1
        self._faults()
        if key not in self.docs:
            raise FakeError(404, -2028, "No matching records found (ODBC -2028)")
        doc = self.docs[key]
        _refuse_on_closed_ground(entity_set, doc, payload)
        self.patched.append(payload)
        for name, value in payload.items():
            if name == "DocumentLines":
                for line in value:
                    if "LineNum" in line:
                        doc["DocumentLines"][line["LineNum"]].update(line)
                    else:
                        doc["DocumentLines"].append(dict(line, LineNum=len(doc["DocumentLines"])))
            else:
                doc[name] = value
        if self.rng.random() < self.drop_after_rate:
            raise FakeTransport("answer lost after commit")

    async def get(self, entity_set: str, key: Any, select: list[str] | None = None) -> dict[str, Any]:
        self._read_fault()
        if key not in self.docs:
            raise FakeError(404, -2028, "No matching records found (ODBC -2028)")
        return self.docs[key]

    async def find_refs(self, entity_set: str, ref_field: str, refs: list[str], select: list[str]):
        self.lookups += 1
        self._read_fault()
        out: dict[str, list[dict[str, Any]]] = {ref: [] for ref in refs}
        for doc in self.docs.values():
            if doc.get(ref_field) in out:
                out[doc[ref_field]].append(doc)
        return out

    async def count(self, entity_set: str, filter: str) -> int:  # noqa: A002 - only "<ref field> ne null"
        field = filter.split()[0]
        return sum(1 for doc in self.docs.values() if doc.get(field) is not None)

    async def query(self, entity_set: str, *, filter=None, select=None, orderby=None):  # noqa: A002
        return list(self.docs.values())

    def refs(self) -> list[str]:
        return [doc["U_JaggaerRef"] for doc in self.docs.values()]


# B1's rules for documents that are done (as simulators/sapb1/rules.py enforces them): a posted document
# (A/P invoice) and a closed or cancelled one take only free fields; a closed row takes no other change.
FREE_HEADER = {"Comments", "NumAtCard", "DocDueDate"}
FREE_LINE = {"FreeText"}


def _free(name: str, free: set[str]) -> bool:
    return name in free or name.startswith("U_")


def _refuse_on_closed_ground(entity_set: str, doc: dict[str, Any], payload: dict[str, Any]) -> None:
    """Raise B1's answer when the PATCH changes something the document's state keeps (checked before
    anything is applied: a refused PATCH changes nothing)."""
    posted = entity_set == "PurchaseInvoices"
    closed = doc.get("DocumentStatus", "bost_Open") != "bost_Open"
    for name, value in payload.items():
        if name == "DocumentLines" or _free(name, FREE_HEADER) or doc.get(name) == value:
            continue
        if posted:
            raise FakeError(400, -1029, f"[OPCH.{name}], Field cannot be updated (ODBC -1029)")
        if closed:
            raise FakeError(400, -10, "Document is already closed")
    for place, line in enumerate(payload.get("DocumentLines", []), start=1):
        if "LineNum" not in line:
            if posted or closed:
                raise FakeError(400, -10, "Document is already closed")
            continue
        row = doc["DocumentLines"][line["LineNum"]]
        changed = [k for k, v in line.items() if k != "LineNum" and row.get(k) != v and not _free(k, FREE_LINE)]
        if not changed:
            continue
        if posted:
            raise FakeError(400, -1029, f"[PCH1.{changed[0]}][line: {place}], Field cannot be updated (ODBC -1029)")
        if closed:
            raise FakeError(400, -10, "Document is already closed")
        if row.get("LineStatus", "bost_Open") != "bost_Open":
            raise FakeError(400, -10, f"Cannot change a closed row  [DocumentLines.{changed[0]}][line: {place}]")
