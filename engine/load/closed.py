"""What SAP B1 keeps when a document is closed, cancelled or posted: splitting a refused PATCH.

B1 refuses changes to a document that is done (rules of `simulators/sapb1/rules.py`, B1's public
behaviour): a closed or cancelled document (`DocumentStatus` not `bost_Open`: closed by `Close`, by
`Cancel`, or because every row was copied to a target document) and a posted one (an A/P invoice, a
goods receipt) take only free fields — `Comments`, `NumAtCard`, `DocDueDate` and `U_` fields on the
header, `FreeText` and `U_` fields on a line; a closed row of an open document takes no other change
either. Such a PATCH is refused as a whole (400: -10 `Document is already closed`, -10 `Cannot change a
closed row …`, -1029 `… Field cannot be updated`).

The loader never recognises these answers by their text (SL §4.4). After a 400 business answer
to an update of a document it re-reads the document's state (`SELECT`) and `split_patch` tells, from
that state alone, which parts of the PATCH B1 cannot take. When no part touches closed ground the
refusal was about something else and the record fails as before.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from engine.sapb1.entities import ENTITIES

FREE_HEADER_FIELDS = frozenset(("Comments", "NumAtCard", "DocDueDate"))  # and every U_ field
FREE_LINE_FIELDS = frozenset(("FreeText",))  # and every U_ field
# Where a line posts (account, cost objects, project), as the rule tables assign it. A posted line coded
# differently now is a reclassification in the books, not a different amount owed.
CODING_FIELDS = frozenset(("AccountCode", "CostingCode", "CostingCode2", "CostingCode3", "CostingCode4",
                           "CostingCode5", "ProjectCode"))
STATE_FIELDS = ("DocumentStatus", "Cancelled")
OPEN = "bost_Open"


def free_line_field(name: str) -> bool:
    """A line field B1 changes on any document, closed or posted (`FreeText`, `U_` fields)."""
    return _free(name, FREE_LINE_FIELDS)


def _free(name: str, free: frozenset[str]) -> bool:
    return name in free or name.startswith("U_")


def _reserved(name: str) -> bool:
    return name.startswith("_")


def select_for(patch: dict[str, Any], key_field: str, lines_field: str) -> list[str]:
    """The `$select` of the re-read: the document's state, its lines and the header fields the PATCH sent."""
    fields = [f for f in patch if f != lines_field and not _reserved(f)]
    return list(dict.fromkeys([key_field, *STATE_FIELDS, lines_field, *fields]))


@dataclass
class Split:
    """A refused PATCH divided by what B1 can still take.

    `applied` — the part B1 takes (or already holds), reserved keys kept: the base of what the ledger
    records as in B1. `send` — the part of it to send again (empty: nothing to send). `held` — what B1
    keeps, named for people (`DocDate`, `line 0: AccountCode`, `new line 7`). `reason` — why.
    """

    applied: dict[str, Any] = field(default_factory=dict)
    send: dict[str, Any] = field(default_factory=dict)
    held: list[str] = field(default_factory=list)
    reason: str = ""
    code: str | None = None  # the outcome's code when no B1 answer gave one (split before sending)

    def message(self, b1_message: str | None) -> str:
        head = f"{b1_message} — " if b1_message else ""
        rest = "; the rest was applied" if has_content(self.applied) else ""
        return f"{head}{self.reason}; change not applied: {', '.join(self.held)}{rest}"


def document_state(entity_set: str, doc: dict[str, Any]) -> str | None:
    """Why the whole document refuses changes (None: it is open)."""
    if (profile := ENTITIES.get(entity_set)) is not None and profile.posted:  # amounts final (journal entry)
        return "posted in SAP B1"
    if doc.get("Cancelled") == "tYES":
        return "cancelled in SAP B1"
    if doc.get("DocumentStatus", OPEN) != OPEN:
        return "closed in SAP B1"
    return None


def split_patch(entity_set: str, patch: dict[str, Any], doc: dict[str, Any], *,
                lines_field: str = "DocumentLines") -> Split | None:
    """Divide `patch` (a document PATCH, reserved keys kept) by the state of `doc` (as re-read from B1).

    None when B1's state explains no part of the refusal: every field goes to an open document, an open
    row or is free. A field whose value B1 already holds is counted as applied and not sent again."""
    locked_doc = document_state(entity_set, doc)
    rows = {line.get("LineNum"): line for line in doc.get(lines_field) or []}
    applied: dict[str, Any] = {}
    send: dict[str, Any] = {}
    held: list[str] = []
    closed_rows: set[Any] = set()
    for name, value in patch.items():
        if name == lines_field:
            continue
        if _reserved(name) or locked_doc is None or _free(name, FREE_HEADER_FIELDS):
            applied[name] = value
            if _reserved(name) or not same(doc.get(name, _UNKNOWN), value):
                send[name] = value
        else:
            held.append(name)
    lines_applied, lines_send = [], []
    for member in patch.get(lines_field) or []:
        num = member.get("LineNum")
        row = rows.get(num) if num is not None else None
        if num is None:  # a new row: an open document appends it, a closed one takes none
            if locked_doc is None:
                lines_applied.append(member)
                lines_send.append(member)
            else:
                held.append(f"new line {member.get('_key', '?')}")
            continue
        row_locked = locked_doc is not None or (row is not None and row.get("LineStatus", OPEN) != OPEN)
        if row_locked and locked_doc is None:
            closed_rows.add(num)
        kept = {k: v for k, v in member.items()
                if k == "LineNum" or _reserved(k) or not row_locked or _free(k, FREE_LINE_FIELDS)}
        held += [f"line {num}: {k}" for k in member if k not in kept]
        if has_content(kept):
            lines_applied.append(kept)
            if row is None or any(not same(row.get(k, _UNKNOWN), v) for k, v in kept.items()
                                  if k != "LineNum" and not _reserved(k)):
                lines_send.append(kept)
    if not held:
        return None
    if lines_applied:
        applied[lines_field] = lines_applied
    if lines_send:
        send[lines_field] = lines_send
    if not has_content(send):
        send = {}
    if locked_doc is not None:
        reason = locked_doc
    else:
        rows_text = ", ".join(str(n) for n in sorted(closed_rows))
        reason = f"row{'s' if len(closed_rows) > 1 else ''} {rows_text} closed in SAP B1"
    return Split(applied, send, held, reason)


_UNKNOWN = object()


def has_content(patch: dict[str, Any]) -> bool:
    """Whether a PATCH (or line entry) carries anything besides identities and reserved keys."""
    for name, value in patch.items():
        if name == "LineNum" or _reserved(name):
            continue
        if isinstance(value, list):
            if any(has_content(m) if isinstance(m, dict) else True for m in value):
                return True
            continue
        return True
    return False


def same(have: Any, sent: Any) -> bool:
    """Whether B1's value `have` is the value `sent` (numbers within 1e-6, dates with or without a time;
    of a collection or object sent, every member or field sent is there)."""
    if have is _UNKNOWN:
        return False
    if isinstance(sent, list) and isinstance(have, list):
        return all(any(same(h, m) for h in have) for m in sent)
    if isinstance(sent, dict) and isinstance(have, dict):
        return all(same(have.get(k), v) for k, v in sent.items())
    if isinstance(sent, int | float) and not isinstance(sent, bool):
        try:
            return abs(float(have) - float(sent)) < 1e-6
        except (TypeError, ValueError):
            return False
    if isinstance(sent, str) and isinstance(have, str) and len(sent) == 10 and have.startswith(sent):
        return True  # dates: "2024-05-02" sent, "2024-05-02T00:00:00Z" read back
    return have == sent
