"""Invoice lines → base-document links (SL §5.4): B1's three-way match on the first try.

A rendered invoice line names the JAGGAER PO it bills (PO reference + PO line id). This module turns
it into copies of B1 source lines:

1. the PO must already be in B1 (ledger/crosswalk: DocEntry and LineNum per PO line), else the
   invoice WAITS (not failed) and is retried next run;
2. open goods-receipt lines copied from that PO line (`PurchaseDeliveryNotes`, read once per supplier
   per run) are used first, oldest DocEntry first, each up to its open quantity (BaseType 20);
3. the rest comes from the PO line itself (BaseType 22). One invoice line may become several B1 lines.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from engine.load.closed import CODING_FIELDS, free_line_field, split_patch
from engine.load.model import Action, Operation, Outcome, Status
from engine.load.port import B1Port

BASE_PO = 22
BASE_RECEIPT = 20
EPSILON = 1e-9


@dataclass
class PoKeys:
    """What B1 assigned to a JAGGAER purchase order: its DocEntry and LineNum per source line."""

    doc_entry: int
    lines: dict[str, int]  # JAGGAER PO line id (as text) -> B1 LineNum


@dataclass
class ReceiptLine:
    doc_entry: int
    line_num: int
    open_qty: float


@dataclass(frozen=True)
class LineLink:
    """What a rendered invoice line says about the PO line it bills."""

    po_ref: str
    po_line: str
    doc_entry: int | None = None  # resolved by the mapping from the crosswalk, when it could
    line_num: int | None = None


PoLink = Callable[[dict[str, Any]], "LineLink | None"]


def marker_link(line: dict[str, Any]) -> LineLink | None:
    """Read and remove the reserved `_base` the mapping's `base_document()` left on a line."""
    base = line.pop("_base", None)
    if not base:
        return None
    entry, num = base.get("doc_entry"), base.get("line_num")
    return LineLink(str(base.get("po_number")), str(base.get("line_number")),
                    int(entry) if entry is not None else None, int(num) if num is not None else None)


class BaseLinker:
    """Resolves invoice lines to base-document links for one run."""

    def __init__(self, port: B1Port, po_keys: Callable[[str], PoKeys | None], *, link: PoLink = marker_link) -> None:
        self.port = port
        self.po_keys = po_keys
        self.link = link
        self._receipts: dict[str, dict[tuple[int, int], list[ReceiptLine]]] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self.receipt_queries = 0

    async def prepare(self, op: Operation) -> Operation | Outcome:
        """Complete an invoice create with BaseType/BaseEntry/BaseLine, or answer WAITING; for an update of
        a posted invoice's lines, fail a different amount and keep a different coding out (not applied)."""
        lines = op.payload.get("DocumentLines")
        if not lines:
            return op
        if op.action is Action.UPDATE:
            return _posted_lines(op, lines)
        plan: list[tuple[dict[str, Any], LineLink | None]] = []
        for line in lines:
            line = dict(line)
            plan.append((line, self.link(line)))
        if all(link is None for _, link in plan):
            op.payload = dict(op.payload, DocumentLines=[line for line, _ in plan])
            return op
        missing = sorted({link.po_ref for _, link in plan
                          if link and link.doc_entry is None and self.po_keys(link.po_ref) is None})
        if missing:
            return Outcome(op, Status.WAITING, error_code="waiting_for_po",
                           error_message=f"purchase order {', '.join(missing)} is not in SAP B1 yet; retried next run")
        card = op.payload.get("CardCode")
        receipts = await self._receipts_of(card) if card else {}
        taken: list[tuple[ReceiptLine, float]] = []
        out: list[dict[str, Any]] = []
        for line, link in plan:
            if link is None:
                out.append(line)
                continue
            doc_entry, line_num = link.doc_entry, link.line_num
            if doc_entry is None or line_num is None:
                po = self.po_keys(link.po_ref)
                doc_entry = po.doc_entry if po else None
                line_num = po.lines.get(link.po_line) if po else None
            if doc_entry is None or line_num is None:
                self._give_back(taken)
                return Outcome(op, Status.WAITING, error_code="waiting_for_po_line",
                               error_message=f"line {link.po_line} of purchase order {link.po_ref} is not in SAP B1 yet; "
                               "retried next run")
            out.extend(self._split(line, doc_entry, line_num, receipts, taken))
        op.payload = dict(op.payload, DocumentLines=out)
        op.context["receipt_takes"] = taken
        return op

    def release(self, outcome: Outcome) -> None:
        """Give receipt quantities back when the invoice did not land."""
        if outcome.status is not Status.SYNCED:
            self._give_back(outcome.op.context.pop("receipt_takes", []))

    # -- internals ------------------------------------------------------------------------------

    def _split(self, line: dict[str, Any], po_entry: int, po_line: int,
               receipts: dict[tuple[int, int], list[ReceiptLine]], taken: list) -> list[dict[str, Any]]:
        quantity = float(line.get("Quantity") or 0)
        out: list[dict[str, Any]] = []
        for receipt in receipts.get((po_entry, po_line), []):
            if quantity <= EPSILON:
                break
            take = min(quantity, receipt.open_qty)
            if take <= EPSILON:
                continue
            receipt.open_qty -= take
            taken.append((receipt, take))
            quantity -= take
            out.append(_copy(line, BASE_RECEIPT, receipt.doc_entry, receipt.line_num, take))
        if quantity > EPSILON or not out:
            out.append(_copy(line, BASE_PO, po_entry, po_line, quantity if out else line.get("Quantity")))
        return out

    @staticmethod
    def _give_back(taken: list[tuple[ReceiptLine, float]]) -> None:
        for receipt, qty in taken:
            receipt.open_qty += qty
        taken.clear()

    async def _receipts_of(self, card_code: str) -> dict[tuple[int, int], list[ReceiptLine]]:
        lock = self._locks.setdefault(card_code, asyncio.Lock())
        async with lock:
            if card_code not in self._receipts:
                self._receipts[card_code] = await self._fetch_receipts(card_code)
        return self._receipts[card_code]

    async def _fetch_receipts(self, card_code: str) -> dict[tuple[int, int], list[ReceiptLine]]:
        self.receipt_queries += 1
        quoted = card_code.replace("'", "''")
        docs = await self.port.query(
            "PurchaseDeliveryNotes",
            filter=f"CardCode eq '{quoted}' and DocumentStatus eq 'bost_Open'",
            select=["DocEntry", "DocNum", "DocDate", "DocumentStatus", "DocumentLines"],
            orderby="DocEntry",
        )
        index: dict[tuple[int, int], list[ReceiptLine]] = {}
        for doc in sorted(docs, key=lambda d: d["DocEntry"]):
            for line in doc.get("DocumentLines") or []:
                if line.get("BaseType") != BASE_PO or line.get("LineStatus", "bost_Open") != "bost_Open":
                    continue
                open_qty = float(line.get("RemainingOpenQuantity") or 0)
                if open_qty > EPSILON:
                    key = (int(line["BaseEntry"]), int(line["BaseLine"]))
                    index.setdefault(key, []).append(ReceiptLine(int(doc["DocEntry"]), int(line["LineNum"]), open_qty))
        return index


