"""What the loader is asked to do (operations) and what came of it (outcomes)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Action(StrEnum):
    CREATE = "create"
    UPDATE = "update"


class Status(StrEnum):
    """Ledger statuses the loader produces."""

    SYNCED = "synced"
    FAILED = "failed"
    WAITING = "waiting"
    QUARANTINED = "quarantined"
    # B1 refused the change because the document (or some of its rows) is closed, cancelled or posted:
    # what it could take was applied, the rest is recorded as not applied (not failed, not re-sent).
    NOT_APPLIED = "not_applied"


@dataclass(frozen=True)
class Target:
    """Where a pipeline's records go in B1 and how they are recognised there.

    `ref_field` holds the external reference (a `U_` field, or a standard field such as `CardCode`
    when the key itself is the reference). `key_field` is the entity's key (`DocEntry`, `CardCode`).
    """

    entity_set: str
    key_field: str
    ref_field: str
    lines_field: str | None = None  # "DocumentLines" on documents

    @property
    def key_is_ref(self) -> bool:
        return self.ref_field == self.key_field


@dataclass
class Operation:
    """One write the loader must bring about: create a record, or update it with changed fields."""

    pipeline: str
    ref: str  # external reference (the JAGGAER identity)
    action: Action
    payload: dict[str, Any]  # the whole payload for a create; only the changed fields for an update
    fingerprint: str = ""
    mapping_version: str = ""
    key: Any = None  # B1 key, known for updates
    full_payload: dict[str, Any] | None = None  # the whole rendered payload (for line crosswalk, audit)
    line_refs: list[str] | None = None  # source line ids, in the order of the payload's lines
    resume: bool = False  # an intent of an earlier, interrupted run: verify in B1 before sending
    lookup: bool = True  # create: look the reference up in B1 first (False: known never to have been sent)
    context: dict[str, Any] = field(default_factory=dict)  # pipeline-specific data (e.g. invoice PO links)


@dataclass(frozen=True)
class Attempt:
    """One answer to a write (or its absence: a dropped connection), for the audit."""

    http_status: int | None = None
    b1_code: str | None = None
    b1_message: str | None = None
    b1_body: Any = None  # B1's error body (redacted when stored); None for a success
    duration_ms: float | None = None


@dataclass
class Outcome:
    """The result of one operation."""

    op: Operation
    status: Status
    key: Any = None
    lines: dict[str, int] | None = None  # source line id -> B1 LineNum
    error_code: str | None = None
    error_message: str | None = None
    adopted: bool = False  # found already in B1 (lost answer, crash, duplicate) instead of written now
    writes: int = 0  # POST/PATCH requests sent for this operation
    attempts: int = 0
    last: Attempt | None = None  # the answer that settled it (status, B1's body on an error, duration)
    tries: list[Attempt] = field(default_factory=list)  # earlier answers that did not (transient faults)
    applied: dict[str, Any] | None = None  # NOT_APPLIED: the part of the PATCH B1 took or holds (reserved keys kept)

    @property
    def ok(self) -> bool:
        return self.status is Status.SYNCED


@dataclass
class LoadStats:
    created: int = 0
    updated: int = 0
    adopted: int = 0
    failed: int = 0
    waiting: int = 0
    not_applied: int = 0  # changes B1 refused because the document or row is closed, cancelled or posted
    writes: int = 0
    lookups: int = 0
    retries: int = 0

    def add(self, outcome: Outcome) -> None:
        self.writes += outcome.writes
        self.retries += max(0, outcome.attempts - 1)
        if outcome.status is Status.SYNCED:
            if outcome.adopted:
                self.adopted += 1
            elif outcome.op.action is Action.CREATE:
                self.created += 1
            else:
                self.updated += 1
        elif outcome.status is Status.WAITING:
            self.waiting += 1
        elif outcome.status is Status.NOT_APPLIED:
            self.not_applied += 1
        else:
            self.failed += 1
