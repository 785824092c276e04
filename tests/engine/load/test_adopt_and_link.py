"""Adopting a record found in B1 compares it (the difference goes as one PATCH); linking an existing
CardCode is retried like any write after a transient fault."""

from __future__ import annotations

import asyncio

from engine.load import Action, Loader, MemoryJournal, Operation, RetryPolicy, Status, Target
from engine.load.adopt import held_shape
from tests.engine.load.fakes import FakeB1, FakeError

PO = Target("PurchaseOrders", "DocEntry", "U_JaggaerRef", "DocumentLines")
BP = Target("BusinessPartners", "CardCode", "U_JaggaerRef", None)
FAST = RetryPolicy(attempts=4, lookup_attempts=4, base_delay=0.0, max_delay=0.0)


def order(quantity: float, comments: str = "JAGGAER PO 1") -> Operation:
    payload = {"U_JaggaerRef": "PO-1", "CardCode": "V1", "Comments": comments, "DocDate": "2024-05-02",
               "DocumentLines": [{"_key": "1", "ItemCode": "A", "Quantity": quantity},
                                 {"_key": "2", "ItemCode": "B", "Quantity": 2}]}
    return Operation("po", "PO-1", Action.CREATE, payload, full_payload=payload, line_refs=["1", "2"])


def load(b1: FakeB1, target: Target, ops: list[Operation]) -> list:
    return asyncio.run(Loader(b1, MemoryJournal(), retry=FAST).load(target, ops))


def test_a_found_record_equal_to_the_plan_is_adopted_without_a_write():
    b1 = FakeB1()
    asyncio.run(b1.create("PurchaseOrders", {**order(5).payload, "DocDate": "2024-05-02T00:00:00Z"}))
    b1.creates = 0
    [outcome] = load(b1, PO, [order(5.0)])
    assert outcome.status is Status.SYNCED and outcome.adopted and outcome.writes == 0
    assert (b1.creates, b1.patches) == (0, 0)


def test_a_found_record_that_differs_gets_one_patch_of_the_difference():
    b1 = FakeB1()
    asyncio.run(b1.create("PurchaseOrders", order(5).payload))  # an older rendering (crash, lost state file)
    b1.creates = 0
    [outcome] = load(b1, PO, [order(8, comments="changed")])
    assert outcome.status is Status.SYNCED and outcome.writes == 1 and b1.creates == 0
    assert b1.patched == [{"Comments": "changed", "DocumentLines": [{"LineNum": 0, "Quantity": 8}]}]
    doc = b1.docs[1]
    assert [line["Quantity"] for line in doc["DocumentLines"]] == [8, 2] and doc["Comments"] == "changed"
    assert outcome.lines == {"1": 0, "2": 1}


def test_held_shape_keeps_only_planned_fields_and_matches_lines_by_line_number():
    planned = {"A": 1, "D": "2024-05-02", "_x": "ours", "DocumentLines": [{"_key": "9", "Q": 2.0}, {"_key": "new"}]}
    have = {"A": 1.0, "D": "2024-05-02T00:00:00Z", "Extra": "B1 only",
            "DocumentLines": [{"LineNum": 4, "Q": 3, "Other": 1}]}
    # B1's notation of an equal value takes the planned one; a line B1 lacks is left out (the diff appends it)
    assert held_shape(planned, have, {"9": 4}) == {"A": 1, "D": "2024-05-02", "_x": "ours",
                                                    "DocumentLines": [{"_key": "9", "Q": 3}]}


class FlakyLinkB1(FakeB1):
    """Holds CardCode V1 without our reference; the first PATCH answers 503 (before or after applying it)."""

    def __init__(self, *, applied_before_failing: bool) -> None:
        super().__init__()
        self.docs["V1"] = {"CardCode": "V1", "CardName": "Old name"}
        self.applied_before_failing = applied_before_failing
        self.failed_once = False

    async def create(self, entity_set, payload):
        self.creates += 1
        raise FakeError(400, -2035, "This entry already exists in the following tables (ODBC -2035)")

    async def patch(self, entity_set, key, payload):
        if not self.failed_once:
            self.failed_once = True
            self.patches += 1
            if self.applied_before_failing:
                self.docs[key].update(payload)
            raise FakeError(503, None, "Service Unavailable")
        await super().patch(entity_set, key, payload)


def supplier() -> Operation:
    payload = {"CardCode": "V1", "CardName": "Bolt Works", "U_JaggaerRef": "S-1"}
    return Operation("suppliers", "S-1", Action.CREATE, payload, full_payload=payload)


def test_a_5xx_on_linking_is_retried_and_the_record_lands():
    b1 = FlakyLinkB1(applied_before_failing=False)
    [outcome] = load(b1, BP, [supplier()])
    assert outcome.status is Status.SYNCED, outcome.error_message
    assert b1.docs["V1"] == {"CardCode": "V1", "CardName": "Bolt Works", "U_JaggaerRef": "S-1"}
    assert b1.patches == 2 and b1.creates == 1


def test_a_link_whose_answer_was_lost_is_found_and_not_sent_again():
    b1 = FlakyLinkB1(applied_before_failing=True)
    [outcome] = load(b1, BP, [supplier()])
    assert outcome.status is Status.SYNCED and outcome.adopted
    assert b1.patches == 1, "found by its reference after the 503: no second PATCH"