def _posted_lines(op: Operation, lines: list[dict[str, Any]]) -> Operation | Outcome:
    """B1 keeps a posted A/P invoice's lines (quantities, prices, accounts, links). A different amount is a
    credit memo or a new invoice: the record fails, named, without a write (`replay` after the cause). A
    line only coded differently (account, cost objects, project: e.g. a rule-table edit) keeps its posted
    coding: that part is not applied, and the rest of the change (header, free line fields) is sent."""
    if not any(_money(line) for line in lines):
        split = split_patch("PurchaseInvoices", op.payload, {})
        if split is None:  # free fields only (FreeText, U_): B1 takes them
            return op
        split.code = "posted_invoice"
        if not split.send:
            return Outcome(op, Status.NOT_APPLIED, key=op.key, error_code=split.code,
                           error_message=split.message(None), applied=split.applied, lines=op.context.get("line_map"))
        op.payload, op.context["split"] = split.send, split
        return op
    changed = sorted({f"line {line['LineNum']}: {', '.join(k for k in line if k != 'LineNum')}" if "LineNum" in line
                      else f"new line {line.get('_key', '?')}" for line in lines})
    return Outcome(op, Status.FAILED, error_code="posted_invoice_lines",
                   error_message=f"invoice {op.ref} is posted in SAP B1 and its lines cannot change ({'; '.join(changed)} "
                   "changed in JAGGAER): post a credit memo or a new invoice for the difference")


def _money(line: dict[str, Any]) -> bool:
    """Whether a changed invoice line (a PATCH entry) changes what is owed: a new line, or any field but
    its coding and free fields."""
    if "LineNum" not in line:
        return True
    return any(k not in CODING_FIELDS and not free_line_field(k) for k in line if k != "LineNum" and not k.startswith("_"))


def _copy(line: dict[str, Any], base_type: int, entry: int, num: int, quantity: Any) -> dict[str, Any]:
    """A target line copying a source line: fields not sent are copied from it by B1 (rule 7)."""
    out = dict(line)
    out.update(BaseType=base_type, BaseEntry=entry, BaseLine=num)
    if quantity is not None:
        out["Quantity"] = round(float(quantity), 6)
    return out
