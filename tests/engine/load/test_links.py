"""Invoice lines become copies of open receipt lines first, then of the PO line (contract §5.4)."""

from __future__ import annotations

import asyncio

from engine.load import Action, Operation, Status
from engine.load.links import BaseLinker, PoKeys


class Receipts:
    def __init__(self, docs):
        self.docs, self.queries = docs, []

    async def query(self, entity_set, *, filter=None, select=None, orderby=None):  # noqa: A002
        self.queries.append((entity_set, filter))
        return self.docs


RECEIPTS = [
    {"DocEntry": 7, "DocumentLines": [
        {"LineNum": 0, "BaseType": 22, "BaseEntry": 40, "BaseLine": 1, "RemainingOpenQuantity": 3.0, "LineStatus": "bost_Open"},
        {"LineNum": 1, "BaseType": 22, "BaseEntry": 40, "BaseLine": 0, "RemainingOpenQuantity": 0.0, "LineStatus": "bost_Close"}]},
    {"DocEntry": 9, "DocumentLines": [
        {"LineNum": 0, "BaseType": 22, "BaseEntry": 40, "BaseLine": 1, "RemainingOpenQuantity": 2.0, "LineStatus": "bost_Open"}]},
]
POS = {"PO-1": PoKeys(40, {"1": 0, "2": 1})}


def invoice(ref: str, *lines) -> Operation:
    return Operation("invoices", ref, Action.CREATE, {"CardCode": "V1", "DocumentLines": [
        {"_base": {"po_number": po, "line_number": ln}, "Quantity": q} for po, ln, q in lines]})


def prepare(linker, op):
    return asyncio.run(linker.prepare(op))


def test_lines_split_over_open_receipts_then_the_po_line():
    port = Receipts(RECEIPTS)
    linker = BaseLinker(port, POS.get)
    op = prepare(linker, invoice("I-1", ("PO-1", "2", 6), ("PO-1", "1", 4)))
    links = [(ln["BaseType"], ln["BaseEntry"], ln["BaseLine"], ln["Quantity"]) for ln in op.payload["DocumentLines"]]
    assert links == [(20, 7, 0, 3.0), (20, 9, 0, 2.0), (22, 40, 1, 1.0), (22, 40, 0, 4.0)]
    assert all("_base" not in ln for ln in op.payload["DocumentLines"])
    # a second invoice of the same supplier in the run: receipts already consumed, no second query
    op2 = prepare(linker, invoice("I-2", ("PO-1", "2", 1)))
    assert [(ln["BaseType"], ln["BaseEntry"]) for ln in op2.payload["DocumentLines"]] == [(22, 40)]
    assert len(port.queries) == 1 and "CardCode eq 'V1'" in port.queries[0][1]


def test_receipt_quantity_comes_back_when_the_invoice_fails():
    from engine.load import Outcome
    linker = BaseLinker(Receipts(RECEIPTS), POS.get)
    op = prepare(linker, invoice("I-1", ("PO-1", "2", 5)))
    linker.release(Outcome(op, Status.FAILED))
    op2 = prepare(linker, invoice("I-2", ("PO-1", "2", 5)))
    assert [ln["BaseType"] for ln in op2.payload["DocumentLines"]] == [20, 20]


def test_links_resolved_by_the_mapping_are_used_as_they_are():
    linker = BaseLinker(Receipts([]), lambda ref: None)
    op = Operation("invoices", "I-5", Action.CREATE, {"CardCode": "V1", "DocumentLines": [
        {"_base": {"po_number": "PO-1", "line_number": "1", "doc_entry": 41, "line_num": 3}, "Quantity": 2}]})
    line = prepare(linker, op).payload["DocumentLines"][0]
    assert (line["BaseType"], line["BaseEntry"], line["BaseLine"], line["Quantity"]) == (22, 41, 3, 2.0)


def test_an_invoice_whose_po_is_not_in_b1_waits():
    linker = BaseLinker(Receipts([]), POS.get)
    out = prepare(linker, invoice("I-3", ("PO-9", "1", 1)))
    assert out.status is Status.WAITING and "PO-9" in out.error_message


def test_non_po_lines_pass_through():
    linker = BaseLinker(Receipts([]), POS.get)
    op = Operation("invoices", "I-4", Action.CREATE,
                   {"CardCode": "V1", "DocType": "dDocument_Service",
                    "DocumentLines": [{"ItemDescription": "Freight", "AccountCode": "6100", "LineTotal": 10}]})
    out = prepare(linker, op)
    assert out.payload["DocumentLines"] == [{"ItemDescription": "Freight", "AccountCode": "6100", "LineTotal": 10}]
